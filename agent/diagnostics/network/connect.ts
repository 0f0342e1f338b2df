import { lookup as dnsLookup } from "node:dns/promises";
import { connect as netConnect, isIP, type Socket } from "node:net";
import { create } from "@bufbuild/protobuf";
import { PingResultSchema, type NetworkDiagResult } from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { DiagnosticContext } from "../registry.js";
import type { NetworkRequest } from "./params.js";
import { networkResult } from "./result.js";

/** A validated connect request. */
export type ConnectRequest = Extract<NetworkRequest, { action: "connect" }>;

/** An address to try. */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Test seams: name resolution, socket creation and the clock. */
export interface ConnectDeps {
  lookup?: (host: string) => Promise<ResolvedAddress[]>;
  connect?: (opts: { host: string; port: number; family: number }) => Socket;
  /** Monotonic nanoseconds. */
  now?: () => bigint;
}

/** Addresses tried at most when a name has several (refused or unreachable moves on; a timeout stops). */
const MAX_ADDRESSES = 4;

/** Errors after which the next address of the name is worth trying. */
const TRY_NEXT = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "EAFNOSUPPORT"]);

const FAILURE_TEXT: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ETIMEDOUT: "timeout",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNRESET: "connection reset",
  EADDRNOTAVAIL: "address not available",
  EACCES: "not permitted",
  EPERM: "not permitted",
};

const DNS_TEXT: Readonly<Record<string, string>> = {
  ENOTFOUND: "host not found",
  EAI_AGAIN: "temporary failure in name resolution",
  ENODATA: "no address for this name",
  ESERVFAIL: "server failure",
};

/** "failed: connection refused"; unknown codes keep Node's message. */
export function failureText(err: NodeJS.ErrnoException): string {
  const known = err.code !== undefined ? FAILURE_TEXT[err.code] : undefined;
  return `failed: ${known ?? err.message}`;
}

/** "failed: DNS lookup failed: host not found (ENOTFOUND)". */
export function dnsFailureText(err: NodeJS.ErrnoException): string {
  const known = err.code !== undefined ? DNS_TEXT[err.code] : undefined;
  return `failed: DNS lookup failed: ${known !== undefined ? `${known} (${err.code})` : err.message}`;
}

/** "[::1]:22" or "127.0.0.1:22", as Go's RemoteAddr printed it. */
function hostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

interface Attempt {
  ok: boolean;
  code?: string;
  error?: NodeJS.ErrnoException;
  elapsedNs: bigint;
}

function attempt(deps: Required<ConnectDeps>, target: ResolvedAddress, port: number, deadline: bigint, signal: AbortSignal): Promise<Attempt> {
  return new Promise<Attempt>((resolve, reject) => {
    const start = deps.now();
    const remainingMs = Number((deadline - start) / 1_000_000n);
    if (remainingMs <= 0) {
      resolve({ ok: false, code: "ETIMEDOUT", elapsedNs: 0n });
      return;
    }
    let settled = false;
    let socket: Socket | undefined;
    const finish = (outcome: Attempt | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      // Never read from the socket: connected is all we wanted to know.
      socket?.destroy();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const onAbort = (): void => finish(new Error("connect aborted", { cause: signal.reason }));
    const timer = setTimeout(() => finish({ ok: false, code: "ETIMEDOUT", elapsedNs: deps.now() - start }), remainingMs);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      socket = deps.connect({ host: target.address, port, family: target.family });
    } catch (err) {
      finish({ ok: false, error: err as NodeJS.ErrnoException, elapsedNs: deps.now() - start });
      return;
    }
    socket.once("connect", () => finish({ ok: true, elapsedNs: deps.now() - start }));
    socket.once("error", (err: NodeJS.ErrnoException) => finish({ ok: false, error: err, elapsedNs: deps.now() - start }));
  });
}

async function resolveWithin(deps: Required<ConnectDeps>, host: string, timeoutMs: number): Promise<ResolvedAddress[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`timed out after ${timeoutMs} ms`), { code: "ETIMEOUT" })), timeoutMs);
  });
  try {
    return await Promise.race([deps.lookup(host), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * TCP connect to host:port within the timeout (node:net, nothing spawned), as the original's `connect`: one
 * ping_results entry with response "OK" and the connect time as rtt (ns), or "failed: connection refused",
 * "failed: timeout", "failed: DNS lookup failed: …" (success false; rtt is then the time until the failure). A name is
 * resolved first (inside the same time budget) and its addresses are tried in order while they refuse or are
 * unreachable; `peer` is the address that answered or was tried last. No data is read or written.
 */
export async function runConnect(req: ConnectRequest, ctx: Pick<DiagnosticContext, "signal">, deps: ConnectDeps = {}): Promise<NetworkDiagResult> {
  const d: Required<ConnectDeps> = {
    lookup: deps.lookup ?? ((host) => dnsLookup(host, { all: true, verbatim: true })),
    connect: deps.connect ?? ((o) => netConnect({ host: o.host, port: o.port, family: o.family })),
    now: deps.now ?? (() => process.hrtime.bigint()),
  };
  const result = networkResult("connect", req.target, "tcp");
  const entry = (success: boolean, response: string, peer: string, rtt: bigint): NetworkDiagResult => {
    result.pingResults = [create(PingResultSchema, { seq: 1, success, rtt, response, peer })];
    return result;
  };
  const start = d.now();
  const deadline = start + BigInt(req.timeoutMs) * 1_000_000n;

  let addresses: ResolvedAddress[];
  if (req.family !== 0) {
    addresses = [{ address: req.host, family: req.family }];
  } else {
    try {
      addresses = await resolveWithin(d, req.host, req.timeoutMs);
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      return entry(false, dnsFailureText(err as NodeJS.ErrnoException), "", d.now() - start);
    }
    if (addresses.length === 0) return entry(false, "failed: DNS lookup failed: no address for this name", "", d.now() - start);
  }

  let last: { attempt: Attempt; peer: string } | undefined;
  for (const address of addresses.slice(0, MAX_ADDRESSES)) {
    const peer = hostPort(address.address, req.port);
    const a = await attempt(d, address, req.port, deadline, ctx.signal);
    if (a.ok) return entry(true, "OK", peer, a.elapsedNs);
    last = { attempt: a, peer };
    const code = a.code ?? a.error?.code;
    if (code === undefined || !TRY_NEXT.has(code)) break;
  }
  const failed = last?.attempt;
  const text = failed?.error ? failureText(failed.error) : "failed: timeout";
  return entry(false, text, last?.peer ?? "", d.now() - start);
}
