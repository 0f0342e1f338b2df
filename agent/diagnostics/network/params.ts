import { NetworkAction, type NetworkDiagParams } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { clampInt, InvalidParamError, parseHost, parseHostPort, quote, type ValidHost } from "../validate.js";

/** Echo requests: default and cap (the server refuses more than 100; the agent caps again). */
export const PING_COUNT = { default: 4, min: 1, max: 100 } as const;
/** Wait for each echo reply, ms; whole seconds on the wire (busybox and old iputils take integers only). */
export const PING_TIMEOUT_MS = { default: 2_000, min: 1_000, max: 10_000 } as const;
/** TCP connect timeout, ms (the original used 3 s). */
export const CONNECT_TIMEOUT_MS = { default: 3_000, min: 100, max: 10_000 } as const;
/** Traceroute hop limit. */
export const TRACE_MAX_HOPS = { default: 30, min: 1, max: 30 } as const;
/** Traceroute probes per hop (`count`; traceroute -q; tracert always sends 3, tracepath its own). */
export const TRACE_PROBES = { default: 3, min: 1, max: 5 } as const;
/** Traceroute wait per probe, ms (`timeout_ms`). */
export const TRACE_WAIT_MS = { default: 2_000, min: 1_000, max: 5_000 } as const;

/** The `target` the original reported for netstat. */
export const NETSTAT_TARGET = "Local System";

/** A validated network diagnostic request, with every default filled and every number capped. */
export type NetworkRequest =
  | ({ action: "ping"; target: string; count: number; timeoutMs: number } & ValidHost)
  | ({ action: "connect"; target: string; port: number; timeoutMs: number } & ValidHost)
  | { action: "netstat"; target: typeof NETSTAT_TARGET }
  | ({ action: "traceroute"; target: string; maxHops: number; probes: number; waitMs: number } & ValidHost);

/**
 * Validates NetworkDiagParams on the agent, before anything runs: the action must be known; the target must be a
 * host name or IP (ping, traceroute) or host:port (connect); for netstat it is unused and must be empty,
 * "Local System" or a host (so no string parameter ever carries shell text, even an unused one). Counts and
 * timeouts are capped (see the constants above). Throws {@link InvalidParamError}.
 */
export function parseNetworkParams(p: NetworkDiagParams): NetworkRequest {
  switch (p.action) {
    case NetworkAction.PING:
      return {
        action: "ping",
        target: p.target,
        ...parseHost(p.target),
        count: clampInt(p.count, PING_COUNT),
        timeoutMs: clampInt(p.timeoutMs, PING_TIMEOUT_MS),
      };
    case NetworkAction.CONNECT:
      return { action: "connect", target: p.target, ...parseHostPort(p.target), timeoutMs: clampInt(p.timeoutMs, CONNECT_TIMEOUT_MS) };
    case NetworkAction.NETSTAT:
      if (p.target !== "" && p.target !== NETSTAT_TARGET) parseHost(p.target);
      return { action: "netstat", target: NETSTAT_TARGET };
    case NetworkAction.TRACEROUTE:
      return {
        action: "traceroute",
        target: p.target,
        ...parseHost(p.target),
        maxHops: clampInt(p.maxHops, TRACE_MAX_HOPS),
        probes: clampInt(p.count, TRACE_PROBES),
        waitMs: clampInt(p.timeoutMs, TRACE_WAIT_MS),
      };
    default:
      throw new InvalidParamError(
        p.action === NetworkAction.UNSPECIFIED ? "action required (ping, connect, netstat or traceroute)" : `unknown action ${quote(String(p.action))}`,
      );
  }
}
