import { create } from "@bufbuild/protobuf";
import { isIP } from "node:net";
import {
  CommandType,
  DiskUsageParamsSchema,
  FetchLogsParamsSchema,
  LogLevel,
  NetworkAction,
  NetworkDiagParamsSchema,
  type Command,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import { InvalidInputError } from "../errors.js";

/** Default `top_n` of a disk scan (legacy trigger default). */
export const DEFAULT_TOP_N = 20;
/** Hard caps applied before a command is queued (the agent checks again). */
export const MAX_TOP_N = 1000;
export const MAX_LOG_LIMIT = 25_000;
export const MAX_PING_COUNT = 100;
export const MAX_NETWORK_TIMEOUT_MS = 10_000;
export const MAX_HOPS = 64;

/** The params oneof of a command. */
export type CommandParams = Exclude<Command["params"], { case: undefined }>;

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** True for an IPv4/IPv6 literal or a DNS host name (no spaces, no shell characters, no leading '-'). */
export function isValidHost(s: string): boolean {
  // Brackets only around IPv6 literals ("[::1]"), as in URLs.
  if (s.startsWith("[") && s.endsWith("]")) return isIP(s.slice(1, -1)) === 6;
  return isIP(s) !== 0 || HOST_NAME.test(s);
}

/** Splits and checks "host:port" (IPv6 as "[::1]:22"). */
export function parseHostPort(target: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(target);
  if (!m) throw new InvalidInputError(`target ${JSON.stringify(target)} must be host:port`);
  const host = m[1]!;
  const port = Number(m[2]);
  if (!isValidHost(host)) throw new InvalidInputError(`invalid host ${JSON.stringify(host)}`);
  if (port < 1 || port > 65535) throw new InvalidInputError(`port ${port} is out of range 1-65535`);
  return { host, port };
}

/**
 * Validates a command's parameters and fills the defaults; returns the command type.
 * Throws InvalidInputError with a message fit for the client.
 */
export function normalizeParams(p: CommandParams): { type: CommandType; params: CommandParams } {
  switch (p.case) {
    case "fetchLogs": {
      const v = create(FetchLogsParamsSchema, p.value);
      if (v.minLevel === LogLevel.UNSPECIFIED) v.minLevel = LogLevel.ERROR;
      if (!(v.minLevel in LogLevel)) throw new InvalidInputError(`unknown min_level ${v.minLevel}`);
      if (v.limit > MAX_LOG_LIMIT) throw new InvalidInputError(`limit ${v.limit} is above ${MAX_LOG_LIMIT}`);
      if (v.since && v.until && v.since.seconds > v.until.seconds) throw new InvalidInputError("since is after until");
      // A systemd unit or a Windows event source: no control characters, never option-like.
      // eslint-disable-next-line no-control-regex
      if (v.unit.length > 256 || /[\x00-\x1f\x7f]/.test(v.unit) || v.unit.startsWith("-")) {
        throw new InvalidInputError(`invalid unit ${JSON.stringify(v.unit.slice(0, 80))}`);
      }
      return { type: CommandType.FETCH_LOGS, params: { case: "fetchLogs", value: v } };
    }
    case "diskUsage": {
      const v = create(DiskUsageParamsSchema, p.value);
      if (v.topN === 0) v.topN = DEFAULT_TOP_N;
      if (v.topN > MAX_TOP_N) throw new InvalidInputError(`top_n ${v.topN} is above ${MAX_TOP_N}`);
      if (v.path !== "") v.path = normalizePath(v.path);
      return { type: CommandType.DISK_USAGE, params: { case: "diskUsage", value: v } };
    }
    case "listMounts":
      return { type: CommandType.LIST_MOUNTS, params: p };
    case "networkDiag": {
      const v = create(NetworkDiagParamsSchema, p.value);
      if (v.count > MAX_PING_COUNT) throw new InvalidInputError(`count ${v.count} is above ${MAX_PING_COUNT}`);
      if (v.timeoutMs > MAX_NETWORK_TIMEOUT_MS) {
        throw new InvalidInputError(`timeout_ms ${v.timeoutMs} is above ${MAX_NETWORK_TIMEOUT_MS}`);
      }
      if (v.maxHops > MAX_HOPS) throw new InvalidInputError(`max_hops ${v.maxHops} is above ${MAX_HOPS}`);
      switch (v.action) {
        case NetworkAction.PING:
        case NetworkAction.TRACEROUTE:
          if (!isValidHost(v.target)) throw new InvalidInputError(`invalid target ${JSON.stringify(v.target)}`);
          break;
        case NetworkAction.CONNECT:
          parseHostPort(v.target);
          break;
        case NetworkAction.NETSTAT:
          v.target = "";
          break;
        default:
          throw new InvalidInputError("Action required");
      }
      return { type: CommandType.NETWORK_DIAG, params: { case: "networkDiag", value: v } };
    }
  }
}

/** An absolute path, Unix ("/var/log") or Windows ("C:\\Users"), with "." and ".." resolved. */
export function normalizePath(path: string): string {
  if (path.length > 4096 || path.includes("\0")) throw new InvalidInputError("invalid path");
  const win = /^[A-Za-z]:[\\/]/.exec(path);
  if (!win && !path.startsWith("/")) throw new InvalidInputError(`path ${JSON.stringify(path)} must be absolute`);
  const sep = win ? "\\" : "/";
  const parts: string[] = [];
  for (const seg of path.slice(win ? 3 : 1).split(/[\\/]+/)) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return (win ? path.slice(0, 2).toUpperCase() + sep : "/") + parts.join(sep);
}
