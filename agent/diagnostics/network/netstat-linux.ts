import { readdir, readFile, readlink } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { NetstatEntrySchema, type NetstatEntry } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { monotonicMs } from "../../clock.js";

/**
 * Sockets on Linux from procfs, nothing spawned. Samples (captured on Debian 12): testdata/proc/net/{tcp,tcp6,udp,udp6};
 * the fd → inode links of the process that owned the test sockets: testdata/proc-pid-fd-readlink.txt.
 */

/** The socket tables, in the order they are listed; the name is also the `proto` reported. */
export const SOCKET_TABLES = ["tcp", "tcp6", "udp", "udp6"] as const;
export type SocketTable = (typeof SOCKET_TABLES)[number];

/** Rows listed at most (docs/data-sources.md 4.6). */
export const MAX_SOCKETS = 10_000;

// include/net/tcp_states.h
const TCP_STATES: Readonly<Record<number, string>> = {
  0x01: "ESTABLISHED",
  0x02: "SYN_SENT",
  0x03: "SYN_RECV",
  0x04: "FIN_WAIT1",
  0x05: "FIN_WAIT2",
  0x06: "TIME_WAIT",
  0x07: "CLOSE",
  0x08: "CLOSE_WAIT",
  0x09: "LAST_ACK",
  0x0a: "LISTEN",
  0x0b: "CLOSING",
  0x0c: "NEW_SYN_RECV",
};

/** The state name of a kernel state code: TCP names; UDP is "UNCONN" (7) or "ESTABLISHED" (1, connected). */
export function socketState(table: SocketTable, code: number): string {
  if (table.startsWith("udp")) {
    if (code === 0x07) return "UNCONN";
    if (code === 0x01) return "ESTABLISHED";
  }
  return TCP_STATES[code] ?? `UNKNOWN_${code.toString(16).toUpperCase().padStart(2, "0")}`;
}

/** Formats 16 IPv6 bytes per RFC 5952 (lowercase, longest zero run compressed); v4-mapped as ::ffff:a.b.c.d. */
export function formatIPv6(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new Error("an IPv6 address has 16 bytes");
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/**
 * Decodes a procfs `ADDR:PORT`. IPv4 is one 32-bit word in host (little-endian) order: `0100007F` = 127.0.0.1.
 * IPv6 is four such words: `00000000000000000000000001000000` = ::1. The port is big-endian hex.
 */
export function decodeProcAddress(text: string): { addr: string; port: number } | undefined {
  const m = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(text);
  if (!m) return undefined;
  const hex = m[1] ?? "";
  const port = parseInt(m[2] ?? "0", 16);
  const bytes = new Uint8Array(hex.length / 2);
  // Each 32-bit word is printed as a number from little-endian memory: reverse its 4 bytes.
  for (let w = 0; w < hex.length / 8; w++) {
    for (let b = 0; b < 4; b++) bytes[w * 4 + b] = parseInt(hex.slice(w * 8 + (3 - b) * 2, w * 8 + (3 - b) * 2 + 2), 16);
  }
  const addr = bytes.length === 4 ? bytes.join(".") : formatIPv6(bytes);
  return { addr, port };
}

/** One socket row, with the inode that links it to its process ("0" for sockets without one, like TIME_WAIT). */
export interface ProcSocket {
  entry: NetstatEntry;
  inode: string;
}

/**
 * Parses one `/proc/net/{tcp,tcp6,udp,udp6}` table: `sl local rem st tx:rx tr:when retrnsmt uid timeout inode …`,
 * header skipped, malformed lines skipped. `user` is the owner uid; pid and process are filled later.
 */
export function parseProcNetTable(table: SocketTable, text: string, limit = MAX_SOCKETS): ProcSocket[] {
  const out: ProcSocket[] = [];
  for (const line of text.split("\n")) {
    if (out.length >= limit) break;
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^\d+:$/.test(f[0] ?? "")) continue;
    const local = decodeProcAddress(f[1] ?? "");
    const remote = decodeProcAddress(f[2] ?? "");
    const st = parseInt(f[3] ?? "", 16);
    const uid = Number(f[7]);
    const inode = f[9] ?? "";
    if (!local || !remote || Number.isNaN(st) || !/^\d+$/.test(inode)) continue;
    const entry = create(NetstatEntrySchema, {
      proto: table,
      localAddr: local.addr,
      localPort: local.port,
      remoteAddr: remote.addr,
      remotePort: remote.port,
      state: socketState(table, st),
    });
    if (Number.isInteger(uid) && uid >= 0) entry.user = uid;
    out.push({ entry, inode });
  }
  return out;
}

/** Bounds on the fd scan that maps socket inodes to processes. */
export interface InodeScanLimits {
  maxProcesses: number;
  maxFds: number;
  budgetMs: number;
}

/** Defaults: every process on a normal host, bounded on a huge one. */
export const DEFAULT_SCAN_LIMITS: InodeScanLimits = { maxProcesses: 16_384, maxFds: 500_000, budgetMs: 3_000 };

/** What the fd scan found, and whether it stopped at a bound. */
export interface InodeScan {
  owners: Map<string, number>;
  processesScanned: number;
  fdsRead: number;
  /** Set when a bound stopped the scan before every wanted inode was found. */
  incomplete: boolean;
}

function isSkippable(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "EACCES" || code === "EPERM" || code === "ENOENT" || code === "ESRCH" || code === "ENOTDIR" || code === "EINVAL";
}

/**
 * Maps socket inodes to the pid holding them, by reading the `<procRoot>/<pid>/fd/*` links (`socket:[48991]`).
 * Processes the agent may not look into (EACCES: other users' unless root) or that exit meanwhile (ENOENT) are
 * skipped quietly. Stops once every wanted inode is found, or at a bound (processes, links read, time).
 */
export async function mapSocketOwners(
  procRoot: string,
  wanted: ReadonlySet<string>,
  signal?: AbortSignal,
  limits: InodeScanLimits = DEFAULT_SCAN_LIMITS,
): Promise<InodeScan> {
  const owners = new Map<string, number>();
  const scan: InodeScan = { owners, processesScanned: 0, fdsRead: 0, incomplete: false };
  if (wanted.size === 0) return scan;
  let names: string[];
  try {
    names = await readdir(procRoot);
  } catch (err) {
    if (isSkippable(err)) {
      scan.incomplete = true;
      return scan;
    }
    throw err;
  }
  const started = monotonicMs();
  const pids = names.filter((n) => /^\d+$/.test(n));
  for (const pid of pids) {
    if (owners.size >= wanted.size) break;
    signal?.throwIfAborted();
    if (scan.processesScanned >= limits.maxProcesses || scan.fdsRead >= limits.maxFds || monotonicMs() - started > limits.budgetMs) {
      scan.incomplete = true;
      break;
    }
    scan.processesScanned++;
    const fdDir = `${procRoot}/${pid}/fd`;
    let fds: string[];
    try {
      fds = await readdir(fdDir);
    } catch (err) {
      if (isSkippable(err)) continue;
      throw err;
    }
    const room = limits.maxFds - scan.fdsRead;
    if (fds.length > room) {
      fds = fds.slice(0, room);
      scan.incomplete = true;
    }
    scan.fdsRead += fds.length;
    const links = await Promise.all(fds.map((fd) => readlink(`${fdDir}/${fd}`).catch(() => "")));
    for (const link of links) {
      const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
      if (inode !== undefined && wanted.has(inode) && !owners.has(inode)) owners.set(inode, Number(pid));
    }
  }
  return scan;
}

/** A process's short name from `<procRoot>/<pid>/comm`, or undefined. */
async function processName(procRoot: string, pid: number): Promise<string | undefined> {
  try {
    return (await readFile(`${procRoot}/${pid}/comm`, "utf8")).replace(/\n$/, "");
  } catch {
    return undefined;
  }
}

/**
 * Where the socket tables live. With the default root, `/proc/net` (this network namespace). Under another root
 * (an agent in a container with the host's /proc mounted at /host/proc) `1/net` is the host's namespace, as pid 1
 * sees it; `net` there would be the container's own.
 */
export function netDirCandidates(procRoot: string): string[] {
  return procRoot === "/proc" ? ["/proc/net"] : [`${procRoot}/1/net`, `${procRoot}/net`];
}

/** The netstat of a Linux host: rows (capped), and whether a bound cut the list or the owner scan. */
export interface LinuxNetstat {
  entries: NetstatEntry[];
  /** Sockets in the tables, listed or not. */
  total: number;
  ownerScan: InodeScan;
}

/**
 * Reads the four socket tables under the first readable net directory (a missing table, like tcp6 without IPv6,
 * is skipped), then fills pid and process for sockets whose inode the agent can map. Throws when no table can be
 * read at all.
 */
export async function readLinuxNetstat(procRoot: string, signal?: AbortSignal, limits?: InodeScanLimits): Promise<LinuxNetstat> {
  const errors: string[] = [];
  for (const dir of netDirCandidates(procRoot)) {
    const sockets: ProcSocket[] = [];
    let tablesRead = 0;
    let total = 0;
    for (const table of SOCKET_TABLES) {
      let text: string;
      try {
        text = await readFile(`${dir}/${table}`, { encoding: "utf8", signal });
      } catch (err) {
        if (signal?.aborted) throw err;
        errors.push(`${dir}/${table}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        continue;
      }
      tablesRead++;
      const rows = parseProcNetTable(table, text, Number.MAX_SAFE_INTEGER);
      total += rows.length;
      sockets.push(...rows.slice(0, Math.max(0, MAX_SOCKETS - sockets.length)));
    }
    if (tablesRead === 0) continue;
    const wanted = new Set(sockets.map((s) => s.inode).filter((i) => i !== "0"));
    const ownerScan = await mapSocketOwners(procRoot, wanted, signal, limits);
    const names = new Map<number, string | undefined>();
    for (const pid of new Set(ownerScan.owners.values())) names.set(pid, await processName(procRoot, pid));
    for (const s of sockets) {
      const pid = ownerScan.owners.get(s.inode);
      if (pid === undefined) continue;
      s.entry.pid = pid;
      const name = names.get(pid);
      if (name !== undefined) s.entry.process = name;
    }
    return { entries: sockets.map((s) => s.entry), total, ownerScan };
  }
  throw new Error(`read socket tables: ${errors.join("; ")}`);
}
