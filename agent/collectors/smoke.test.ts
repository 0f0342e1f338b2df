import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import { createHostAccess } from "../host/index.js";
import { collectorNames, loadCollector } from "./registry.js";
import { NO_DATA } from "./types.js";

/**
 * "Never crash" (docs/data-sources.md, section 6): every Linux collector, run against host trees whose files are
 * missing, empty or garbage, must either return data/NO_DATA or reject with an Error, never hang or return
 * NaN-filled payloads.
 */
const FILES = ["stat", "loadavg", "meminfo", "diskstats", "net/dev", "uptime", "self/mountinfo"];
let root: string;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-smoke-"));
  for (const variant of ["missing", "empty", "garbage"]) {
    const proc = path.join(root, variant, "proc");
    fs.mkdirSync(path.join(proc, "net"), { recursive: true });
    fs.mkdirSync(path.join(proc, "self"), { recursive: true });
    if (variant === "missing") continue;
    const content = variant === "empty" ? "" : "garbage\n\x00\xff 1 2 3\n:::: - - -\ncpu x y z\n";
    for (const f of FILES) fs.writeFileSync(path.join(proc, f), content);
  }
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe("collectors on broken host trees", () => {
  for (const variant of ["missing", "empty", "garbage"]) {
    for (const name of collectorNames) {
      it(`${name} with ${variant} files`, async () => {
        const def = await loadCollector(name);
        const c = await def.create({
          host: createHostAccess(
            { procRoot: path.join(root, variant, "proc"), sysRoot: path.join(root, variant, "sys"), rootfs: "" },
            { platform: "linux" },
          ),
          logger: silentLogger(),
          options: { utmpPath: path.join(root, "no-utmp") },
        });
        const signal = new AbortController().signal;
        for (let i = 0; i < 2; i++) {
          try {
            const out = await c.collect(signal);
            if (out === NO_DATA) continue;
            expect(Array.isArray(out)).toBe(true);
            // Whatever comes out must be numbers, not NaN.
            expect(JSON.stringify(out, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))).not.toMatch(/null/);
            for (const p of out) for (const v of Object.values(p.value)) if (typeof v === "number") expect(Number.isNaN(v)).toBe(false);
          } catch (err) {
            expect(err).toBeInstanceOf(Error);
          }
        }
        await c.close?.();
      });
    }
  }
});
