import { create } from "@bufbuild/protobuf";
import fs from "node:fs";
import { DiskMetricsSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import { ProcFile } from "../../host/proc-file.js";
import { NO_DATA, type Collector, type CollectorContext, type Payload } from "../types.js";
import { isNetworkFilesystem, isPseudoFilesystem, parseMountInfo, type MountInfoEntry } from "./mounts.js";
import { diskKindFromSysfs, diskUsageFromStatfs, selectRealMounts, type DiskKind, type StatfsLike } from "./parse.js";

/** Default wait for one statfs before the mount is reported as hung and skipped. */
export const DEFAULT_STATFS_TIMEOUT_MS = 5_000;

/**
 * Hung statfs calls each hold a libuv thread-pool thread (4 by default) until the server answers. Once this many
 * are stuck, network mounts are not tried at all, so the pool keeps threads for everything else in the agent.
 */
const MAX_STUCK_STATFS = 2;

/**
 * Filesystems whose statfs is answered from the in-memory superblock, so it cannot hang: on a block device they
 * are asked synchronously (~2 µs instead of ~50 µs of thread-pool round trip, measured). Everything else (network,
 * FUSE, btrfs/zfs with their own locking, vfat which may scan its FAT on first call) goes through the guarded
 * asynchronous path.
 */
const SYNC_STATFS_TYPES = new Set(["ext2", "ext3", "ext4", "xfs"]);

/** Test seams for the Linux disk collector. */
export interface LinuxDiskDeps {
  /** Default `fs.promises.statfs(path, { bigint: true })`. */
  statfs?: (path: string) => Promise<StatfsLike>;
  /** Default `fs.statfsSync(path, { bigint: true })`; used only for local block filesystems (ext*, xfs). */
  statfsSync?: (path: string) => StatfsLike;
}

/** Options read from `collectors.disk.*` (all optional). */
interface DiskOptions {
  statfsTimeoutMs: number;
  includeFsTypes: Set<string>;
  excludeFsTypes: Set<string>;
  includeNetwork: boolean;
}

function readOptions(o: Readonly<Record<string, unknown>>): DiskOptions {
  const list = (v: unknown): Set<string> =>
    new Set(Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
  const t = o["statfsTimeoutMs"];
  return {
    statfsTimeoutMs: typeof t === "number" && t > 0 ? t : DEFAULT_STATFS_TIMEOUT_MS,
    includeFsTypes: list(o["includeFsTypes"]),
    excludeFsTypes: list(o["excludeFsTypes"]),
    includeNetwork: o["includeNetwork"] !== false,
  };
}

const TIMED_OUT = Symbol("timed-out");

type StatOutcome = { ok: true; value: StatfsLike } | { ok: false; error: unknown };

/**
 * Disk usage per real mount: the mount table from `<procRoot>/self/mountinfo` (or `<procRoot>/1/mountinfo` when
 * `rootfs` points at the host's root from a container), pseudo/overlay/tmpfs-like filesystems dropped, bind mounts
 * of one device reported once, usage from `statfs(<rootfs><mountpoint>)`.
 *
 * A dead network server must not hang the collector. Local ext2/3/4 and xfs on a block device are asked
 * synchronously (their statfs reads in-memory counters); every other statfs runs asynchronously and is awaited at
 * most `statfsTimeoutMs`; a mount whose call is still outstanding is skipped (never a second call on it) with one
 * warning when it hangs and one info line when it answers again. Other failures (ENOENT, EACCES) skip the mount with one warning. The run fails
 * only when every mount failed; it returns NO_DATA when the host has no real mount at all (a bare container).
 *
 * Options: `statfsTimeoutMs` (default 5000), `includeFsTypes` (e.g. ["tmpfs"]), `excludeFsTypes`,
 * `includeNetwork` (default true).
 */
export function createLinuxDiskCollector(ctx: CollectorContext, deps: LinuxDiskDeps = {}): Collector {
  const { procRoot, sysRoot, rootfs } = ctx.host.paths;
  const opts = readOptions(ctx.options);
  const log = ctx.logger;
  const statfs = deps.statfs ?? ((p: string) => fs.promises.statfs(p, { bigint: true }));
  const statfsSync = deps.statfsSync ?? ((p: string) => fs.statfsSync(p, { bigint: true }));
  const keepFsType = (t: string): boolean => !isPseudoFilesystem(t) || opts.includeFsTypes.has(t);

  // The agent's own table when it sees the host's paths directly; PID 1's table when the host root is mounted
  // at `rootfs` (agent in a container with the host's /proc); falls back to self if PID 1's is unreadable.
  const candidates = rootfs === "" ? ["self/mountinfo"] : ["1/mountinfo", "self/mountinfo"];
  let mountinfo: ProcFile | undefined;

  /** Mount points with a statfs call outstanding (however the run that issued it ended). */
  const inflight = new Set<string>();
  /** Of those, the ones that outlived their timeout (logged once when they hang, once when they answer). */
  const hung = new Set<string>();
  /** Mount points whose last statfs failed, with the error code already logged. */
  const failing = new Map<string, string>();
  /** disk_type per device number (sysfs flags do not change while a device exists). */
  const kinds = new Map<string, DiskKind>();

  const readMountTable = (): string => {
    if (mountinfo) return mountinfo.read();
    let lastError: unknown;
    for (const rel of candidates) {
      const f = new ProcFile(`${procRoot}/${rel}`, 16384);
      try {
        const text = f.read();
        mountinfo = f;
        return text;
      } catch (err) {
        f.close();
        lastError = err;
      }
    }
    throw lastError;
  };

  const kindOf = (m: MountInfoEntry): DiskKind | Promise<DiskKind> => {
    if (isNetworkFilesystem(m.fstype)) return "network";
    if (m.major === 0) return "local"; // anonymous device (btrfs, zfs, tmpfs): no block queue to ask
    const key = `${m.major}:${m.minor}`;
    return kinds.get(key) ?? lookupKind(key);
  };

  const lookupKind = async (key: string): Promise<DiskKind> => {
    const dev = `${sysRoot}/dev/block/${key}`;
    // A partition has no queue/ of its own: its parent disk (`<dev>/..`, resolved by the kernel) has.
    const rotational = (await readSmall(`${dev}/queue/rotational`)) ?? (await readSmall(`${dev}/../queue/rotational`));
    const removable = (await readSmall(`${dev}/removable`)) ?? (await readSmall(`${dev}/../removable`));
    const kind = diskKindFromSysfs(rotational, removable);
    kinds.set(key, kind);
    return kind;
  };

  const statMount = (m: MountInfoEntry, signal: AbortSignal): StatOutcome | undefined | Promise<StatOutcome | undefined> => {
    const mp = m.mountpoint;
    if (m.major !== 0 && SYNC_STATFS_TYPES.has(m.fstype)) {
      try {
        return { ok: true, value: statfsSync(rootfs + mp) };
      } catch (error) {
        return { ok: false, error };
      }
    }
    return statMountAsync(m, signal);
  };

  const statMountAsync = async (m: MountInfoEntry, signal: AbortSignal): Promise<StatOutcome | undefined> => {
    const mp = m.mountpoint;
    if (inflight.has(mp)) return undefined; // the previous call is still outstanding: never stack another
    if (isNetworkFilesystem(m.fstype) && hung.size >= MAX_STUCK_STATFS) return undefined;
    inflight.add(mp);
    const call: Promise<StatOutcome> = Promise.resolve()
      .then(() => statfs(rootfs + mp))
      .then(
        (value): StatOutcome => ({ ok: true, value }),
        (error: unknown): StatOutcome => ({ ok: false, error }),
      )
      .then((outcome) => {
        inflight.delete(mp);
        if (hung.delete(mp)) log.info({ mountpoint: mp }, "statfs answers again");
        return outcome;
      });
    const outcome = await waitAtMost(call, opts.statfsTimeoutMs, signal);
    if (outcome !== TIMED_OUT) return outcome;
    hung.add(mp);
    log.warn(
      { mountpoint: mp, fstype: m.fstype, timeoutMs: opts.statfsTimeoutMs },
      "statfs hangs; skipping mount until it answers",
    );
    return undefined;
  };

  return {
    async collect(signal) {
      let table: MountInfoEntry[];
      try {
        table = parseMountInfo(readMountTable(), keepFsType);
      } catch (cause) {
        throw new Error("read mount table", { cause });
      }
      const mounts = selectRealMounts(table, opts);
      if (mounts.length === 0) return NO_DATA;

      const started = mounts.map((m) => statMount(m, signal));
      // Only wait (and pay a microtask round) when some mount went the asynchronous way.
      const outcomes = started.some((o) => o instanceof Promise) ? await Promise.all(started) : (started as Array<StatOutcome | undefined>);
      const payloads: Payload[] = [];
      let firstError: unknown;
      let failures = 0;
      for (let i = 0; i < mounts.length; i++) {
        const m = mounts[i]!;
        const o = outcomes[i];
        if (o === undefined) continue; // hung: already logged
        if (!o.ok) {
          failures++;
          firstError ??= o.error;
          const code = errorCode(o.error);
          if (failing.get(m.mountpoint) !== code) {
            failing.set(m.mountpoint, code);
            log.warn({ mountpoint: m.mountpoint, err: o.error }, "statfs failed; skipping mount");
          }
          continue;
        }
        failing.delete(m.mountpoint);
        const u = diskUsageFromStatfs(o.value);
        const kind = kindOf(m); // cached after the first run: a plain value, no I/O, no await
        payloads.push({
          case: "disk",
          value: create(DiskMetricsSchema, {
            device: m.device,
            mountpoint: m.mountpoint,
            filesystem: m.fstype,
            diskType: typeof kind === "string" ? kind : await kind,
            diskTotal: u.total,
            diskUsed: u.used,
            diskAvailable: u.available,
            diskUsedPct: u.usedPct,
            inodesTotal: u.inodesTotal,
            inodesUsed: u.inodesUsed,
            inodesPct: u.inodesPct,
          }),
        });
      }
      if (payloads.length === 0 && failures > 0) {
        throw new Error(`statfs failed on all ${failures} mounts`, { cause: firstError });
      }
      return payloads;
    },
    close() {
      mountinfo?.close();
    },
  };
}

/** Resolves with `p`, or TIMED_OUT after `ms`; rejects if `signal` aborts first. `p` must never reject. */
function waitAtMost<T>(p: Promise<T>, ms: number, signal: AbortSignal): Promise<T | typeof TIMED_OUT> {
  if (signal.aborted) return Promise.reject(new Error("disk collection aborted", { cause: signal.reason }));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(TIMED_OUT);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Error("disk collection aborted", { cause: signal.reason }));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    void p.then((v) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(v);
    });
  });
}

/** A small sysfs attribute, or undefined when absent. Asynchronous: sysfs reads are not all lock-free. */
async function readSmall(path: string): Promise<string | undefined> {
  try {
    return await fs.promises.readFile(path, "latin1");
  } catch {
    return undefined;
  }
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : String(err);
}
