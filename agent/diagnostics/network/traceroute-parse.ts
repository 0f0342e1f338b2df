import { isIP } from "node:net";
import { msToNs } from "./programs.js";

/**
 * Pure parsers for traceroute-like output. Samples: testdata/traceroute/* (Linux traceroute, tracepath and
 * busybox traceroute, captured) and testdata/traceroute/tracert-* (Windows, hand-written).
 *
 *   traceroute  ` 2  21.4.3.177  0.244 ms  0.196 ms` / ` 1  * *` / ` 3  10.0.0.1  1.1 ms 10.0.0.2  1.3 ms !H`
 *   tracepath   ` 1:  192.0.2.1     3.067ms reached` / ` 2:  no reply` / ` 1?: [LOCALHOST]   pmtu 1400`
 *   tracert     `  1    <1 ms    <1 ms    <1 ms  192.168.1.1` / `  2     *        *        *     Request timed out.`
 */

/** One probe: who answered (empty for a timeout) and the round trip in ns (absent for a timeout). */
export interface ParsedProbe {
  address: string;
  hostname: string;
  rttNs?: bigint;
}

/** One hop (TTL) with its probes in order. */
export interface ParsedHop {
  ttl: number;
  probes: ParsedProbe[];
}

function timeout(): ParsedProbe {
  return { address: "", hostname: "" };
}

function addHop(hops: ParsedHop[], ttl: number, probes: ParsedProbe[]): void {
  const last = hops[hops.length - 1];
  if (last && last.ttl === ttl) last.probes.push(...probes);
  else hops.push({ ttl, probes });
}

/**
 * Parses Linux traceroute (2.x, `-n` or not) and busybox traceroute. After the hop number, tokens are read in
 * order: an address (or `name (address)`) sets who answered the following probes, `N ms` (or inetutils' `Nms`) is a probe, `*` a lost
 * probe; annotations (`!H`, `!N`, `!X`, `!<n>`) are skipped. The `traceroute to …` header and anything else are
 * ignored.
 */
export function parseTraceroute(text: string): ParsedHop[] {
  const hops: ParsedHop[] = [];
  for (const line of text.replace(/\r/g, "").split("\n")) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const ttl = Number(m[1]);
    const tokens = (m[2] ?? "").trim().split(/\s+/);
    const probes: ParsedProbe[] = [];
    let address = "";
    let hostname = "";
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i] ?? "";
      if (t === "*") {
        probes.push(timeout());
        continue;
      }
      if (t.startsWith("!")) continue;
      // "0.287 ms" (traceroute 2.x, busybox) or "0.287ms" (inetutils).
      const glued = /^([\d.]+)ms$/.exec(t)?.[1];
      const ns = glued !== undefined ? msToNs(glued) : tokens[i + 1] === "ms" ? msToNs(t) : undefined;
      if (ns !== undefined) {
        probes.push({ address, hostname, rttNs: ns });
        if (glued === undefined) i++;
        continue;
      }
      const paren = /^\((.+)\)$/.exec(t);
      if (paren && isIP(paren[1] ?? "")) {
        hostname = address;
        address = paren[1] ?? "";
        continue;
      }
      if (isIP(t) || /^[A-Za-z0-9][A-Za-z0-9.-]*$/.test(t)) {
        address = t;
        hostname = "";
      }
    }
    if (probes.length > 0) addHop(hops, ttl, probes);
  }
  return hops;
}

/**
 * Parses iputils tracepath. Each `N:` line is one probe of hop N (lines for the same hop are merged): the address,
 * then `1.234ms`; `no reply` is a lost probe. `N?:` lines are hops whose TTL tracepath guessed; the `[LOCALHOST]`
 * pmtu line, `asymm`, `pmtu`, `reached` and the `Resume:` summary carry no probe.
 */
export function parseTracepath(text: string): ParsedHop[] {
  const hops: ParsedHop[] = [];
  for (const line of text.replace(/\r/g, "").split("\n")) {
    const m = /^\s*(\d+)\??:\s+(.*)$/.exec(line);
    if (!m) continue;
    const ttl = Number(m[1]);
    const rest = (m[2] ?? "").trim();
    if (rest.startsWith("[LOCALHOST]")) continue;
    if (/^no reply\b/i.test(rest)) {
      addHop(hops, ttl, [timeout()]);
      continue;
    }
    const tokens = rest.split(/\s+/);
    let address = tokens[0] ?? "";
    let hostname = "";
    const paren = /^\((.+)\)$/.exec(tokens[1] ?? "");
    if (paren && isIP(paren[1] ?? "")) {
      hostname = address;
      address = paren[1] ?? "";
    }
    const ms = tokens.map((t) => /^([\d.]+)ms$/.exec(t)?.[1]).find((v) => v !== undefined);
    const ns = ms !== undefined ? msToNs(ms) : undefined;
    if (!isIP(address) && hostname === "" && ns === undefined) continue;
    addHop(hops, ttl, [ns !== undefined ? { address, hostname, rttNs: ns } : { address, hostname }]);
  }
  return hops;
}

/**
 * Parses Windows `tracert -d` (and without -d: `name [address]`). The words are localized ("Request timed out.",
 * "Zeitüberschreitung der Anforderung."), so only the numeric shape is read: the hop number, three probe columns
 * (`12 ms`, `<1 ms` = 0.5 ms, `*`) and the trailing address, which every probe of the hop shares. A hop whose every
 * probe was lost has no address. `N  <addr>  reports: Destination host unreachable.` is one unanswered probe from
 * that router.
 */
export function parseTracert(text: string): ParsedHop[] {
  const hops: ParsedHop[] = [];
  for (const line of text.replace(/\r/g, "").split("\n")) {
    const m = /^\s*(\d+)\s+((?:(?:<?\d+\s*ms|\*)\s+){1,3})(.*)$/.exec(line);
    if (m) {
      const ttl = Number(m[1]);
      const tail = (m[3] ?? "").trim();
      const bracket = /^(\S+)\s+\[([^\]]+)\]$/.exec(tail);
      const address = bracket ? (bracket[2] ?? "") : isIP(tail) ? tail : "";
      const hostname = bracket ? (bracket[1] ?? "") : "";
      const cols = (m[2] ?? "").match(/<?\d+\s*ms|\*/g) ?? [];
      const probes = cols.map((c): ParsedProbe => {
        if (c === "*") return timeout();
        const ns = msToNs(c.replace(/\s*ms$/, ""));
        return ns !== undefined ? { address, hostname, rttNs: ns } : { address, hostname };
      });
      addHop(hops, ttl, probes);
      continue;
    }
    const r = /^\s*(\d+)\s+(\S+)\s+\S+:\s/.exec(line);
    if (r && isIP(r[2] ?? "")) addHop(hops, Number(r[1]), [{ address: r[2] ?? "", hostname: "" }]);
  }
  return hops;
}

/** True when the error text says the host name could not be resolved (traceroute, tracepath, busybox, tracert). */
export function isUnknownHost(text: string): boolean {
  return /Name or service not known|Temporary failure in name resolution|No address associated|no usable address|bad address|Unable to resolve target|konnte.*nicht aufgel/i.test(
    text,
  );
}
