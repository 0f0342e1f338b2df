import { isIP } from "node:net";
import { msToNs } from "./programs.js";

/**
 * Pure parsers for ping output: Linux iputils and busybox (testdata/ping/*, captured) and Windows ping.exe in
 * English and German (testdata/ping/windows-*, hand-written). Sample lines:
 *
 *   iputils  `64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.190 ms`
 *            `From 21.4.3.177 icmp_seq=1 Destination Port Unreachable`
 *            `3 packets transmitted, 3 received, 0% packet loss, time 1020ms`
 *            `rtt min/avg/max/mdev = 0.043/0.094/0.190/0.067 ms`
 *   busybox  `64 bytes from 127.0.0.1: seq=0 ttl=64 time=0.052 ms` (sequence numbers start at 0)
 *            `3 packets transmitted, 3 packets received, 0% packet loss` / `round-trip min/avg/max = …`
 *   Windows  `Reply from 127.0.0.1: bytes=32 time<1ms TTL=128` / `Antwort von 127.0.0.1: Bytes=32 Zeit=4ms TTL=57`
 */

/** The legacy response words of one echo. */
export type PingResponse = "reply" | "timeout" | "dest unreachable" | "ttl exceeded" | `failed: ${string}`;

/** One echo as parsed (ttl is kept here although the result message has no field for it). */
export interface ParsedEcho {
  seq: number;
  success: boolean;
  /** Round trip in ns, replies only. */
  rttNs?: bigint;
  ttl?: number;
  response: PingResponse;
  /** Who answered: the target for a reply, the router for an ICMP error, "" for a timeout. */
  peer: string;
  /** ICMP code of an error (unreachable: 0 net, 1 host, 3 port, …; time exceeded: 0 in transit, 1 reassembly). */
  code?: number;
}

/** The run's totals; RTTs in ns. */
export interface ParsedSummary {
  transmitted: number;
  /** Echo replies (ICMP errors are not replies, even where Windows counts them as "Received"). */
  received: number;
  lossPct: number;
  /** ICMP errors (iputils `+N errors`). */
  errors: number;
  rttMinNs: bigint;
  rttAvgNs: bigint;
  rttMaxNs: bigint;
  rttMdevNs: bigint;
}

/** A parsed ping run. `summary` is absent only when neither a summary line nor any echo was seen. */
export interface ParsedPing {
  format: "iputils" | "busybox" | "windows";
  echoes: ParsedEcho[];
  summary?: ParsedSummary;
}

// ICMP destination-unreachable codes by iputils' wording (IPv4, then IPv6).
const UNREACHABLE_CODES: ReadonlyArray<[RegExp, number]> = [
  [/Net Unreachable for Type of Service/i, 11],
  [/Host Unreachable for Type of Service/i, 12],
  [/Destination Net Unreachable/i, 0],
  [/Destination Host Unreachable/i, 1],
  [/Destination Protocol Unreachable/i, 2],
  [/Destination Port Unreachable/i, 3],
  [/Frag needed/i, 4],
  [/Source Route Failed/i, 5],
  [/Destination Net Unknown/i, 6],
  [/Destination Host Unknown/i, 7],
  [/Source Host Isolated/i, 8],
  [/Destination Net Prohibited/i, 9],
  [/Destination Host Prohibited/i, 10],
  [/Packet filtered/i, 13],
  [/Precedence Violation/i, 14],
  [/Precedence Cutoff/i, 15],
  [/Destination unreachable: No route/i, 0],
  [/Destination unreachable: Administratively prohibited/i, 1],
  [/Destination unreachable: Beyond scope/i, 2],
  [/Destination unreachable: Address unreachable/i, 3],
  [/Destination unreachable: Port unreachable/i, 4],
];

/** "gateway (192.0.2.2)" → "192.0.2.2"; "::1:" → "::1". */
function peerOf(text: string): string {
  const inParens = /\(([^)]+)\)/.exec(text);
  const bare = (inParens?.[1] ?? text).trim();
  return isIP(bare) ? bare : bare.replace(/:$/, "");
}

/** Classifies an iputils ICMP error text; undefined for messages that are not a verdict (redirects). */
function classifyIcmpError(text: string): Pick<ParsedEcho, "response" | "code"> | undefined {
  if (/Time to live exceeded|Time exceeded/i.test(text)) return { response: "ttl exceeded", code: /reassembly/i.test(text) ? 1 : 0 };
  if (/unreachable|unknown|prohibited|filtered|isolated|Route Failed|Frag needed|Precedence/i.test(text)) {
    const code = UNREACHABLE_CODES.find(([re]) => re.test(text))?.[1];
    return code === undefined ? { response: "dest unreachable" } : { response: "dest unreachable", code };
  }
  return undefined;
}

/** Min/avg/max and the standard deviation (iputils' mdev) of RTTs in ns; zeros for none. */
export function rttStats(rtts: readonly bigint[]): Pick<ParsedSummary, "rttMinNs" | "rttAvgNs" | "rttMaxNs" | "rttMdevNs"> {
  if (rtts.length === 0) return { rttMinNs: 0n, rttAvgNs: 0n, rttMaxNs: 0n, rttMdevNs: 0n };
  const xs = rtts.map(Number);
  const avg = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + b * b, 0) / xs.length - avg * avg;
  return {
    rttMinNs: BigInt(Math.min(...xs)),
    rttAvgNs: BigInt(Math.round(avg)),
    rttMaxNs: BigInt(Math.max(...xs)),
    rttMdevNs: BigInt(Math.round(Math.sqrt(Math.max(0, variance)))),
  };
}

/** Summary from the echoes alone (no summary line: killed at the timeout, or Windows). */
function summaryFromEchoes(echoes: readonly ParsedEcho[], transmitted = echoes.length): ParsedSummary {
  const replies = echoes.filter((e) => e.success);
  return {
    transmitted,
    received: replies.length,
    lossPct: transmitted > 0 ? Math.round(((transmitted - replies.length) / transmitted) * 100_000) / 1000 : 0,
    errors: echoes.filter((e) => !e.success && e.response !== "timeout").length,
    ...rttStats(replies.flatMap((e) => (e.rttNs !== undefined ? [e.rttNs] : []))),
  };
}

/**
 * Parses iputils or busybox ping stdout (LANG=C). Replies and ICMP errors come from their lines; echoes that got
 * neither (silent timeouts, which ping does not print) are added as "timeout" for every sequence number up to the
 * transmitted count. Duplicate replies are ignored. The summary comes from the summary lines, or from the echoes
 * when ping was killed before printing them.
 */
export function parseUnixPing(stdout: string): ParsedPing {
  const bySeq = new Map<number, ParsedEcho>();
  let busybox = false;
  let transmitted: number | undefined;
  let received: number | undefined;
  let lossPct: number | undefined;
  let errors = 0;
  let rtt: Pick<ParsedSummary, "rttMinNs" | "rttAvgNs" | "rttMaxNs" | "rttMdevNs"> | undefined;

  for (const raw of stdout.split("\n")) {
    const line = raw.trim();
    let m = /^\d+ bytes from (.+?):?\s+(icmp_seq|seq)=(\d+)(.*)$/.exec(line);
    if (m) {
      if (m[2] === "seq") busybox = true;
      const seq = Number(m[3]);
      if (bySeq.get(seq)?.success) continue; // (DUP!)
      const rest = m[4] ?? "";
      const time = /time[=<]\s*([\d.]+)\s*ms/.exec(rest)?.[1];
      const ttl = /ttl=(\d+)/.exec(rest)?.[1];
      const echo: ParsedEcho = { seq, success: true, response: "reply", peer: peerOf(m[1] ?? "") };
      const ns = time !== undefined ? msToNs(time) : undefined;
      if (ns !== undefined) echo.rttNs = ns;
      if (ttl !== undefined) echo.ttl = Number(ttl);
      bySeq.set(seq, echo);
      continue;
    }
    m = /^From (.+?):?\s+icmp_seq=(\d+)\s+(.*)$/.exec(line);
    if (m) {
      const seq = Number(m[2]);
      const verdict = classifyIcmpError(m[3] ?? "");
      if (verdict && !bySeq.has(seq)) bySeq.set(seq, { seq, success: false, peer: peerOf(m[1] ?? ""), ...verdict });
      continue;
    }
    m = /^(\d+) packets transmitted, (\d+) (packets )?received(.*?), ([\d.]+)% packet loss/.exec(line);
    if (m) {
      transmitted = Number(m[1]);
      received = Number(m[2]);
      if (m[3]) busybox = true;
      errors = Number(/\+(\d+) errors/.exec(m[4] ?? "")?.[1] ?? 0);
      lossPct = Number(m[5]);
      continue;
    }
    m = /^(rtt|round-trip) min\/avg\/max(?:\/(?:mdev|stddev))? = ([\d.]+)\/([\d.]+)\/([\d.]+)(?:\/([\d.]+))? ms/.exec(line);
    if (m) {
      if (m[1] === "round-trip") busybox = true;
      const [min, avg, max, mdev] = [m[2], m[3], m[4], m[5]].map((v) => (v !== undefined ? msToNs(v) : undefined));
      if (min !== undefined && avg !== undefined && max !== undefined) {
        rtt = { rttMinNs: min, rttAvgNs: avg, rttMaxNs: max, rttMdevNs: mdev ?? 0n };
        if (mdev === undefined) rtt.rttMdevNs = rttStats([...bySeq.values()].flatMap((e) => (e.rttNs !== undefined ? [e.rttNs] : []))).rttMdevNs;
      }
    }
  }

  // Silent timeouts: every sequence number that was sent and got no line.
  const base = busybox ? 0 : 1;
  const seen = [...bySeq.keys()];
  const last = transmitted !== undefined ? base + transmitted - 1 : seen.length > 0 ? Math.max(...seen) : base - 1;
  for (let seq = base; seq <= last; seq++) {
    if (!bySeq.has(seq)) bySeq.set(seq, { seq, success: false, response: "timeout", peer: "" });
  }
  const echoes = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  const format = busybox ? "busybox" : "iputils";
  if (transmitted === undefined) return echoes.length > 0 ? { format, echoes, summary: summaryFromEchoes(echoes) } : { format, echoes };
  const fromEchoes = summaryFromEchoes(echoes, transmitted);
  return {
    format,
    echoes,
    summary: {
      transmitted,
      received: received ?? fromEchoes.received,
      lossPct: lossPct ?? fromEchoes.lossPct,
      errors,
      ...(rtt ?? fromEchoes),
    },
  };
}

// Windows unreachable wordings (English, German) with their ICMP codes.
const WINDOWS_UNREACHABLE: ReadonlyArray<[RegExp, number]> = [
  [/host unreachable|Zielhost nicht erreichbar/i, 1],
  [/net(work)? unreachable|Zielnetz nicht erreichbar/i, 0],
  [/port unreachable|Zielport nicht erreichbar/i, 3],
  [/protocol unreachable|Zielprotokoll nicht erreichbar/i, 2],
];

/**
 * Parses Windows `ping.exe -n N` output. The text is localized, so lines are read by their place and shape, not
 * their words: the block of lines after the "Pinging …:" header and before the first blank line has one line per
 * echo (sequence = position). A line with `=N ms`/`<1ms` is a reply (rtt; `<1ms` = 0.5 ms) with the first IP on it
 * as the peer; a line with an IP but no time is an ICMP error (TTL expired, else unreachable, which Windows counts
 * as "Received" and exits 0 for: it is not a success here); a line without an IP is a timeout ("Request timed
 * out.", "Zeitüberschreitung der Anforderung."), or a failure ("General failure."). Sent comes from the statistics
 * line (`= 4, … = 4, … = 0`); received, loss and RTTs are computed from the echoes.
 */
export function parseWindowsPing(stdout: string): ParsedPing {
  const lines = stdout.replace(/\r/g, "").split("\n").map((l) => l.trim());
  const start = lines.findIndex((l) => l !== "");
  const echoes: ParsedEcho[] = [];
  let i = start + 1;
  // A DNS failure is a single line; a header line ends with ':' (both languages).
  const header = lines[start] ?? "";
  if (start >= 0 && header.endsWith(":")) {
    for (; i < lines.length && lines[i] !== ""; i++) {
      const line = lines[i] ?? "";
      const seq = echoes.length + 1;
      const peerToken = line
        .split(/\s+/)
        .map((t) => t.replace(/[:,]$/, ""))
        .find((t) => isIP(t) !== 0);
      const time = /([=<])\s*(\d+)\s*ms\b/i.exec(line);
      if (time) {
        const ns = time[1] === "<" ? msToNs(`<${time[2]}`) : msToNs(time[2] ?? "");
        const echo: ParsedEcho = { seq, success: true, response: "reply", peer: peerToken ?? "" };
        if (ns !== undefined) echo.rttNs = ns;
        const ttl = /TTL=(\d+)/i.exec(line)?.[1];
        if (ttl !== undefined) echo.ttl = Number(ttl);
        echoes.push(echo);
      } else if (peerToken !== undefined) {
        if (/TTL/i.test(line)) {
          echoes.push({ seq, success: false, response: "ttl exceeded", peer: peerToken, code: 0 });
        } else {
          const code = WINDOWS_UNREACHABLE.find(([re]) => re.test(line))?.[1];
          echoes.push({ seq, success: false, response: "dest unreachable", peer: peerToken, ...(code !== undefined ? { code } : {}) });
        }
      } else if (/fail|fehler/i.test(line)) {
        echoes.push({ seq, success: false, response: `failed: ${line}`, peer: "" });
      } else {
        echoes.push({ seq, success: false, response: "timeout", peer: "" });
      }
    }
  }
  // "Packets: Sent = 4, Received = 4, Lost = 0 (0% loss)," (German wraps the percentage onto the next line).
  const stats = lines.map((l) => /=\s*(\d+),[^=]*=\s*(\d+),[^=]*=\s*(\d+)\b/.exec(l)).find((m) => m !== null);
  if (!stats && echoes.length === 0) return { format: "windows", echoes };
  const sent = stats ? Number(stats[1]) : echoes.length;
  return { format: "windows", echoes, summary: summaryFromEchoes(echoes, Math.max(sent, echoes.length)) };
}

/** Why a ping run produced nothing, for the error message. */
export type PingFailureKind = "privilege" | "unknown-host" | "other";

/**
 * Classifies ping's error text (stderr, or stdout on Windows): missing ICMP privilege (iputils `socket: Operation
 * not permitted` / `missing cap_net_raw`, its SOCK_DGRAM variant `Permission denied`, busybox `permission denied
 * (are you root?)`), an unknown host (resolver messages of glibc, musl/busybox and Windows in English and German),
 * or something else. Returns the kind and the most telling line.
 */
export function classifyPingError(text: string): { kind: PingFailureKind; detail: string } {
  const lines = text
    .replace(/\r/g, "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^(exit=|argv:)/.test(l));
  const find = (re: RegExp): string | undefined => lines.find((l) => re.test(l));
  const privilege = find(/socket:\s*(Operation not permitted|Permission denied)|are you root|cap_net_raw/i);
  if (privilege !== undefined) return { kind: "privilege", detail: find(/socket:/i) ?? privilege };
  const unknown = find(
    /Name or service not known|Temporary failure in name resolution|No address associated|no usable address|nodename nor servname|unknown host|bad address|could not find host|konnte Host/i,
  );
  if (unknown !== undefined) return { kind: "unknown-host", detail: unknown };
  return { kind: "other", detail: lines.find((l) => /^ping:/i.test(l)) ?? lines[lines.length - 1] ?? "" };
}
