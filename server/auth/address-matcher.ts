import { BlockList, isIP } from "node:net";

/** A set of source networks (--legacy-allow). */
export interface AddressMatcher {
  /** Whether a peer address (as a socket reports it: IPv4, IPv6, or IPv4-mapped IPv6) lies in one of the networks. */
  matches(address: string | undefined): boolean;
  /** The networks as given, normalized (for logs). */
  readonly networks: readonly string[];
}

/**
 * Parses a comma-separated list of CIDRs ("10.0.0.0/8, 192.168.1.7, fd00::/8"); a bare address is a /32 or /128.
 * Throws an Error naming the first bad entry. An IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, what a dual-stack
 * socket reports for an IPv4 client) is matched as the IPv4 address it carries.
 */
export function parseAddressList(text: string): AddressMatcher {
  const list = new BlockList();
  const networks: string[] = [];
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const slash = entry.indexOf("/");
    const addr = slash < 0 ? entry : entry.slice(0, slash);
    const family = isIP(addr);
    if (family === 0) throw new Error(`${JSON.stringify(entry)} is not an IP address or CIDR`);
    const max = family === 4 ? 32 : 128;
    const prefixText = slash < 0 ? String(max) : entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      throw new Error(`${JSON.stringify(entry)}: the prefix length must be 0 to ${max}`);
    }
    const mapped = family === 6 ? unmapIPv4(addr) : undefined;
    if (mapped !== undefined && Number(prefixText) >= 96) {
      // ::ffff:10.0.0.0/104 is 10.0.0.0/8
      list.addSubnet(mapped, Number(prefixText) - 96, "ipv4");
    } else {
      list.addSubnet(addr, Number(prefixText), family === 4 ? "ipv4" : "ipv6");
    }
    networks.push(`${addr}/${prefixText}`);
  }
  return {
    networks,
    matches(address) {
      if (!address) return false;
      const v4 = unmapIPv4(address);
      if (v4 !== undefined) return list.check(v4, "ipv4");
      const family = isIP(address);
      if (family === 0) return false;
      return list.check(address, family === 4 ? "ipv4" : "ipv6");
    },
  };
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d` or `::ffff:7f00:1`), else undefined. */
function unmapIPv4(address: string): string | undefined {
  if (isIP(address) !== 6) return undefined;
  const groups = ipv6Groups(address.replace(/%.*$/, ""));
  if (!groups || groups.slice(0, 5).some((g) => g !== 0) || groups[5] !== 0xffff) return undefined;
  const [hi, lo] = [groups[6]!, groups[7]!];
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** The eight 16-bit groups of a valid IPv6 address (a trailing dotted IPv4 part counts as two). */
function ipv6Groups(address: string): number[] | undefined {
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  const last = text.slice(lastColon + 1);
  if (isIP(last) === 4) {
    const [a, b, c, d] = last.split(".").map(Number) as [number, number, number, number];
    tail.push((a << 8) | b, (c << 8) | d);
    text = text.slice(0, lastColon + 1) + "0"; // placeholder group, replaced below
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  if (tail.length > 0) (right.length > 0 ? right : left).pop();
  const fill = 8 - tail.length - left.length - right.length;
  if (rest === undefined ? fill !== 0 : fill < 0) return undefined;
  return [...left, ...new Array<number>(rest === undefined ? 0 : fill).fill(0), ...right, ...tail];
}

/**
 * The key a peer address is limited under (server/auth/rate-limit.ts): an IPv4 address (IPv4-mapped IPv6 as the IPv4
 * address it carries) as itself, an IPv6 address by its /64 (one site or host usually has a whole /64, so stepping
 * through it would dodge a per-address limit), anything else as "unknown".
 */
export function addressKey(address: string | undefined): string {
  if (!address) return "unknown";
  const v4 = unmapIPv4(address);
  if (v4 !== undefined) return v4;
  const family = isIP(address);
  if (family === 4) return address;
  if (family !== 6) return "unknown";
  const groups = ipv6Groups(address.replace(/%.*$/, ""));
  if (!groups) return "unknown";
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/** Matches nothing: the default (no unauthenticated legacy ingest). */
export const NO_ADDRESSES: AddressMatcher = { networks: [], matches: () => false };
