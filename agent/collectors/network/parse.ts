/** Indexes of the counter vector per interface (the /proc/net/dev columns the payload needs). */
export const NET_RX_BYTES = 0;
export const NET_RX_PACKETS = 1;
export const NET_RX_ERRORS = 2;
export const NET_RX_DROPS = 3;
export const NET_TX_BYTES = 4;
export const NET_TX_PACKETS = 5;
export const NET_TX_ERRORS = 6;
export const NET_TX_DROPS = 7;

/**
 * Parses `/proc/net/dev` (sample: testdata/proc/net/dev) into counter vectors per interface, in file order.
 * Each line is `name: 16 numbers` (rx bytes packets errs drop fifo frame compressed multicast, then tx bytes
 * packets errs drop fifo colls carrier compressed). The name is split off at the first ':' because a long name
 * can run straight into the first number.
 */
export function parseNetDev(text: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const lines = text.split("\n");
  for (let i = 2; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const f = line.slice(colon + 1).trim().split(/ +/);
    if (name === "" || f.length < 16) continue;
    out.set(name, [Number(f[0]), Number(f[1]), Number(f[2]), Number(f[3]), Number(f[8]), Number(f[9]), Number(f[10]), Number(f[11])]);
  }
  return out;
}

/**
 * Link speed in Mbit/s from `/sys/class/net/<if>/speed`: "-1" (virtio, unknown) and unreadable (EINVAL when the
 * link is down, loopback) give 0, the proto's "unknown".
 */
export function parseLinkSpeed(text: string | undefined): number {
  const n = Number.parseInt(text?.trim() ?? "", 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** MTU from `/sys/class/net/<if>/mtu`; 0 when unknown. */
export function parseMtu(text: string | undefined): number {
  const n = Number.parseInt(text?.trim() ?? "", 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/**
 * Whether an interface is excluded by a pattern list: a pattern matches the whole name, or a prefix when it ends
 * with `*` ("veth*").
 */
export function isExcludedInterface(name: string, patterns: readonly string[]): boolean {
  for (const p of patterns) {
    if (p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : name === p) return true;
  }
  return false;
}

/** The `exclude` option as a list of patterns, or `fallback` when it is not a list. */
export function excludeOption(options: Readonly<Record<string, unknown>>, fallback: readonly string[]): readonly string[] {
  const opt = options["exclude"];
  return Array.isArray(opt) ? opt.filter((x): x is string => typeof x === "string") : fallback;
}

/**
 * The counters of the interfaces not excluded, and whether one of them has no details (MAC, MTU, speed) in
 * `known` yet, which makes the collector refresh them.
 */
export function selectInterfaces(
  all: Iterable<[string, number[]]>,
  exclude: readonly string[],
  known: ReadonlyMap<string, unknown>,
): { counters: Map<string, number[]>; unknown: boolean } {
  const counters = new Map<string, number[]>();
  let unknown = false;
  for (const [name, v] of all) {
    if (isExcludedInterface(name, exclude)) continue;
    counters.set(name, v);
    if (!known.has(name)) unknown = true;
  }
  return { counters, unknown };
}
