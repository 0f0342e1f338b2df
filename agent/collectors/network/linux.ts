import fs from "node:fs";
import { ProcFile } from "../../host/proc-file.js";
import { RateTracker } from "../rate.js";
import type { Collector, CollectorContext, Payload } from "../types.js";
import { excludeOption, parseLinkSpeed, parseMtu, parseNetDev, selectInterfaces } from "./parse.js";
import { networkPayload, type InterfaceInfo } from "./payload.js";
import { monotonicMs } from "../../clock.js";

/** MAC, MTU and speed are re-read every this many runs (1 min at 5 s), and for interfaces not seen before. */
const INFO_REFRESH_RUNS = 12;

/** Interfaces left out unless `collectors.network.exclude` says otherwise. */
export const DEFAULT_EXCLUDED_INTERFACES: readonly string[] = ["lo"];

/** Test seams for the Linux network collector. */
export interface LinuxNetworkDeps {
  /** Monotonic clock in ms; default `monotonicMs` (agent/clock.ts). */
  now?: () => number;
}

/**
 * Network per interface: counters from one synchronous read of `<procRoot>/net/dev` per run (rates per second:
 * bytes, packets, errors, drops), MAC/MTU/speed from `<sysRoot>/class/net/<if>/` read asynchronously in the
 * background now and then (reading `speed` takes the kernel's RTNL lock, so it stays off the hot path).
 * `lo` is skipped; option `exclude` replaces the list (exact names, or prefixes ending in `*`). The first run
 * returns [] (baseline); an interface that appears gets its baseline then, one that vanishes is dropped.
 */
export function createLinuxNetworkCollector(ctx: CollectorContext, deps: LinuxNetworkDeps = {}): Collector {
  const netDev = new ProcFile(`${ctx.host.paths.procRoot}/net/dev`, 8192);
  const classNet = `${ctx.host.paths.sysRoot}/class/net`;
  const now = deps.now ?? (() => monotonicMs());
  const exclude = excludeOption(ctx.options, DEFAULT_EXCLUDED_INTERFACES);
  const tracker = new RateTracker();
  let info = new Map<string, InterfaceInfo>();
  let runsSinceInfo = Infinity;
  let refreshing: Promise<void> | undefined;

  const refreshInfo = (names: readonly string[]): Promise<void> => {
    refreshing ??= (async () => {
      const next = new Map<string, InterfaceInfo>();
      await Promise.all(
        names.map(async (name) => {
          const dir = `${classNet}/${name}`;
          // `address` and `mtu` are plain attributes (no lock): read synchronously, a few µs each. `speed` takes
          // RTNL (the kernel retries until it gets it), so it stays in the thread pool.
          const address = readSmallSync(`${dir}/address`);
          const mtu = readSmallSync(`${dir}/mtu`);
          const speed = await readSmall(`${dir}/speed`);
          next.set(name, { mac: address?.trim().toLowerCase() ?? "", mtu: parseMtu(mtu), speedMbps: parseLinkSpeed(speed) });
        }),
      );
      info = next;
      runsSinceInfo = 0;
    })().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  };

  return {
    async collect() {
      const { counters, unknown } = selectInterfaces(parseNetDev(netDev.read()), exclude, info);
      const rates = tracker.update(counters, now());
      runsSinceInfo++;
      if (unknown || runsSinceInfo >= INFO_REFRESH_RUNS) {
        const names = [...counters.keys()];
        // The first run waits (it returns no data anyway). Later runs start the refresh after they returned and
        // use the previous values meanwhile: a new interface only gets its baseline in this run, so its details
        // are ready by its first payload.
        if (!rates) await refreshInfo(names);
        else setImmediate(() => void refreshInfo(names));
      }
      if (!rates) return [];
      const out: Payload[] = [];
      for (const [name, r] of rates) out.push(networkPayload(name, r, info.get(name)));
      return out;
    },
    close() {
      netDev.close();
    },
  };
}

/** Sysfs attributes read here are one short line; a page is the most sysfs returns for one. */
const ATTR_BYTES = 4096;
const attrBuf = Buffer.allocUnsafe(ATTR_BYTES);

/** A small sysfs attribute that takes no lock, or undefined when it cannot be read. */
function readSmallSync(path: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(path, "r");
    const n = fs.readSync(fd, attrBuf, 0, ATTR_BYTES, 0);
    return attrBuf.toString("latin1", 0, n);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * A small sysfs attribute, read in the thread pool, or undefined when it cannot be read (absent, EINVAL for speed
 * of a down link). open/read/close with callbacks: about half the CPU of `fs.promises.readFile` (which adds an
 * fstat, a second read and the FileHandle machinery).
 */
function readSmall(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    fs.open(path, "r", (err, fd) => {
      if (err) return resolve(undefined);
      const buf = Buffer.allocUnsafe(ATTR_BYTES);
      fs.read(fd, buf, 0, ATTR_BYTES, 0, (readErr, n) => {
        fs.close(fd, () => resolve(readErr ? undefined : buf.toString("latin1", 0, n)));
      });
    });
  });
}
