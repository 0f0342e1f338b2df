import { describe, expect, it } from "vitest";
import { createCommandRunner } from "./exec.js";

const runner = createCommandRunner({ platform: "linux" });

describe("createCommandRunner", () => {
  it("runs a program with an argument array and returns its output and exit code", async () => {
    const r = await runner.run("sh", ["-c", 'printf "%s|" "$1"; echo err >&2; exit 3', "sh", "a b; $(rm -rf /)"], {
      timeoutMs: 5000,
    });
    // The argument reached the program verbatim: no shell interpreted it.
    expect(r.stdout).toBe("a b; $(rm -rf /)|");
    expect(r.stderr).toBe("err\n");
    expect(r.exitCode).toBe(3);
    expect(r.signal).toBeNull();
    expect(r.timedOut).toBe(false);
    expect(r.truncated).toBe(false);
  });

  it("gives children a minimal C-locale environment unless one is passed", async () => {
    process.env["SPECTRA_TEST_SECRET"] = "hunter2";
    try {
      const r = await runner.run("sh", ["-c", "env"], { timeoutMs: 5000 });
      expect(r.stdout).toContain("LC_ALL=C");
      expect(r.stdout).not.toContain("hunter2");
      const custom = await runner.run("sh", ["-c", 'echo "$FOO"'], { timeoutMs: 5000, env: { FOO: "bar" } });
      expect(custom.stdout).toBe("bar\n");
    } finally {
      delete process.env["SPECTRA_TEST_SECRET"];
    }
  });

  it("kills a command that outlives its timeout with SIGKILL and reports timedOut", async () => {
    const start = Date.now();
    const r = await runner.run("sleep", ["10"], { timeoutMs: 200 });
    expect(Date.now() - start).toBeLessThan(3000);
    expect(r.timedOut).toBe(true);
    expect(r.signal).toBe("SIGKILL");
    expect(r.exitCode).toBeNull();
  });

  it("kills the whole process group on timeout (a forking shell does not keep the run alive)", async () => {
    const start = Date.now();
    const r = await runner.run("sh", ["-c", "sleep 10 & sleep 10; echo never"], { timeoutMs: 200 });
    expect(Date.now() - start).toBeLessThan(3000);
    expect(r.timedOut).toBe(true);
    expect(r.stdout).toBe("");
  });

  it("caps output, stops the producer and sets truncated", async () => {
    const start = Date.now();
    const r = await runner.run("yes", [], { timeoutMs: 10_000, maxOutputBytes: 64 * 1024 });
    expect(Date.now() - start).toBeLessThan(5000);
    expect(r.truncated).toBe(true);
    expect(r.timedOut).toBe(false);
    expect(Buffer.byteLength(r.stdout)).toBe(64 * 1024);
    expect(r.stdout.startsWith("y\ny\n")).toBe(true);
  });

  it("rejects when the program cannot start", async () => {
    await expect(runner.run("/nonexistent/spectra-no-such-binary", [], { timeoutMs: 1000 })).rejects.toThrow(
      /run \/nonexistent\/spectra-no-such-binary/,
    );
    const err = await runner.run("/nonexistent/x", [], { timeoutMs: 1000 }).catch((e: Error) => e);
    expect((err as Error & { cause: { code: string } }).cause.code).toBe("ENOENT");
  });

  it("rejects on abort, before or during the run", async () => {
    const pre = new AbortController();
    pre.abort(new Error("stop"));
    await expect(runner.run("sleep", ["1"], { timeoutMs: 5000, signal: pre.signal })).rejects.toThrow(/aborted/);

    const ac = new AbortController();
    const p = runner.run("sleep", ["10"], { timeoutMs: 20_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    const start = Date.now();
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
    expect(Date.now() - start).toBeLessThan(3000);
  });

  it("refuses a run without a positive timeout", async () => {
    await expect(runner.run("true", [], { timeoutMs: 0 })).rejects.toThrow(/timeoutMs/);
  });

  it("decodes multi-byte UTF-8 split across chunks", async () => {
    const r = await runner.run("sh", ["-c", "printf 'h\\303\\251llo w\\303\\266rld'"], { timeoutMs: 5000 });
    expect(r.stdout).toBe("héllo wörld");
  });
});
