import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { pino } from "pino";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandSchema, CommandType, DiskUsageParamsSchema, type DiskUsageParams } from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { HostAccess } from "../../host/host-access.js";
import { runCommand } from "../registry.js";
import { diskUsage, diskUsageDiagnostic } from "./index.js";
import { InvalidDiskParamsError, normalizeDiskScan, normalizeScanPath } from "./params.js";
import { TopN } from "./top-n.js";
import { nodeWalkFs, walk, type WalkFs, type WalkResult, type WalkStats } from "./walk.js";

const logger = pino({ level: "silent" });
const signal = new AbortController().signal;
const params = (p: MessageInitShape<typeof DiskUsageParamsSchema> = {}): DiskUsageParams => create(DiskUsageParamsSchema, p);
const host = (rootfs = "", platform: "linux" | "windows" = "linux"): HostAccess => ({
  platform,
  paths: { procRoot: "/proc", sysRoot: "/sys", rootfs },
  exec: { run: () => Promise.reject(new Error("disk usage runs no program")) },
});
const isRoot = process.getuid?.() === 0;

// The tree every test scans, built once:
//   a/big.bin (1 MiB) + a/big-hardlink (same inode) + a/up -> ..  (symlink loop)
//   a/b/small.txt (100 B), a/b/c/deep.bin (512 KiB)
//   d/medium.bin (256 KiB), e/ (empty), loop -> . (symlink loop), link-to-big -> a/big.bin
const base = mkdtempSync(path.join(tmpdir(), "spectra-disk-usage-"));
const tree = path.join(base, "tree");
beforeAll(() => {
  chmodSync(base, 0o755);
  for (const d of ["a/b/c", "d", "e"]) mkdirSync(path.join(tree, d), { recursive: true });
  // Random content: no compression or deduplication can make allocated sizes differ from what was written.
  writeFileSync(path.join(tree, "a/big.bin"), randomBytes(1024 * 1024));
  linkSync(path.join(tree, "a/big.bin"), path.join(tree, "a/big-hardlink"));
  writeFileSync(path.join(tree, "a/b/small.txt"), "x".repeat(100));
  writeFileSync(path.join(tree, "a/b/c/deep.bin"), randomBytes(512 * 1024));
  writeFileSync(path.join(tree, "d/medium.bin"), randomBytes(256 * 1024));
  symlinkSync("..", path.join(tree, "a/up"));
  symlinkSync(".", path.join(tree, "loop"));
  symlinkSync("a/big.bin", path.join(tree, "link-to-big"));
});
afterAll(() => {
  spawnSync("chmod", ["-R", "u+rwx", base]);
  rmSync(base, { recursive: true, force: true });
});

/** An independent oracle: allocated bytes and file count per directory (recursive, lstat, hard links once). */
function oracle(root: string): Map<string, { size: number; count: number }> {
  const seen = new Set<string>();
  const out = new Map<string, { size: number; count: number }>();
  const visit = (dir: string): { size: number; count: number } => {
    let size = lstatSync(dir).blocks * 512;
    let count = 0;
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        const sub = visit(p);
        size += sub.size;
        count += sub.count;
        continue;
      }
      count++;
      const key = `${st.dev}:${st.ino}`;
      if (st.nlink > 1 && seen.has(key)) continue;
      seen.add(key);
      size += st.blocks * 512;
    }
    out.set(dir, { size, count });
    return { size, count };
  };
  visit(root);
  return out;
}

const scanTree = (extra: Partial<Parameters<typeof walk>[0]> = {}): Promise<WalkResult> =>
  walk({ root: tree, topN: 100, maxEntries: 1_000_000, timeoutMs: 30_000, crossFilesystems: false, ...extra });

describe("parameters", () => {
  it("fills the defaults and caps the budgets", () => {
    expect(normalizeDiskScan(params(), "linux")).toEqual({ root: "/", topN: 50, crossFilesystems: false, maxEntries: 1_000_000, timeoutMs: 60_000 });
    expect(normalizeDiskScan(params(), "windows", "D:").root).toBe("D:\\");
    expect(normalizeDiskScan(params({ topN: 5000, maxFiles: 50_000_000, timeoutSeconds: 3600, crossFilesystems: true }), "linux")).toEqual({
      root: "/",
      topN: 1000,
      crossFilesystems: true,
      maxEntries: 10_000_000,
      timeoutMs: 100_000,
    });
    expect(normalizeDiskScan(params({ topN: 3, maxFiles: 10, timeoutSeconds: 2 }), "linux")).toMatchObject({ topN: 3, maxEntries: 10, timeoutMs: 2000 });
  });

  it("normalises paths and refuses bad ones", () => {
    expect(normalizeScanPath("/var//log/", "linux")).toBe("/var/log");
    expect(normalizeScanPath("/var/log/../lib/./apt", "linux")).toBe("/var/lib/apt");
    expect(normalizeScanPath("/../..", "linux")).toBe("/");
    expect(normalizeScanPath("/home/$(reboot);`id`", "linux")).toBe("/home/$(reboot);`id`"); // inert: never reaches a shell
    expect(normalizeScanPath("c:/Users/../Windows//", "windows")).toBe("C:\\Windows");
    expect(normalizeScanPath("C:\\", "windows")).toBe("C:\\");
    for (const [p, platform] of [
      ["var/log", "linux"],
      ["-rf", "linux"],
      ["/tmp/a\0b", "linux"],
      ["/proc", "linux"],
      ["/proc/1/fd", "linux"],
      ["/var/../sys/kernel", "linux"],
      ["/dev/", "linux"],
      ["C:\\Windows", "linux"],
      ["/" + "a".repeat(4096), "linux"],
      ["\\\\server\\share", "windows"],
      ["\\\\?\\C:\\Windows", "windows"],
      ["\\\\.\\PhysicalDrive0", "windows"],
      ["C:\\file.txt:stream", "windows"],
      ["C:\\a|b", "windows"],
      ["/var/log", "windows"],
      ["Windows", "windows"],
    ] as const) {
      expect(() => normalizeScanPath(p, platform), p).toThrow(InvalidDiskParamsError);
    }
  });
});

describe("top-N heap", () => {
  it("keeps the n best of many, best first, ties by path", () => {
    const values = Array.from({ length: 2000 }, (_, i) => ({ path: `p${i % 97}-${i}`, size: (i * 7919) % 1000 }));
    const better = (a: { path: string; size: number }, b: { path: string; size: number }) => a.size > b.size || (a.size === b.size && a.path < b.path);
    const top = new TopN(25, better);
    for (const v of values) top.offer(v);
    const expected = [...values].sort((a, b) => (better(a, b) ? -1 : 1)).slice(0, 25);
    expect(top.sorted()).toEqual(expected);
    expect(top.size).toBe(25);
    const none = new TopN(0, better);
    none.offer({ path: "x", size: 1 });
    expect(none.sorted()).toEqual([]);
  });
});

describe("walk on a tree the test builds", () => {
  it("sums every directory exactly, lists the largest first, counts a hard link once and follows no symlink", async () => {
    const r = await scanTree();
    const want = oracle(tree);
    expect(r.stopped).toBeUndefined();
    expect(r.errorCount).toBe(0);
    expect(r.scannedDirs).toBe(6); // tree, a, a/b, a/b/c, d, e: the symlink loops were not entered
    expect(r.scannedFiles).toBe(8); // big, hardlink, up, small, deep, medium, loop, link-to-big
    expect(r.totalSize).toBe(want.get(tree)!.size);
    expect(r.topDirs).toEqual(
      [...want.entries()]
        .map(([p, v]) => ({ path: p, size: v.size, count: v.count }))
        .sort((x, y) => y.size - x.size || (x.path < y.path ? -1 : 1)),
    );
    const rel = (p: string) => path.relative(tree, p);
    expect(Object.fromEntries(r.topDirs.map((d) => [rel(d.path), d.count]))).toEqual({ "": 8, a: 5, "a/b": 2, "a/b/c": 1, d: 1, e: 0 });
    // Files: the 1 MiB file once (under either of its names), then 512 KiB, 256 KiB, the small one; no symlink.
    const files = r.topFiles.map((f) => [rel(f.path), f.size]);
    expect(files).toHaveLength(4);
    expect(["a/big.bin", "a/big-hardlink"]).toContain(files[0]![0]);
    expect(files.slice(1).map((f) => f[0])).toEqual(["a/b/c/deep.bin", "d/medium.bin", "a/b/small.txt"]);
    expect(files.map((f) => f[1])).toEqual(
      ["a/big.bin", "a/b/c/deep.bin", "d/medium.bin", "a/b/small.txt"].map((p) => lstatSync(path.join(tree, p)).blocks * 512),
    );
    expect(files[0]![1]).toBeGreaterThanOrEqual(1024 * 1024);
  });

  it("agrees with du -x when du is there", async () => {
    const du = spawnSync("du", ["-x", "-B1", tree], { encoding: "utf8" });
    if (du.status !== 0) return;
    const r = await scanTree();
    const fromDu = new Map(du.stdout.trim().split("\n").map((l) => [l.split("\t")[1]!, Number(l.split("\t")[0])] as const));
    expect(new Map(r.topDirs.map((d) => [d.path, d.size]))).toEqual(fromDu);
  });

  it("keeps only top_n of each list", async () => {
    const r = await scanTree({ topN: 2 });
    expect(r.topDirs.map((d) => path.relative(tree, d.path))).toEqual(["", "a"]);
    expect(r.topFiles).toHaveLength(2);
    expect(r.totalSize).toBe(oracle(tree).get(tree)!.size);
  });

  it("stops at the file-count bound and marks the result partial", async () => {
    const full = await scanTree();
    const total = full.scannedFiles + full.scannedDirs - 1; // every entry under the root
    expect(total).toBe(13);
    expect((await scanTree({ maxEntries: total })).stopped).toBeUndefined();
    const cut = await scanTree({ maxEntries: total - 1 });
    expect(cut.stopped).toBe("max_files");
    const small = await scanTree({ maxEntries: 3 });
    expect(small.stopped).toBe("max_files");
    expect(small.scannedFiles + small.scannedDirs - 1).toBeLessThanOrEqual(3);
    // Directories open at the stop still report what was summed, the root first.
    expect(small.topDirs[0]?.path).toBe(tree);
    expect(small.totalSize).toBeLessThan(full.totalSize);
  });

  it("stops at the time bound, a hung file system call included", async () => {
    const slow: WalkFs = { ...nodeWalkFs, opendir: async (p) => (await sleep(40), nodeWalkFs.opendir(p)) };
    const started = Date.now();
    const r = await scanTree({ fs: slow, timeoutMs: 100 });
    expect(r.stopped).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(1000);
    expect(r.topDirs[0]?.path).toBe(tree);

    const hung: WalkFs = { ...nodeWalkFs, lstat: (p) => (p.endsWith("medium.bin") ? new Promise<WalkStats>(() => {}) : nodeWalkFs.lstat(p)) };
    const t0 = Date.now();
    const h = await scanTree({ fs: hung, timeoutMs: 300 });
    expect(h.stopped).toBe("timeout");
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("stops when aborted", async () => {
    const ac = new AbortController();
    const slow: WalkFs = { ...nodeWalkFs, opendir: async (p) => (await sleep(30), nodeWalkFs.opendir(p)) };
    setTimeout(() => ac.abort(new Error("agent stopping")), 80);
    const r = await scanTree({ fs: slow, signal: ac.signal });
    expect(r.stopped).toBe("aborted");
    expect(r.topDirs[0]?.path).toBe(tree);
    await expect(scanTree({ signal: ac.signal })).rejects.toThrow(`scan of ${tree} aborted`);
  });

  it("gives up on a root that does not answer within the budget", async () => {
    const hung: WalkFs = { ...nodeWalkFs, opendir: () => new Promise(() => {}) };
    await expect(scanTree({ fs: hung, timeoutMs: 100 })).rejects.toThrow(`${tree}: no answer within the time budget`);
  });

  it("counts unreadable entries as errors and goes on (injected EACCES)", async () => {
    const denied = (p: string) => Object.assign(new Error(`EACCES: permission denied, ${p}`), { code: "EACCES" });
    const faulty: WalkFs = {
      ...nodeWalkFs,
      opendir: (p) => (p.endsWith(`${path.sep}b`) ? Promise.reject(denied(p)) : nodeWalkFs.opendir(p)),
      lstat: (p) => (p.endsWith("medium.bin") ? Promise.reject(denied(p)) : nodeWalkFs.lstat(p)),
    };
    const r = await scanTree({ fs: faulty });
    expect(r.stopped).toBeUndefined();
    expect(r.errorCount).toBe(2);
    expect(r.topDirs.map((d) => path.relative(tree, d.path))).not.toContain("a/b");
    expect(r.topFiles.map((f) => path.relative(tree, f.path))).not.toContain("a/b/c/deep.bin");
    // a/b's own blocks still count in a.
    const want = oracle(tree);
    const a = r.topDirs.find((d) => d.path === path.join(tree, "a"))!;
    expect(a.size).toBe(want.get(path.join(tree, "a"))!.size - want.get(path.join(tree, "a/b"))!.size + lstatSync(path.join(tree, "a/b")).blocks * 512);
    // A file that vanished between readdir and lstat is not an error.
    const gone: WalkFs = { ...nodeWalkFs, lstat: (p) => (p.endsWith("small.txt") ? Promise.reject(Object.assign(new Error("gone"), { code: "ENOENT" })) : nodeWalkFs.lstat(p)) };
    expect((await scanTree({ fs: gone })).errorCount).toBe(0);
  });

  it.skipIf(isRoot)("counts a chmod 000 directory as an error (not root)", async () => {
    const locked = path.join(base, "locked-tree");
    mkdirSync(path.join(locked, "secret"), { recursive: true });
    writeFileSync(path.join(locked, "secret", "f"), "x");
    chmodSync(path.join(locked, "secret"), 0o000);
    const r = await walk({ root: locked, topN: 10, maxEntries: 1000, timeoutMs: 10_000, crossFilesystems: false });
    expect(r.errorCount).toBe(1);
    expect(r.stopped).toBeUndefined();
  });

  const setpriv = isRoot && spawnSync("setpriv", ["--version"]).status === 0;
  it.skipIf(!setpriv)("counts a chmod 000 directory as an error when run as an unprivileged user (setpriv, uid 65534)", async () => {
    // Root reads through chmod 000, so the walk runs in a child as nobody: walk.ts and top-n.ts transpiled as is.
    const locked = path.join(base, "locked-tree-root");
    mkdirSync(path.join(locked, "secret"), { recursive: true });
    mkdirSync(path.join(locked, "open"), { recursive: true });
    writeFileSync(path.join(locked, "secret", "hidden.bin"), randomBytes(8192));
    writeFileSync(path.join(locked, "open", "visible.bin"), randomBytes(8192));
    chmodSync(path.join(locked, "secret"), 0o000);
    const js = path.join(base, "walk-js");
    mkdirSync(js);
    writeFileSync(path.join(js, "package.json"), '{"type":"module"}');
    for (const name of ["walk", "top-n"]) {
      const src = readFileSync(fileURLToPath(new URL(`${name}.ts`, import.meta.url)), "utf8");
      const out = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
      writeFileSync(path.join(js, `${name}.js`), out.outputText);
    }
    writeFileSync(
      path.join(js, "run.js"),
      `import { walk } from "./walk.js";\n` +
        `const r = await walk({ root: process.argv[2], topN: 10, maxEntries: 1000, timeoutMs: 10000, crossFilesystems: false });\n` +
        `console.log(JSON.stringify({ uid: process.getuid(), ...r }));\n`,
    );
    spawnSync("chmod", ["-R", "a+rX", js]);
    const child = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, path.join(js, "run.js"), locked], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(child.stderr).toBe("");
    const r = JSON.parse(child.stdout) as WalkResult & { uid: number };
    expect(r.uid).toBe(65534);
    expect(r.errorCount).toBe(1);
    expect(r.stopped ?? null).toBeNull();
    expect(r.topFiles.map((f) => path.basename(f.path))).toEqual(["visible.bin"]);
    expect(r.topDirs.map((d) => d.path)).not.toContain(path.join(locked, "secret"));
  });

  it("does not enter other filesystems unless asked, and never pseudo filesystems (injected st_dev)", async () => {
    const otherDev = (p: string) => p.endsWith(`${path.sep}d`);
    const fsWith = (type: number): WalkFs => ({
      ...nodeWalkFs,
      lstat: async (p) => {
        const st = await nodeWalkFs.lstat(p);
        return otherDev(p) || p.includes(`${path.sep}d${path.sep}`) ? Object.assign(Object.create(Object.getPrototypeOf(st) as object) as WalkStats, st, { dev: st.dev + 1 }) : st;
      },
      statfs: async () => ({ type }),
    });
    const stay = await scanTree({ fs: fsWith(0xef53) });
    expect(stay.topDirs.map((d) => path.relative(tree, d.path))).not.toContain("d");
    expect(stay.topFiles.map((f) => path.relative(tree, f.path))).not.toContain("d/medium.bin");
    expect(stay.skippedMounts).toBe(1);
    const cross = await scanTree({ fs: fsWith(0xef53), crossFilesystems: true });
    expect(cross.topFiles.map((f) => path.relative(tree, f.path))).toContain("d/medium.bin");
    expect(cross.skippedMounts).toBe(0);
    const proc = await scanTree({ fs: fsWith(0x9fa0), crossFilesystems: true });
    expect(proc.topDirs.map((d) => path.relative(tree, d.path))).not.toContain("d");
    expect(proc.skippedMounts).toBe(1);
  });

  it("counts directories past the depth limit as errors", async () => {
    const r = await scanTree({ maxDepth: 1 });
    expect(r.errorCount).toBe(1); // a/b (depth 2)
    expect(r.topDirs.map((d) => path.relative(tree, d.path))).not.toContain("a/b");
  });

  it("refuses a root that is not a readable directory", async () => {
    await expect(walk({ root: path.join(tree, "loop"), topN: 1, maxEntries: 10, timeoutMs: 1000, crossFilesystems: false })).rejects.toThrow(
      "is not a directory (a symbolic link or special file)",
    );
    await expect(walk({ root: path.join(tree, "a/big.bin"), topN: 1, maxEntries: 10, timeoutMs: 1000, crossFilesystems: false })).rejects.toThrow(
      /big\.bin is not a directory$/,
    );
    await expect(walk({ root: path.join(tree, "nope"), topN: 1, maxEntries: 10, timeoutMs: 1000, crossFilesystems: false })).rejects.toThrow(/nope: ENOENT$/);
  });
});

describe("disk_usage diagnostic", () => {
  it("answers in the legacy shape", async () => {
    const r = await diskUsage(params({ path: `${tree}/`, topN: 3 }), { host: host(), signal });
    const want = oracle(tree);
    expect(r.root).toBe(tree);
    expect(r.partial).toBe(false);
    expect(r.topDirs.map((d) => [d.path, d.size, d.count])).toEqual(
      [tree, path.join(tree, "a"), r.topDirs[2]!.path].map((p) => [p, BigInt(want.get(p)!.size), BigInt(want.get(p)!.count)]),
    );
    expect(r.topFiles).toHaveLength(3);
    expect([r.scannedDirs, r.scannedFiles, r.errorCount]).toEqual([6n, 8n, 0n]);
    expect(r.durationMs).toBeGreaterThanOrEqual(0n);
    expect(Math.abs(Number(r.scannedAt!.seconds) - Date.now() / 1000)).toBeLessThan(60);
  });

  it("scans under the host root and reports host paths", async () => {
    const r = await diskUsage(params({ path: "/tree/a", topN: 10 }), { host: host(base), signal });
    expect(r.root).toBe("/tree/a");
    expect(r.topDirs[0]?.path).toBe("/tree/a");
    expect(r.topFiles.map((f) => f.path)).toContain("/tree/a/b/c/deep.bin");
  });

  it("live: scanning / with a small budget stays on the root filesystem (nothing under /proc or /sys)", async () => {
    const rootDev = statSync("/").dev;
    const pseudo = ["/proc", "/sys"].filter((p) => statSync(p).dev !== rootDev);
    for (const cross of [false, true]) {
      const r = await diskUsage(params({ path: "/", topN: 1000, maxFiles: 3000, crossFilesystems: cross }), { host: host(), signal });
      expect(r.partial).toBe(true);
      const listed = [...r.topDirs.map((d) => d.path), ...r.topFiles.map((f) => f.path)];
      for (const p of pseudo) expect(listed.filter((x) => x === p || x.startsWith(`${p}/`)), `${p} (cross=${cross})`).toEqual([]);
      expect(r.topDirs[0]?.path).toBe("/");
    }
  });

  it("live: the event loop stays responsive during a scan", async () => {
    let maxGap = 0;
    let last = Date.now();
    const tick = setInterval(() => {
      const t = Date.now();
      maxGap = Math.max(maxGap, t - last);
      last = t;
    }, 10);
    try {
      await diskUsage(params({ path: "/usr", topN: 20, maxFiles: 20_000 }), { host: host(), signal });
    } finally {
      clearInterval(tick);
    }
    expect(maxGap).toBeLessThan(250);
  });

  it("runs through the registry, validates again and runs one scan at a time", async () => {
    const outcome = await runCommand(
      create(CommandSchema, { id: "d1", type: CommandType.DISK_USAGE, params: { case: "diskUsage", value: { path: tree, topN: 1 } } }),
      { host: host(), logger, timeoutMs: 30_000 },
    );
    expect(outcome.error).toBe("");
    expect(outcome.result.case === "diskUsage" && outcome.result.value.topDirs.map((d) => d.path)).toEqual([tree]);
    for (const bad of ["relative/path", "/proc/self", "/tmp/\0x"]) {
      const o = await runCommand(
        create(CommandSchema, { id: "d2", type: CommandType.DISK_USAGE, params: { case: "diskUsage", value: { path: bad } } }),
        { host: host(), logger, timeoutMs: 30_000 },
      );
      expect(o.error, bad).not.toBe("");
    }
    const h = host();
    const first = diskUsageDiagnostic.run(params({ path: tree }), { host: h, logger, signal });
    await expect(diskUsageDiagnostic.run(params({ path: tree }), { host: h, logger, signal })).rejects.toThrow("disk_usage is already running on this agent");
    expect((await first).partial).toBe(false);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
