import fs from "node:fs";
import type { Collector, CollectorContext, Payload } from "../types.js";
import { NO_DATA } from "../types.js";
import { linuxReading, parseIwLink, parseProcNetWireless, type IwLink, type ProcWirelessEntry } from "./parse.js";
import { wifiPayload } from "./payload.js";
import { monotonicMs } from "../../clock.js";

/** `iw` is a netlink round trip; anything slower than this is a stuck driver, not a slow answer. */
const IW_TIMEOUT_MS = 3_000;
/** `iw dev <if> link` prints a dozen lines; this cap only guards against a runaway. */
const IW_MAX_OUTPUT_BYTES = 64 * 1024;
/** After iw turned out missing or unusable, ask again this much later (a package may get installed). */
const IW_RETRY_MS = 10 * 60_000;
/**
 * iw lives in /usr/sbin (Debian, Fedora) or /sbin, which is not on an unprivileged user's PATH: try PATH first,
 * then those.
 */
const IW_CANDIDATES = ["iw", "/usr/sbin/iw", "/sbin/iw"] as const;
/** Interface names passed to iw: kernel names are ≤ 15 bytes; nothing that could read as an option. */
const SAFE_IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,14}$/;

/** Test seams for the Linux Wi-Fi collector. */
export interface LinuxWifiDeps {
  /** Monotonic clock in ms for the iw retry back-off; default `monotonicMs` (agent/clock.ts). */
  now?: () => number;
}

/** What asking iw about one interface gave. */
type IwAnswer = { kind: "link"; link: IwLink } | { kind: "unavailable" } | { kind: "gone" };

/**
 * Wi-Fi on Linux, one reading per associated wireless interface. Interfaces are the union of the lines of
 * `<procRoot>/net/wireless` (wireless extensions; the file is absent or headers-only without Wi-Fi) and the
 * `<sysRoot>/class/net/<if>` entries with a `wireless/` or `phy80211` child (kernels without wireless
 * extensions). Each one is asked `iw dev <if> link` (3 s timeout, output cap) for SSID, frequency, signal and
 * tx/rx bitrate; when iw is missing, lacks nl80211 or times out, the /proc line alone is reported. No wireless
 * interface, or none associated, is NO_DATA without a log line; no command runs when there is no interface.
 */
export function createLinuxWifiCollector(ctx: CollectorContext, deps: LinuxWifiDeps = {}): Collector {
  const procPath = `${ctx.host.paths.procRoot}/net/wireless`;
  const classNet = `${ctx.host.paths.sysRoot}/class/net`;
  const now = deps.now ?? (() => monotonicMs());
  let iwPath: string | undefined;
  let iwUnusableUntil = -Infinity;
  let iwProblemLogged = false;

  const iwUnusable = (reason: string, err?: unknown): IwAnswer => {
    iwUnusableUntil = now() + IW_RETRY_MS;
    if (!iwProblemLogged) {
      iwProblemLogged = true;
      ctx.logger.debug({ reason, err }, "iw unusable; reporting /proc/net/wireless only");
    }
    return { kind: "unavailable" };
  };

  const askIw = async (name: string, signal: AbortSignal): Promise<IwAnswer> => {
    if (!SAFE_IFNAME.test(name) || now() < iwUnusableUntil) return { kind: "unavailable" };
    let res;
    for (const file of iwPath !== undefined ? [iwPath] : IW_CANDIDATES) {
      try {
        res = await ctx.host.exec.run(file, ["dev", name, "link"], {
          timeoutMs: IW_TIMEOUT_MS,
          maxOutputBytes: IW_MAX_OUTPUT_BYTES,
          signal,
        });
        iwPath = file;
        break;
      } catch (err) {
        if (signal.aborted) throw err;
        const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
        if (code === "ENOENT" && iwPath === undefined) continue;
        // EACCES, or the known path vanished (look it up again next time): /proc data is still worth reporting.
        iwPath = undefined;
        return iwUnusable("iw could not start", err);
      }
    }
    // Not installed anywhere: the /proc data is still worth reporting.
    if (!res) return iwUnusable("iw not found");
    if (res.timedOut) {
      ctx.logger.debug({ interface: name }, "iw timed out");
      return { kind: "unavailable" };
    }
    const out = res.stdout + res.stderr;
    if (/^Connected to |^Not connected/m.test(out)) return { kind: "link", link: parseIwLink(res.stdout) };
    if (/nl80211 not found/i.test(out)) return iwUnusable("nl80211 not found");
    // The interface went away between listing and asking (`command failed: No such device (-19)`).
    if (/No such device/i.test(out)) return { kind: "gone" };
    ctx.logger.debug({ interface: name, exitCode: res.exitCode, out: out.slice(0, 200) }, "unexpected iw output");
    return { kind: "unavailable" };
  };

  return {
    async collect(signal) {
      const proc = readProcWireless(procPath);
      const names = new Set<string>(proc.keys());
      for (const n of sysfsWirelessInterfaces(classNet)) names.add(n);
      if (names.size === 0) return NO_DATA;

      const payloads: Payload[] = [];
      // One at a time: there are one or two interfaces, and parallel netlink dumps buy nothing.
      for (const name of [...names].sort()) {
        const answer = await askIw(name, signal);
        if (answer.kind === "gone") continue;
        const reading = linuxReading(name, proc.get(name), answer.kind === "link" ? answer.link : undefined);
        if (reading) payloads.push(wifiPayload(reading));
      }
      return payloads.length > 0 ? payloads : NO_DATA;
    },
  };
}

/** The interface lines of /proc/net/wireless by name; a missing file (no Wi-Fi, no wireless extensions) is none. */
function readProcWireless(path: string): Map<string, ProcWirelessEntry> {
  let text: string;
  try {
    // procfs, a few hundred bytes, every 30 s: a synchronous read is cheaper than the thread-pool round trips.
    text = fs.readFileSync(path, "latin1");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw new Error(`read ${path}`, { cause: err });
  }
  return new Map(parseProcNetWireless(text).map((e) => [e.interface, e]));
}

/** Names under `<sysRoot>/class/net` that are wireless (`wireless/` or `phy80211` present); none if unreadable. */
function sysfsWirelessInterfaces(classNet: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(classNet);
  } catch {
    // No sysfs (a container without /sys, a test tree): /proc/net/wireless is the other source.
    return [];
  }
  return entries.filter((n) => fs.existsSync(`${classNet}/${n}/wireless`) || fs.existsSync(`${classNet}/${n}/phy80211`));
}
