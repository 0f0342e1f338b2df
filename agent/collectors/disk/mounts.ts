/**
 * Mount tables: `/proc/mounts` and `/proc/self/mountinfo` parsers and the filesystem classification shared by the
 * disk collector and the `list_mounts` diagnostic. Samples: testdata/proc/mounts, testdata/proc/self/mountinfo.
 */

/** One line of `/proc/mounts` (fields decoded: `\040` is a space again). */
export interface MountEntry {
  device: string;
  mountpoint: string;
  fstype: string;
  options: string;
}

/** One line of `/proc/<pid>/mountinfo`; `options` are the per-mount options, `superOptions` the filesystem's. */
export interface MountInfoEntry extends MountEntry {
  mountId: number;
  parentId: number;
  major: number;
  minor: number;
  /** The directory of the filesystem that is mounted here ("/" unless this is a bind mount of a subdirectory). */
  root: string;
  superOptions: string;
}

/**
 * Decodes the octal escapes the kernel writes in mount tables: space, tab, newline and backslash appear as
 * `\040`, `\011`, `\012`, `\134` (any `\ooo` is decoded).
 */
export function decodeMountField(s: string): string {
  if (!s.includes("\\")) return s;
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Parses `/proc/mounts` (`device mountpoint fstype options dump pass`), skipping malformed lines. */
export function parseProcMounts(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const f = line.split(" ");
    if (f.length < 4) continue;
    out.push({
      device: decodeMountField(f[0]!),
      mountpoint: decodeMountField(f[1]!),
      fstype: decodeMountField(f[2]!),
      options: f[3]!,
    });
  }
  return out;
}

/**
 * Parses `/proc/<pid>/mountinfo`:
 * `id parent major:minor root mountpoint options [optional fields…] - fstype source superoptions`.
 * The optional fields end at the lone `-`; malformed lines are skipped. `keepFsType`, when given, drops lines of
 * other filesystem types before the rest of the line is decoded (the disk collector skips most lines this way).
 */
export function parseMountInfo(text: string, keepFsType?: (fstype: string) => boolean): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    // Fields never contain a literal space (the kernel escapes it), so the first " - " is the separator.
    const dash = line.indexOf(" - ");
    if (dash < 0) continue;
    const tail = line.slice(dash + 3).split(" ");
    if (tail.length < 2) continue;
    const fstype = decodeMountField(tail[0]!);
    if (keepFsType && !keepFsType(fstype)) continue;
    const f = line.slice(0, dash).split(" ");
    if (f.length < 6) continue;
    const devno = f[2]!;
    const colon = devno.indexOf(":");
    out.push({
      mountId: Number(f[0]),
      parentId: Number(f[1]),
      major: Number(devno.slice(0, colon)),
      minor: Number(devno.slice(colon + 1)),
      root: decodeMountField(f[3]!),
      mountpoint: decodeMountField(f[4]!),
      options: f[5]!,
      fstype,
      device: decodeMountField(tail[1]!),
      superOptions: tail[2] ?? "",
    });
  }
  return out;
}

/** Kernel virtual filesystems: no storage behind them. */
const VIRTUAL = new Set([
  "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs", "securityfs", "pstore", "bpf",
  "autofs", "configfs", "fusectl", "binfmt_misc", "hugetlbfs", "nsfs", "rpc_pipefs", "efivarfs", "selinuxfs",
  "nfsd", "rootfs", "devfs", "usbfs", "sockfs", "pipefs", "cpuset", "xenfs", "ocfs2_dlmfs", "dlmfs",
  "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal", "fuse.snapfuse",
]);

/** Memory-backed and layered/image filesystems: excluded from disk usage by default, like `df -x`. */
const VOLATILE_OR_LAYERED = new Set(["tmpfs", "devtmpfs", "ramfs", "overlay", "overlayfs", "aufs", "squashfs"]);

/** Filesystems served over the network: their statfs can hang when the server is gone. */
const NETWORK = new Set([
  "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "ceph", "glusterfs", "lustre", "gpfs", "beegfs",
  "davfs", "fuse.sshfs", "fuse.glusterfs", "fuse.cephfs", "fuse.s3fs", "fuse.rclone", "fuse.davfs2",
]);

/**
 * True for filesystems that are not real storage for disk reporting: kernel virtual filesystems (proc, sysfs,
 * cgroup, nsfs, …) and memory-backed or layered ones (tmpfs, devtmpfs, ramfs, overlay, squashfs). The disk
 * collector skips them by default; `list_mounts` can use it to mark or hide them.
 */
export function isPseudoFilesystem(fstype: string): boolean {
  return VIRTUAL.has(fstype) || VOLATILE_OR_LAYERED.has(fstype);
}

/** True for network filesystems (nfs*, cifs, smb3, sshfs, ceph, …), whose statfs may hang. */
export function isNetworkFilesystem(fstype: string): boolean {
  return NETWORK.has(fstype) || fstype.startsWith("nfs");
}
