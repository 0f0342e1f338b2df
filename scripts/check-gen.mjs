// Fails when gen/ differs from a fresh `buf generate` (gen/ is committed and never edited by hand).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const out = mkdtempSync(join(tmpdir(), "spectra-gen-"));
try {
  execFileSync("buf", ["generate", "-o", out], { stdio: "inherit", timeout: 60_000 });
  try {
    execFileSync("diff", ["-r", join(out, "gen"), "gen"], { stdio: "inherit" });
  } catch {
    console.error("gen/ differs from `buf generate`: run `npm run generate` and commit gen/.");
    process.exit(1);
  }
  console.log("gen/ matches buf generate");
} finally {
  rmSync(out, { recursive: true, force: true });
}
