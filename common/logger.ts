import { pino, type Logger } from "pino";

export type { Logger };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** pino level; defaults to SPECTRA_LOG_LEVEL or "info". */
  level?: string;
  /** Component name put on every line ("server", "agent"). */
  name: string;
  /** Where to write; defaults to stderr so stdout stays free for data (`--once`). */
  destination?: NodeJS.WritableStream;
}

/**
 * Fields that would hold a secret if anything logged them (request headers, request messages of Enroll and
 * CommandPoll): written as "[redacted]". Nothing is meant to log them; this is the net under that rule.
 */
export const REDACTED_PATHS = [
  "authorization",
  "headers.authorization",
  "req.headers.authorization",
  "request.headers.authorization",
  "*.authorization",
  "*.headers.authorization",
  "agentKey",
  "newAgentKey",
  "enrollmentToken",
  "enrollmentSecret",
  "*.agentKey",
  "*.newAgentKey",
  "*.enrollmentToken",
  "*.enrollmentSecret",
  "agent_key",
  "enrollment_token",
  "enrollment_secret",
];

/** Creates the one structured (JSON lines) logger of a process; children carry identity. */
export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? process.env["SPECTRA_LOG_LEVEL"] ?? "info";
  return pino(
    { name: opts.name, level, base: { pid: process.pid }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } },
    opts.destination ?? process.stderr,
  );
}

/** A logger that writes nothing, for tests. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
