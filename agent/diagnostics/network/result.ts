import { create } from "@bufbuild/protobuf";
import {
  NetworkDiagResultSchema,
  PingResultSchema,
  PingSummarySchema,
  type NetworkDiagResult,
  type PingResult,
  type PingSummary,
} from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { ParsedEcho, ParsedPing, ParsedSummary } from "./ping-parse.js";

/** The legacy action names (NetworkDiagResult.action). */
export type ActionName = "ping" | "connect" | "netstat" | "traceroute";

/** An empty result for an action, with its target and tool. */
export function networkResult(action: ActionName, target: string, tool: string): NetworkDiagResult {
  return create(NetworkDiagResultSchema, { action, target, tool });
}

/** One parsed echo as the result message (the TTL has no field and is dropped). */
export function toPingResult(e: ParsedEcho): PingResult {
  return create(PingResultSchema, {
    seq: e.seq,
    success: e.success,
    rtt: e.rttNs ?? 0n,
    response: e.response,
    peer: e.peer,
    ...(e.code !== undefined ? { code: e.code } : {}),
  });
}

/** The parsed totals as the result message. */
export function toPingSummary(s: ParsedSummary): PingSummary {
  return create(PingSummarySchema, {
    transmitted: s.transmitted,
    received: s.received,
    lossPct: s.lossPct,
    rttMin: s.rttMinNs,
    rttAvg: s.rttAvgNs,
    rttMax: s.rttMaxNs,
    rttMdev: s.rttMdevNs,
  });
}

/** Fills ping_results and ping_summary of `result` from a parsed run. */
export function withPing(result: NetworkDiagResult, parsed: ParsedPing): NetworkDiagResult {
  result.pingResults = parsed.echoes.map(toPingResult);
  if (parsed.summary) result.pingSummary = toPingSummary(parsed.summary);
  return result;
}
