import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import { createHostAccess } from "./index.js";
import { buildRequestLine, createPowerShellSession, sharedPowerShell, type PowerShellOptions } from "./powershell.js";

/**
 * A stand-in for `powershell.exe -Command -` that speaks the session's line protocol: it takes the base64 script
 * from each request line, runs it with sh (instead of PowerShell), and writes the end marker. `$$` in a script is
 * the fake's own pid, so `kill -9 $$` crashes "PowerShell".
 */
const FAKE_POWERSHELL = `#!/bin/sh
while IFS= read -r line; do
  case "$line" in
    *FromBase64String*)
      b64=$(printf '%s\\n' "$line" | sed -n "s/.*FromBase64String('\\([^']*\\)').*/\\1/p")
      marker=$(printf '%s\\n' "$line" | sed -n "s/.*'\\(__SPECTRA_[0-9a-f]*_[0-9]*\\)_BEGIN__'.*/\\1/p")
      script=$(printf '%s' "$b64" | base64 -d)
      out=$(eval "$script")
      # Stray output before the answer, like a prompt, must be ignored.
      printf 'PS C:\\\\> \\n%s_BEGIN__\\n%s\\n%s_END__\\n' "$marker" "$out" "$marker"
      ;;
    exit) exit 0 ;;
  esac
done
`;

let dir: string;
let opts: PowerShellOptions;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-ps-"));
  const fake = path.join(dir, "fake-powershell.sh");
  fs.writeFileSync(fake, FAKE_POWERSHELL, { mode: 0o755 });
  opts = { command: "/bin/sh", args: [fake], logger: silentLogger() };
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("buildRequestLine", () => {
  it("is one line carrying the script as base64 and the marker", () => {
    const line = buildRequestLine("Get-Date | ConvertTo-Json\n'quote'", "__SPECTRA_ab_1");
    expect(line.endsWith("\n")).toBe(true);
    expect(line.slice(0, -1)).not.toContain("\n");
    expect(line).toContain(Buffer.from("Get-Date | ConvertTo-Json\n'quote'").toString("base64"));
    expect(line).toContain("'__SPECTRA_ab_1_BEGIN__'");
    expect(line).toContain("'__SPECTRA_ab_1_END__'");
    expect(line).toContain('[Console]::Out.Write("`n" + ');
  });
});

describe("createPowerShellSession", () => {
  it("answers queries in order from one long-lived process", async () => {
    const ps = createPowerShellSession(opts);
    try {
      const answers = await Promise.all([
        ps.query(`echo '{"n":1}'`, 5000),
        ps.query(`echo '{"n":2}'`, 5000),
        ps.query("echo $$", 5000),
        ps.query("echo $$", 5000),
      ]);
      expect(answers[0]).toBe('{"n":1}');
      expect(answers[1]).toBe('{"n":2}');
      expect(answers[2]).toBe(answers[3]); // same process
    } finally {
      await ps.close();
    }
  });

  it("strips a BOM and surrounding whitespace, keeps multi-line output", async () => {
    const ps = createPowerShellSession(opts);
    try {
      expect(await ps.query(String.raw`printf '\357\273\277[1,\n2]\n\n'`, 5000)).toBe("[1,\n2]");
      expect(await ps.query("true", 5000)).toBe("");
    } finally {
      await ps.close();
    }
  });

  it("kills a query that times out and restarts for the next one", async () => {
    const ps = createPowerShellSession(opts);
    try {
      const pid1 = await ps.query("echo $$", 5000);
      const start = Date.now();
      await expect(ps.query("sleep 5", 200)).rejects.toThrow(/timed out after 200 ms/);
      expect(Date.now() - start).toBeLessThan(2000);
      const pid2 = await ps.query("echo $$", 5000);
      expect(pid2).not.toBe(pid1);
    } finally {
      await ps.close();
    }
  });

  it("rejects the query in flight when the process crashes, then restarts", async () => {
    const ps = createPowerShellSession(opts);
    try {
      const pid1 = await ps.query("echo $$", 5000);
      await expect(ps.query("kill -9 $$", 5000)).rejects.toThrow(/powershell exited/);
      const pid2 = await ps.query("echo $$", 5000);
      expect(pid2).toMatch(/^\d+$/);
      expect(pid2).not.toBe(pid1);
    } finally {
      await ps.close();
    }
  });

  it("a timed-out query does not disturb the queries queued behind it", async () => {
    const ps = createPowerShellSession(opts);
    try {
      const slow = ps.query("sleep 5", 150);
      const next = ps.query("echo after", 5000);
      await expect(slow).rejects.toThrow(/timed out/);
      expect(await next).toBe("after");
    } finally {
      await ps.close();
    }
  });

  it("aborts a running query through its signal", async () => {
    const ps = createPowerShellSession(opts);
    try {
      const ac = new AbortController();
      const p = ps.query("sleep 5", 10_000, ac.signal);
      setTimeout(() => ac.abort(), 100);
      await expect(p).rejects.toThrow(/aborted/);
      expect(await ps.query("echo ok", 5000)).toBe("ok");
    } finally {
      await ps.close();
    }
  });

  it("recycles the process after maxRequests", async () => {
    const ps = createPowerShellSession({ ...opts, maxRequests: 2 });
    try {
      const a = await ps.query("echo $$", 5000);
      const b = await ps.query("echo $$", 5000);
      const c = await ps.query("echo $$", 5000);
      expect(a).toBe(b);
      expect(c).not.toBe(a);
    } finally {
      await ps.close();
    }
  });

  it("rejects when PowerShell cannot start, and after close", async () => {
    const broken = createPowerShellSession({ command: "/nonexistent/powershell.exe", args: [] });
    await expect(broken.query("echo 1", 2000)).rejects.toThrow(/start powershell/);
    await broken.close();
    await expect(broken.query("echo 1", 2000)).rejects.toThrow(/closed/);
  });

  it("caps oversized answers", async () => {
    const ps = createPowerShellSession({ ...opts, maxResponseBytes: 1000 });
    try {
      await expect(ps.query("head -c 5000 /dev/zero | tr '\\0' x", 5000)).rejects.toThrow(/exceeds 1000 bytes/);
      expect(await ps.query("echo fine", 5000)).toBe("fine");
    } finally {
      await ps.close();
    }
  });
});

describe("sharedPowerShell", () => {
  it("gives every collector of a host the same process and stops it after the last release", async () => {
    const host = createHostAccess({}, { platform: "windows" });
    const a = sharedPowerShell(host, opts);
    const b = sharedPowerShell(host, opts);
    const pidA = await a.query("echo $$", 5000);
    const pidB = await b.query("echo $$", 5000);
    expect(pidA).toBe(pidB);
    await a.release();
    expect(await b.query("echo $$", 5000)).toBe(pidB);
    await b.release();
    // A new lease after the last release starts a new session.
    const c = sharedPowerShell(host, opts);
    expect(await c.query("echo $$", 5000)).not.toBe(pidB);
    await c.release();
  });
});
