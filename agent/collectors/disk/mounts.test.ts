import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { decodeMountField, isNetworkFilesystem, isPseudoFilesystem, parseMountInfo, parseProcMounts } from "./mounts.js";

const testdata = path.join(import.meta.dirname, "testdata");
const read = (p: string): string => fs.readFileSync(path.join(testdata, p), "utf8");

describe("parseProcMounts", () => {
  it("parses the captured /proc/mounts", () => {
    const m = parseProcMounts(read("proc/mounts"));
    expect(m).toHaveLength(26);
    expect(m[5]).toEqual({
      device: "/dev/vda",
      mountpoint: "/",
      fstype: "ext4",
      options: "rw,relatime,discard,resv_strict,resuid=65534,resgid=65534",
    });
    expect(m.filter((e) => e.fstype === "overlay")).toHaveLength(3);
    expect(m.filter((e) => e.fstype === "nsfs").map((e) => e.mountpoint)).toContain("/run/docker/netns/8017e23b73ea");
  });

  it("decodes octal escapes (space, tab, newline, backslash)", () => {
    const m = parseProcMounts(
      "/dev/sdb1 /media/My\\040Disk vfat rw 0 0\n//nas/share\\134x /mnt/a\\011b\\012c cifs rw 0 0\nshort line\n",
    );
    expect(m).toHaveLength(2);
    expect(m[0]!.mountpoint).toBe("/media/My Disk");
    expect(m[1]!.device).toBe("//nas/share\\x");
    expect(m[1]!.mountpoint).toBe("/mnt/a\tb\nc");
    expect(decodeMountField("plain")).toBe("plain");
  });

  it("leaves the pseudo and overlay mounts to isPseudoFilesystem", () => {
    const real = parseProcMounts(read("proc/mounts")).filter((e) => !isPseudoFilesystem(e.fstype));
    expect(real.map((e) => e.mountpoint)).toEqual(["/", "/var/lib/docker"]);
  });
});

describe("parseMountInfo", () => {
  it("parses the captured mountinfo, with optional fields and device numbers", () => {
    const m = parseMountInfo(read("proc/self/mountinfo"));
    expect(m).toHaveLength(26);
    const docker = m.find((e) => e.mountpoint === "/var/lib/docker")!;
    expect(docker).toMatchObject({
      mountId: 42,
      parentId: 27,
      major: 254,
      minor: 0,
      root: "/var/lib/docker",
      fstype: "ext4",
      device: "/dev/vda",
      options: "rw,relatime",
      superOptions: "rw,discard,resv_strict,resuid=65534,resgid=65534",
    });
    const ns = m.find((e) => e.fstype === "nsfs")!;
    expect(ns.root).toBe("net:[4026532184]");
  });

  it("decodes escapes in root and mount point and skips malformed lines", () => {
    const m = parseMountInfo("36 35 98:0 /a\\040b /mnt/x\\040y rw,noatime master:1 - ext3 /dev/root rw,errors=continue\nbad\n");
    expect(m).toHaveLength(1);
    expect(m[0]).toMatchObject({ root: "/a b", mountpoint: "/mnt/x y", fstype: "ext3", device: "/dev/root" });
  });
});

describe("filesystem classes", () => {
  it("classifies pseudo, layered and network filesystems", () => {
    for (const t of ["proc", "sysfs", "cgroup2", "nsfs", "overlay", "squashfs", "tmpfs", "devtmpfs", "fuse.lxcfs"]) {
      expect(isPseudoFilesystem(t)).toBe(true);
    }
    for (const t of ["ext4", "xfs", "btrfs", "vfat", "zfs", "nfs4", "cifs"]) expect(isPseudoFilesystem(t)).toBe(false);
    for (const t of ["nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "ceph"]) expect(isNetworkFilesystem(t)).toBe(true);
    expect(isNetworkFilesystem("ext4")).toBe(false);
  });
});
