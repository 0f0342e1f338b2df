import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger, type Logger } from "../../../common/logger.js";
import type { DiskMetrics } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess, type HostPaths } from "../../host/index.js";
import type { PowerShellQuery } from "../../host/powershell.js";
import { NO_DATA, type CollectorContext, type Payload } from "../types.js";
import disk from "./index.js";
import { createLinuxDiskCollector } from "./linux.js";
import type { StatfsLike } from "./parse.js";
import { createWindowsDiskCollector, LOGICAL_DISK_SCRIPT } from "./windows.js";

const testdata = path.join(import.meta.dirname, "testdata");
const signal = new AbortController().signal;
const ctxFor = (
  paths: Partial<HostPaths>,
  options: Record<string, unknown> = {},
  logger = silentLogger(),
  platform: "linux" | "windows" = "linux",
): CollectorContext => ({ host: createHostAccess(paths, { platform }), logger, options });
const disksOf = (p: Payload[] | symbol): DiskMetrics[] => {
  expect(Array.isArray(p)).toBe(true);
  return (p as Payload[]).map((x) => {
    expect(x.case).toBe("disk");
    return x.value as DiskMetrics;
  });
};

function capturedRootStatfs(): StatfsLike {
  const j = JSON.parse(fs.readFileSync(path.join(testdata, "cmd/node-os-and-statfs.json"), "utf8")) as {
    statfs_bigint_root: Record<string, string>;
  };
  const r = j.statfs_bigint_root;
  const b = (k: string): bigint => BigInt(r[k]!);
  return { bsize: b("bsize"), blocks: b("blocks"), bfree: b("bfree"), bavail: b("bavail"), files: b("files"), ffree: b("ffree") };
}

/** A logger that keeps its JSON lines, to check what is logged and how often. */
function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino<never>({ level: "debug" }, stream), lines };
}

const tmp: string[] = [];
afterEach(() => {
  for (const d of tmp.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function procWithMountinfo(lines: string[]): string {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-disk-"));
  tmp.push(proc);
  fs.mkdirSync(path.join(proc, "self"));
  fs.writeFileSync(path.join(proc, "self/mountinfo"), lines.join("\n") + "\n");
  return proc;
}

describe("linux disk collector on the fixture tree", () => {
  it("reports / once (docker bind mount deduped, overlay/nsfs/tmpfs skipped) with df's numbers", async () => {
    const calls: string[] = [];
    const c = createLinuxDiskCollector(ctxFor({ procRoot: path.join(testdata, "proc"), sysRoot: path.join(testdata, "sys") }), {
      statfsSync: (p) => {
        calls.push(p);
        return capturedRootStatfs();
      },
    });
    const [d, ...rest] = disksOf(await c.collect(signal));
    expect(rest).toEqual([]);
    expect(calls).toEqual(["/"]);
    expect(d).toMatchObject({
      device: "/dev/vda",
      mountpoint: "/",
      filesystem: "ext4",
      diskType: "local", // the fixture tree has no /sys/dev/block
      diskTotal: 270553174016n,
      diskUsed: 6211214n * 4096n,
      diskAvailable: 20386514n * 4096n,
      inodesTotal: 16777216n,
      inodesUsed: 421969n,
    });
    expect(d!.diskUsedPct).toBe(23.35); // 23.352…, sent with two decimals
    expect(d!.inodesPct).toBe(2.52); // 2.5151…
    await c.close?.();
  });

  it("prefixes rootfs for statfs and falls back to self/mountinfo when PID 1's is absent", async () => {
    const calls: string[] = [];
    const c = createLinuxDiskCollector(ctxFor({ procRoot: path.join(testdata, "proc"), rootfs: "/host" }), {
      statfsSync: (p) => {
        calls.push(p);
        return capturedRootStatfs();
      },
    });
    const [d] = disksOf(await c.collect(signal));
    expect(calls).toEqual(["/host/"]);
    expect(d!.mountpoint).toBe("/");
  });

  it("returns NO_DATA when there is no real mount (a bare container)", async () => {
    const proc = procWithMountinfo([
      "1 0 0:40 / / rw - overlay overlay rw",
      "2 1 0:41 / /proc rw - proc proc rw",
    ]);
    const c = createLinuxDiskCollector(ctxFor({ procRoot: proc }), { statfsSync: () => capturedRootStatfs() });
    expect(await c.collect(signal)).toBe(NO_DATA);
  });

  it("skips a failing mount with one warning, and fails only when every mount fails", async () => {
    const proc = procWithMountinfo([
      "27 1 254:0 / / rw - ext4 /dev/vda rw",
      "28 27 8:1 / /mnt/gone rw - xfs /dev/sdb1 rw",
    ]);
    const { logger, lines } = capturingLogger();
    let rootFails = false;
    const enoent = (): Error => Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT" });
    const c = createLinuxDiskCollector(ctxFor({ procRoot: proc }, {}, logger), {
      statfsSync: (p) => {
        if (p === "/mnt/gone" || rootFails) throw enoent();
        return capturedRootStatfs();
      },
    });
    expect(disksOf(await c.collect(signal)).map((d) => d.mountpoint)).toEqual(["/"]);
    expect(disksOf(await c.collect(signal)).map((d) => d.mountpoint)).toEqual(["/"]);
    expect(lines.filter((l) => l["msg"] === "statfs failed; skipping mount")).toHaveLength(1);
    rootFails = true;
    await expect(c.collect(signal)).rejects.toThrow("statfs failed on all 2 mounts");
  });

  it("never hangs on a dead network mount and never stacks a second statfs on it", async () => {
    const proc = procWithMountinfo([
      "27 1 254:0 / / rw - ext4 /dev/vda rw",
      "50 27 0:50 / /mnt/nfs rw,relatime - nfs4 server:/export rw,vers=4.2",
    ]);
    const { logger, lines } = capturingLogger();
    let release: (s: StatfsLike) => void = () => {};
    let serverDead = true;
    const nfsCalls: string[] = [];
    const c = createLinuxDiskCollector(ctxFor({ procRoot: proc, sysRoot: "/nonexistent" }, { statfsTimeoutMs: 50 }, logger), {
      statfsSync: () => capturedRootStatfs(),
      statfs: (p) => {
        nfsCalls.push(p);
        if (!serverDead) return Promise.resolve(capturedRootStatfs());
        return new Promise<StatfsLike>((resolve) => {
          release = resolve;
        });
      },
    });

    let start = Date.now();
    expect(disksOf(await c.collect(signal)).map((d) => d.mountpoint)).toEqual(["/"]);
    expect(Date.now() - start).toBeLessThan(1000);
    // Second run while the first call is still stuck: no new call, no waiting, no new warning.
    start = Date.now();
    expect(disksOf(await c.collect(signal)).map((d) => d.mountpoint)).toEqual(["/"]);
    expect(Date.now() - start).toBeLessThan(40);
    expect(nfsCalls).toHaveLength(1);
    expect(lines.filter((l) => l["msg"] === "statfs hangs; skipping mount until it answers")).toHaveLength(1);

    // The server comes back: the mount is logged once as recovered and reported again.
    serverDead = false;
    release(capturedRootStatfs());
    await new Promise((r) => setTimeout(r, 10));
    expect(lines.filter((l) => l["msg"] === "statfs answers again")).toHaveLength(1);
    const again = disksOf(await c.collect(signal));
    expect(again.map((d) => [d.mountpoint, d.diskType])).toEqual([
      ["/", "local"],
      ["/mnt/nfs", "network"],
    ]);
    expect(nfsCalls).toHaveLength(2);
  });

  it("can leave network filesystems out", async () => {
    const proc = procWithMountinfo([
      "27 1 254:0 / / rw - ext4 /dev/vda rw",
      "50 27 0:50 / /mnt/nfs rw - nfs4 server:/export rw",
    ]);
    const asked: string[] = [];
    const c = createLinuxDiskCollector(ctxFor({ procRoot: proc }, { includeNetwork: false }), {
      statfsSync: () => capturedRootStatfs(),
      statfs: async (p) => {
        asked.push(p);
        return capturedRootStatfs();
      },
    });
    expect(disksOf(await c.collect(signal)).map((d) => d.mountpoint)).toEqual(["/"]);
    expect(asked).toEqual([]);
  });

  it("asks btrfs/zfs/FUSE asynchronously and ext4/xfs synchronously", async () => {
    const proc = procWithMountinfo([
      "27 1 254:0 / / rw - ext4 /dev/vda rw",
      "28 27 0:33 / /home rw - btrfs /dev/vdb rw",
      "29 27 254:32 / /srv rw - xfs /dev/vdc rw",
      "30 27 0:60 / /mnt/ntfs rw - fuseblk /dev/sdb1 rw",
    ]);
    const sync: string[] = [];
    const async: string[] = [];
    const c = createLinuxDiskCollector(ctxFor({ procRoot: proc, sysRoot: "/nonexistent" }), {
      statfsSync: (p) => (sync.push(p), capturedRootStatfs()),
      statfs: async (p) => (async.push(p), capturedRootStatfs()),
    });
    expect(disksOf(await c.collect(signal))).toHaveLength(4);
    expect(sync).toEqual(["/", "/srv"]);
    expect(async).toEqual(["/home", "/mnt/ntfs"]);
  });

  it("stops waiting when the run is aborted", async () => {
    const proc = procWithMountinfo(["27 1 0:30 / / rw - btrfs /dev/vda rw"]);
    const c = createLinuxDiskCollector(ctxFor({ procRoot: proc }), { statfs: () => new Promise(() => {}) });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    await expect(c.collect(ac.signal)).rejects.toThrow(/aborted/);
  });
});

describe("linux disk collector on this machine", () => {
  it("reports / with the size df reports", async () => {
    const c = await disk.create(ctxFor({}));
    const disks = disksOf(await c.collect(signal));
    const root = disks.find((d) => d.mountpoint === "/")!;
    expect(root).toBeDefined();
    const df = execFileSync("df", ["-kP", "/"], { encoding: "utf8" }).trim().split("\n")[1]!.split(/\s+/);
    expect(root.diskTotal).toBe(BigInt(df[1]!) * 1024n);
    expect(root.diskUsedPct).toBeGreaterThan(0);
    expect(root.diskUsedPct).toBeLessThan(100);
    expect(["ssd", "hdd", "local"]).toContain(root.diskType);
    for (const d of disks) expect(["tmpfs", "overlay", "proc", "cgroup"]).not.toContain(d.filesystem);
    await c.close?.();
  });
});

describe("windows disk collector", () => {
  it("reports each drive from Win32_LogicalDisk", async () => {
    const ps: PowerShellQuery = {
      query: async (script) => {
        expect(script).toBe(LOGICAL_DISK_SCRIPT);
        return fs.readFileSync(path.join(testdata, "windows/logical-disk.json"), "utf8");
      },
    };
    const c = createWindowsDiskCollector(ctxFor({}, {}, silentLogger(), "windows"), { ps });
    const disks = disksOf(await c.collect(signal));
    expect(disks.map((d) => d.mountpoint)).toEqual(["C:\\", "D:\\", "F:\\"]);
    expect(disks[0]).toMatchObject({
      device: "C:",
      filesystem: "NTFS",
      diskType: "local",
      diskTotal: 255369244672n,
      diskAvailable: 98765432832n,
      diskUsed: 255369244672n - 98765432832n,
    });
    expect(disks[0]!.diskUsedPct).toBe(61.32); // 61.324…, sent with two decimals
    expect(disks[0]!.inodesTotal).toBeUndefined();
    expect(disks[2]!.diskType).toBe("removable");
  });

  it("returns NO_DATA without drives", async () => {
    const c = createWindowsDiskCollector(ctxFor({}, {}, silentLogger(), "windows"), { ps: { query: async () => "[]" } });
    expect(await c.collect(signal)).toBe(NO_DATA);
  });
});
