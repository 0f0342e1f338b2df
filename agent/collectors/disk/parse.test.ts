import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseMountInfo } from "./mounts.js";
import { diskKindFromSysfs, diskUsageFromStatfs, selectRealMounts, type StatfsLike } from "./parse.js";
import { parseLogicalDisks } from "./windows-parse.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (p: string): string => fs.readFileSync(path.join(testdata, p), "utf8");

/** The `fs.statfs("/", { bigint: true })` result captured on the fixture machine. */
function capturedRootStatfs(): StatfsLike {
  const j = JSON.parse(read("cmd/node-os-and-statfs.json")) as { statfs_bigint_root: Record<string, string> };
  const r = j.statfs_bigint_root;
  return {
    bsize: BigInt(r["bsize"]!),
    blocks: BigInt(r["blocks"]!),
    bfree: BigInt(r["bfree"]!),
    bavail: BigInt(r["bavail"]!),
    files: BigInt(r["files"]!),
    ffree: BigInt(r["ffree"]!),
  };
}

describe("diskUsageFromStatfs", () => {
  it("computes df's numbers from the captured statfs of /", () => {
    const u = diskUsageFromStatfs(capturedRootStatfs());
    expect(u.total).toBe(66053021n * 4096n); // = df -kPT's 264212084 1K-blocks
    expect(u.total / 1024n).toBe(264212084n);
    expect(u.used).toBe((66053021n - 59841807n) * 4096n);
    expect(u.available).toBe(20386514n * 4096n);
    // used / (used + available): reserved blocks count as neither, so df shows 24 % (rounded up) here.
    expect(u.usedPct).toBe(23.35); // 23.3524…, to two decimals
    expect(Math.ceil(u.usedPct)).toBe(24);
    expect(u.inodesTotal).toBe(16777216n);
    expect(u.inodesUsed).toBe(16777216n - 16355247n); // df -iPT a moment earlier: 421949
    expect(u.inodesPct).toBe(2.52); // 2.5151…
  });

  it("leaves inodes out when the filesystem has none and handles an empty filesystem", () => {
    const u = diskUsageFromStatfs({ bsize: 4096n, blocks: 0n, bfree: 0n, bavail: 0n, files: 0n, ffree: 0n });
    expect(u).toEqual({ total: 0n, used: 0n, available: 0n, usedPct: 0 });
  });
});

describe("selectRealMounts", () => {
  it("keeps only / of the captured table: pseudo, overlay, nsfs and tmpfs dropped, the docker bind mount deduped", () => {
    const real = selectRealMounts(parseMountInfo(read("proc/self/mountinfo")));
    expect(real.map((m) => m.mountpoint)).toEqual(["/"]);
  });

  it("keeps the mount of the filesystem root, else the shortest path; honours include/exclude and network", () => {
    const table = parseMountInfo(
      [
        "40 1 8:1 /data /srv/data rw - ext4 /dev/sda1 rw",
        "41 1 8:1 / /mnt/disk rw - ext4 /dev/sda1 rw",
        "42 1 0:50 / /mnt/nfs rw - nfs4 server:/export rw",
        "43 1 0:51 / /run/user/1000 rw - tmpfs tmpfs rw",
        "44 1 8:2 / /boot/efi rw - vfat /dev/sda2 rw",
      ].join("\n"),
    );
    expect(selectRealMounts(table).map((m) => m.mountpoint)).toEqual(["/mnt/disk", "/mnt/nfs", "/boot/efi"]);
    expect(
      selectRealMounts(table, {
        includeFsTypes: new Set(["tmpfs"]),
        excludeFsTypes: new Set(["vfat"]),
        includeNetwork: false,
      }).map((m) => m.mountpoint),
    ).toEqual(["/mnt/disk", "/run/user/1000"]);
  });
});

describe("diskKindFromSysfs", () => {
  it("reads rotational and removable flags", () => {
    expect(diskKindFromSysfs("0\n", "0\n")).toBe("ssd");
    expect(diskKindFromSysfs("1\n", undefined)).toBe("hdd");
    expect(diskKindFromSysfs("0\n", "1\n")).toBe("removable");
    expect(diskKindFromSysfs(undefined, undefined)).toBe("local");
  });
});

describe("parseLogicalDisks (Windows)", () => {
  it("parses drives, skipping one without media", () => {
    const v = parseLogicalDisks(read("windows/logical-disk.json"));
    expect(v.map((d) => d.device)).toEqual(["C:", "D:", "F:"]);
    expect(v[0]).toEqual({
      device: "C:",
      mountpoint: "C:\\",
      filesystem: "NTFS",
      kind: "local",
      label: "OS",
      total: 255369244672,
      free: 98765432832,
    });
    expect(v[2]!.kind).toBe("removable");
  });

  it("accepts a single object after a BOM and throws the error answer", () => {
    expect(parseLogicalDisks(read("windows/logical-disk-single-bom.json")).map((d) => d.device)).toEqual(["C:"]);
    expect(() => parseLogicalDisks('{"error":"Invalid namespace"}')).toThrow(/Invalid namespace/);
  });
});
