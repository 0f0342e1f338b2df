import { isIP } from "node:net";

/**
 * Agent-side checks of diagnostic parameters. The server validates before queuing; the agent checks again with its
 * own code (it never imports server/), because a command may come from an older server or a legacy client, and
 * these values end up as program arguments. Grammar: docs/data-sources.md, section 5.
 */

/** A parameter the agent refuses. The message is meant for the admin (it becomes the command's `error`). */
export class InvalidParamError extends Error {
  override name = "InvalidParamError";
}

// RFC 1123 labels: letters, digits and inner hyphens, 1-63 characters; the whole name at most 253 characters.
const LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const HOST_NAME = new RegExp(`^(?=.{1,253}\\.?$)${LABEL}(?:\\.${LABEL})*\\.?$`);

/** A validated host: the name or IP literal (IPv6 without brackets) and its IP family (0 for a name). */
export interface ValidHost {
  host: string;
  family: 0 | 4 | 6;
}

/** Quotes a rejected value for an error message: escapes control characters, keeps it short. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

/**
 * Checks a host name or IP literal (`[::1]` is accepted and unwrapped; an IPv6 zone such as `fe80::1%eth0` is
 * allowed as Node's `isIP` defines it). Rejects, with a message naming the problem: empty values, whitespace and
 * control characters, a leading `-` (it would read as an option), and anything else that is neither an IP literal
 * nor an RFC 1123 name, which covers `;`, `$(…)`, backticks, quotes, slashes and `%`-escapes.
 */
export function parseHost(value: string, what = "target"): ValidHost {
  if (value === "") throw new InvalidParamError(`${what} is required`);
  if (value.length > 255) throw new InvalidParamError(`${what} is too long (${value.length} characters; at most 253)`);
  if (/[\s\p{Cc}]/u.test(value)) throw new InvalidParamError(`invalid ${what} ${quote(value)}: whitespace or control characters`);
  if (value.startsWith("-")) throw new InvalidParamError(`invalid ${what} ${quote(value)}: must not start with '-'`);
  const bracketed = value.startsWith("[") && value.endsWith("]");
  const bare = bracketed ? value.slice(1, -1) : value;
  const family = isIP(bare);
  if (family === 6) return { host: bare, family: 6 };
  if (family === 4 && !bracketed) return { host: bare, family: 4 };
  if (!bracketed && HOST_NAME.test(value)) return { host: value, family: 0 };
  throw new InvalidParamError(`invalid ${what} ${quote(value)}: not a host name or IP address`);
}

/** A validated `host:port`. */
export interface ValidHostPort extends ValidHost {
  port: number;
}

/** Checks `host:port`, with an IPv6 literal in brackets (`[::1]:22`); ports 1-65535. */
export function parseHostPort(value: string, what = "target"): ValidHostPort {
  const m = /^(\[[^\]]*\]|[^:[\]]*):([0-9]{1,5})$/.exec(value);
  if (!m) {
    // Check the host part first: an injection attempt gets the more precise message.
    if (/[\s\p{Cc}]/u.test(value) || value.startsWith("-")) parseHost(value, what);
    throw new InvalidParamError(`invalid ${what} ${quote(value)}: must be host:port (IPv6 as [addr]:port)`);
  }
  const port = Number(m[2]);
  const host = parseHost(m[1] ?? "", `${what} host`);
  if (port < 1 || port > 65535) throw new InvalidParamError(`invalid ${what} ${quote(value)}: port ${port} is out of range 1-65535`);
  return { ...host, port };
}

/** Bounds for {@link clampInt}. */
export interface IntBounds {
  /** Used when the value is 0 (proto3's "not set"). */
  default: number;
  min: number;
  max: number;
}

/** 0 (unset) becomes the default; anything else is clamped into [min, max]. Counts and timeouts are capped, not refused. */
export function clampInt(value: number, bounds: IntBounds): number {
  if (!Number.isFinite(value) || value === 0) return bounds.default;
  return Math.min(bounds.max, Math.max(bounds.min, Math.trunc(value)));
}
