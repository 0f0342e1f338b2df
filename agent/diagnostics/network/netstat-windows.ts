import { create } from "@bufbuild/protobuf";
import { NetstatEntrySchema, type NetstatEntry } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { parsePsObject, psNumber, psString, type PsObject } from "../../collectors/ps-json.js";
import { MAX_SOCKETS } from "./netstat-linux.js";

/**
 * Windows sockets: `Get-NetTCPConnection` + `Get-NetUDPEndpoint` through the shared PowerShell session, or the
 * text of `netstat -ano` where those cmdlets are missing (before Windows 8 / Server 2012) or fail. Samples
 * (hand-written): testdata/windows/*.
 */

/**
 * The constant script (no data is ever put into it). States are converted with ToString() (enums would serialize
 * as integers); process names come from one Get-Process snapshot; `@(…)` keeps single results arrays; -Depth 4
 * because the answer nests object → list → row → value.
 */
export const NETSTAT_SCRIPT = [
  "$t = @(Get-NetTCPConnection -ErrorAction SilentlyContinue | Select-Object LocalAddress,LocalPort,RemoteAddress,RemotePort,@{n='State';e={$_.State.ToString()}},OwningProcess)",
  "$u = @(Get-NetUDPEndpoint -ErrorAction SilentlyContinue | Select-Object LocalAddress,LocalPort,OwningProcess)",
  "$p = @(Get-Process | Select-Object Id,ProcessName)",
  "ConvertTo-Json -Compress -Depth 4 -InputObject @{ tcp = $t; udp = $u; processes = $p }",
].join("; ");

// MSFT_NetTCPConnection.State names → the Linux names used everywhere else.
const PS_TCP_STATES: Readonly<Record<string, string>> = {
  Closed: "CLOSE",
  Listen: "LISTEN",
  SynSent: "SYN_SENT",
  SynReceived: "SYN_RECV",
  Established: "ESTABLISHED",
  FinWait1: "FIN_WAIT1",
  FinWait2: "FIN_WAIT2",
  CloseWait: "CLOSE_WAIT",
  Closing: "CLOSING",
  LastAck: "LAST_ACK",
  TimeWait: "TIME_WAIT",
  DeleteTCB: "DELETE_TCB",
  Bound: "BOUND",
};

// Integer values of the same enum (a script change that drops ToString() must not produce numbers).
const PS_TCP_STATE_NUMBERS: Readonly<Record<number, string>> = {
  1: "CLOSE",
  2: "LISTEN",
  3: "SYN_SENT",
  4: "SYN_RECV",
  5: "ESTABLISHED",
  6: "FIN_WAIT1",
  7: "FIN_WAIT2",
  8: "CLOSE_WAIT",
  9: "CLOSING",
  10: "LAST_ACK",
  11: "TIME_WAIT",
  12: "DELETE_TCB",
  100: "BOUND",
};

function asList(v: unknown): PsObject[] {
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  return list.filter((x): x is PsObject => typeof x === "object" && x !== null && !Array.isArray(x));
}

/** "6" for an IPv6 address (with or without a zone), "" for IPv4. */
function familySuffix(addr: string): "" | "6" {
  return addr.includes(":") ? "6" : "";
}

/**
 * Parses the NETSTAT_SCRIPT answer: TCP then UDP rows, capped at MAX_SOCKETS; proto "tcp"/"tcp6"/"udp"/"udp6" by
 * the address family; states in the Linux vocabulary (LISTEN, ESTABLISHED, TIME_WAIT, …; UDP endpoints UNCONN with
 * a wildcard remote); pid from OwningProcess and the process name from the snapshot. Throws on `{"error":…}`.
 */
export function parseNetConnectionsJson(text: string): NetstatEntry[] {
  const root = parsePsObject(text, "Get-NetTCPConnection");
  const names = new Map<number, string>();
  for (const p of asList(root["processes"])) {
    const id = psNumber(p["Id"]);
    const name = psString(p["ProcessName"]);
    if (id !== undefined && name !== "") names.set(id, name);
  }
  const out: NetstatEntry[] = [];
  const push = (proto: "tcp" | "udp", row: PsObject, state: string): void => {
    if (out.length >= MAX_SOCKETS) return;
    const localAddr = psString(row["LocalAddress"]);
    const six = familySuffix(localAddr);
    const entry = create(NetstatEntrySchema, {
      proto: `${proto}${six}`,
      localAddr,
      localPort: psNumber(row["LocalPort"]) ?? 0,
      remoteAddr: proto === "udp" ? (six ? "::" : "0.0.0.0") : psString(row["RemoteAddress"]),
      remotePort: proto === "udp" ? 0 : psNumber(row["RemotePort"]) ?? 0,
      state,
    });
    const pid = psNumber(row["OwningProcess"]);
    if (pid !== undefined) {
      entry.pid = pid;
      const name = names.get(pid);
      if (name !== undefined) entry.process = name;
    }
    out.push(entry);
  };
  for (const row of asList(root["tcp"])) {
    const raw = row["State"];
    const state = typeof raw === "number" ? PS_TCP_STATE_NUMBERS[raw] ?? String(raw) : PS_TCP_STATES[psString(raw)] ?? psString(raw).toUpperCase();
    push("tcp", row, state);
  }
  for (const row of asList(root["udp"])) push("udp", row, "UNCONN");
  return out;
}

// netstat.exe state words, English and German (the German ones come out of the OEM code page; Ö may be mangled).
const NETSTAT_STATES: ReadonlyArray<[RegExp, string]> = [
  [/^(LISTENING|ABH.{1,2}REN)$/i, "LISTEN"],
  [/^(ESTABLISHED|HERGESTELLT)$/i, "ESTABLISHED"],
  [/^(TIME_WAIT|WARTEND)$/i, "TIME_WAIT"],
  [/^(CLOSE_WAIT|SCHLIESSEN_WARTEN)$/i, "CLOSE_WAIT"],
  [/^(SYN_SENT|SYN_GESENDET)$/i, "SYN_SENT"],
  [/^(SYN_RECEIVED|SYN_EMPFANGEN)$/i, "SYN_RECV"],
  [/^(FIN_WAIT_1|FIN_WARTEN_1)$/i, "FIN_WAIT1"],
  [/^(FIN_WAIT_2|FIN_WARTEN_2)$/i, "FIN_WAIT2"],
  [/^(LAST_ACK|LETZTES_ACK)$/i, "LAST_ACK"],
  [/^(CLOSING|SCHLIESSEN)$/i, "CLOSING"],
  [/^(CLOSED|GESCHLOSSEN)$/i, "CLOSE"],
  [/^BOUND$/i, "BOUND"],
];

/** "0.0.0.0:135", "[::]:135", "[fe80::1%4]:49664", "*:*" → address and port. */
function splitEndpoint(text: string): { addr: string; port: number } | undefined {
  const m = /^(\[[^\]]*\]|[^:]+|\*):(\d+|\*)$/.exec(text);
  if (!m) return undefined;
  const host = (m[1] ?? "").replace(/^\[|\]$/g, "");
  return { addr: host, port: m[2] === "*" ? 0 : Number(m[2]) };
}

/**
 * Parses `netstat -ano`. Column positions, not words, carry the meaning (the headings and state words are
 * localized): `TCP local foreign state pid` and `UDP local foreign pid` (no state). Known state words (English,
 * German) map to the Linux names, others are kept as printed; UDP rows are UNCONN with the wildcard remote as
 * "0.0.0.0"/"::" port 0. No process names (netstat -ano has none).
 */
export function parseNetstatAno(text: string): NetstatEntry[] {
  const out: NetstatEntry[] = [];
  for (const raw of text.replace(/\r/g, "").split("\n")) {
    if (out.length >= MAX_SOCKETS) break;
    const f = raw.trim().split(/\s+/);
    const proto = (f[0] ?? "").toUpperCase();
    if (proto !== "TCP" && proto !== "UDP") continue;
    const isTcp = proto === "TCP";
    if (f.length !== (isTcp ? 5 : 4)) continue;
    const local = splitEndpoint(f[1] ?? "");
    const remote = splitEndpoint(f[2] ?? "");
    const pid = Number(f[isTcp ? 4 : 3]);
    if (!local || !remote || !Number.isInteger(pid)) continue;
    const six = familySuffix(local.addr);
    const stateWord = isTcp ? f[3] ?? "" : "";
    const state = isTcp ? NETSTAT_STATES.find(([re]) => re.test(stateWord))?.[1] ?? stateWord : "UNCONN";
    out.push(
      create(NetstatEntrySchema, {
        proto: `${isTcp ? "tcp" : "udp"}${six}`,
        localAddr: local.addr,
        localPort: local.port,
        remoteAddr: remote.addr === "*" ? (six ? "::" : "0.0.0.0") : remote.addr,
        remotePort: remote.port,
        state,
        pid,
      }),
    );
  }
  return out;
}
