import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ProcFile } from "./proc-file.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe("ProcFile", () => {
  it("re-reads the current content from offset 0 on every call", () => {
    const f = new ProcFile("/proc/uptime", 16);
    const a = Number.parseFloat(f.read());
    const b = Number.parseFloat(f.read());
    expect(b).toBeGreaterThanOrEqual(a);
    f.close();
  });

  it("grows its buffer for long files and sees rewrites of a regular file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-procfile-"));
    dirs.push(dir);
    const p = path.join(dir, "stat");
    fs.writeFileSync(p, "x".repeat(10_000));
    const f = new ProcFile(p, 8);
    expect(f.read()).toHaveLength(10_000);
    fs.writeFileSync(p, "short");
    expect(f.read()).toBe("short");
    // Re-created file (new inode): the stale descriptor still reads, so callers that rename must close().
    f.close();
    expect(f.read()).toBe("short");
    f.close();
  });

  it("wraps errors with the path", () => {
    const f = new ProcFile("/nonexistent/spectra/stat");
    expect(() => f.read()).toThrow("read /nonexistent/spectra/stat");
  });
});
