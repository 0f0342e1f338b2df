import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { join } from "node:path";
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../../common/logger.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { EnrollmentState } from "../../gen/spectra/v1/access_service_pb.js";
import type { EnrollRequestSchema, EnrollResponse, HostInfo } from "../../gen/spectra/v1/agent_service_pb.js";
import { createBackoff, formatDelay, sleep as realSleep, type Backoff } from "./backoff.js";
import { isAuthFailure, RetryLog, retryMessage, type AgentConnection } from "./client.js";
import { readSecretFile, writeSecretFile, type Credential } from "./credentials.js";

/*
 * Enrollment: an agent without a key asks to join with an enrollment token, then waits (polling Enroll) until an
 * admin approves it and the server hands out its key, which goes to <data-dir>/agent.key.
 *
 *   <data-dir>/enrollment.json   {"version":1,"enrollmentId":"…","secret":"…"}, mode 0600, replaced atomically
 *
 * The secret is generated once, saved before the first call and sent on every call of the enrollment, so only this
 * agent can collect its key, and a restart continues the same enrollment: with an id it polls by id and secret and
 * does not use the token again (a single-use token may be spent); without one yet (the agent stopped before the
 * first answer) it repeats the first call with the same secret. The token itself is never written to disk. The file
 * is deleted once the key is stored; delete it by hand to start a new enrollment.
 */

/** File name of the enrollment state in the data directory. */
export const ENROLLMENT_FILE = "enrollment.json";

/** What enrollment.json holds. */
export interface EnrollmentFile {
  version: 1;
  /** Empty until the server answered the first call. */
  enrollmentId: string;
  secret: string;
}

/** Reads enrollment.json; undefined when missing or unreadable (an unreadable one is logged and replaced later). */
export function readEnrollmentFile(dataDir: string, logger: Logger): EnrollmentFile | undefined {
  const path = join(dataDir, ENROLLMENT_FILE);
  let text: string | undefined;
  try {
    text = readSecretFile(path, logger);
  } catch (err) {
    logger.warn({ file: path, err: err instanceof Error ? err.message : String(err) }, "enrollment state unreadable; enrolling anew");
    return undefined;
  }
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Partial<EnrollmentFile>;
    if (v.version === 1 && typeof v.enrollmentId === "string" && typeof v.secret === "string" && v.secret.length >= 16) {
      return { version: 1, enrollmentId: v.enrollmentId, secret: v.secret };
    }
  } catch {
    // Fall through.
  }
  logger.warn({ file: path }, "enrollment state is not valid; enrolling anew");
  return undefined;
}

/** How enrollment ended. */
export type EnrollOutcome =
  /** The key is stored and in use. */
  | "enrolled"
  /** Nothing to enroll with (no token and no enrollment in progress): go on without a credential. */
  | "no-credential"
  /** The signal aborted first. */
  | "stopped";

/** What goes into every Enroll call besides token, id and secret. */
export interface EnrollInfo {
  host: HostInfo;
  collectors: readonly string[];
  /** How often the agent sends batches (its heartbeat). */
  reportIntervalMs: number;
}

/** Options for {@link enrollWithRetry}. */
export interface EnrollOptions {
  connection: AgentConnection;
  /** Where the key goes once approved. */
  credential: Pick<Credential, "store">;
  dataDir: string;
  /** The token and the setting it came from (for messages); undefined when only an enrollment in progress can continue. */
  token: { value: string; setting: string } | undefined;
  info: EnrollInfo;
  logger: Logger;
  signal: AbortSignal;
  /** Backoff after network and server failures; default 1 s → 60 s. */
  backoff?: Backoff;
  /** Poll interval while pending when the server gives no retry_after; default 10 s. */
  pollMs?: number;
  /** Bounds on the server's retry_after while pending; default 1 s to 5 min. */
  minPollMs?: number;
  maxPollMs?: number;
  /**
   * Wait after a denial, a refused token or a server without enrollment, when the server gives no retry_after;
   * default 1 h. A retry_after from the server is used within [minRefusedRetryMs, 24 h].
   */
  refusedRetryMs?: number;
  /** Default 1 min. */
  minRefusedRetryMs?: number;
  /** Per-call timeout; default 15 s. */
  timeoutMs?: number;
  random?: () => number;
  /** Injectable for tests (a fake clock); resolves false when aborted. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<boolean>;
}

/**
 * Enrolls this agent: calls Enroll with the token (first) or the enrollment id (later), both with the agent's
 * enrollment secret, and polls while pending, waiting the server's retry_after (bounded, with jitter). On approval
 * the key is stored (credential.store) and enrollment.json deleted. A denial, a refused token or a server without
 * enrollment is logged once, clearly, and retried only rarely (hourly by default); network failures back off as
 * every other call does. Never throws; never logs the token, the secret or the key.
 */
export async function enrollWithRetry(opts: EnrollOptions): Promise<EnrollOutcome> {
  const log = opts.logger;
  const statePath = join(opts.dataDir, ENROLLMENT_FILE);
  const backoff = opts.backoff ?? createBackoff();
  const random = opts.random ?? Math.random;
  const sleep = opts.sleep ?? ((ms: number, signal: AbortSignal) => realSleep(ms, signal));
  const pollMs = opts.pollMs ?? 10_000;
  const minPollMs = opts.minPollMs ?? 1_000;
  const maxPollMs = opts.maxPollMs ?? 5 * 60_000;
  const refusedRetryMs = opts.refusedRetryMs ?? 3_600_000;
  const minRefusedRetryMs = opts.minRefusedRetryMs ?? 60_000;
  const retryLog = new RetryLog(log);
  const jitter = (ms: number): number => Math.round(ms * (0.9 + 0.2 * random()));
  const clamp = (ms: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, ms));
  const retryAfterOf = (res: EnrollResponse): number | undefined => {
    const ms = res.retryAfter ? durationMs(res.retryAfter) : 0;
    return ms > 0 ? ms : undefined;
  };
  const refusedDelay = (serverMs: number | undefined): number =>
    jitter(serverMs === undefined ? refusedRetryMs : clamp(serverMs, minRefusedRetryMs, 24 * 3_600_000));
  // The last thing said at error level, so that a condition is logged once, not at every retry.
  let lastNotice = "";
  const notice = (key: string, fields: Record<string, unknown>, message: string): void => {
    if (key === lastNotice) {
      log.debug(fields, message);
      return;
    }
    lastNotice = key;
    log.error(fields, message);
  };

  let state = readEnrollmentFile(opts.dataDir, log);
  if (!state?.enrollmentId && !opts.token) return "no-credential";
  let pendingLogged = false;

  while (!opts.signal.aborted) {
    if (!state) {
      state = { version: 1, enrollmentId: "", secret: randomBytes(32).toString("base64url") };
      // Saved before the first call: a restart repeats it with the same secret, which the server recognises.
      if (!(await save(state))) return "stopped";
    }
    const byId = state.enrollmentId !== "";
    const req: MessageInitShape<typeof EnrollRequestSchema> = {
      host: opts.info.host,
      collectors: [...opts.info.collectors],
      enrollmentSecret: state.secret,
      reportInterval: durationFromMs(opts.info.reportIntervalMs),
      ...(byId ? { enrollmentId: state.enrollmentId } : { enrollmentToken: opts.token?.value ?? "" }),
    };
    let delay: number;
    try {
      const res = await opts.connection.client().enroll(req, { signal: opts.signal, timeoutMs: opts.timeoutMs ?? 15_000 });
      opts.connection.reportSuccess();
      retryLog.succeeded("server reachable again");
      backoff.reset();
      if (res.enrollmentId !== "" && res.enrollmentId !== state.enrollmentId) {
        state = { ...state, enrollmentId: res.enrollmentId };
        if (!(await save(state))) return "stopped";
      }
      const enrollment = state.enrollmentId || undefined;
      switch (res.state) {
        case EnrollmentState.APPROVED: {
          if (res.agentKey === "") {
            notice(
              "approved-without-key",
              { enrollment },
              "the server approved this agent but sent no key (it was handed out already); ask an admin to rotate the " +
                `agent's key or remove the agent, then delete ${ENROLLMENT_FILE} and enroll again`,
            );
            delay = refusedDelay(retryAfterOf(res));
            break;
          }
          try {
            await opts.credential.store(res.agentKey, "enrolled");
          } catch (err) {
            // The server hands the key out again until it is used: try again soon.
            notice("store-failed", { err: err instanceof Error ? err.message : String(err) }, "could not store the agent key; retrying");
            delay = jitter(pollMs);
            break;
          }
          await fs.promises.rm(statePath, { force: true }).catch((err: unknown) => {
            log.warn({ file: statePath, err: err instanceof Error ? err.message : String(err) }, "could not delete the enrollment state");
          });
          return "enrolled";
        }
        case EnrollmentState.PENDING: {
          if (!pendingLogged) {
            pendingLogged = true;
            log.info({ enrollment, server: opts.connection.baseUrl }, "enrollment pending: waiting for an admin to approve this agent");
          }
          lastNotice = "";
          delay = jitter(clamp(retryAfterOf(res) ?? pollMs, minPollMs, maxPollMs));
          log.debug({ enrollment, delayMs: delay }, "enrollment still pending");
          break;
        }
        case EnrollmentState.DENIED:
        case EnrollmentState.REVOKED: {
          delay = refusedDelay(retryAfterOf(res));
          const what = res.state === EnrollmentState.DENIED ? "denied" : "revoked";
          notice(
            what,
            { enrollment, retryIn: formatDelay(delay) },
            `enrollment ${what} by the server: ${res.message || "no reason given"}`,
          );
          pendingLogged = false;
          break;
        }
        default:
          delay = jitter(clamp(retryAfterOf(res) ?? pollMs, minPollMs, maxPollMs));
          log.warn({ enrollment, state: res.state }, "the server answered Enroll with an unknown state; asking again");
      }
    } catch (err) {
      if (opts.signal.aborted) break;
      const ce = ConnectError.from(err);
      const failure = { code: ce.code };
      if (byId && ce.code === Code.NotFound) {
        // The server lost the enrollment (its database was reset): start over with the token, if there is one.
        log.warn({ enrollment: state.enrollmentId, reason: ce.rawMessage }, "the server does not know this enrollment; starting a new one");
        await fs.promises.rm(statePath, { force: true }).catch(() => undefined);
        state = undefined;
        if (!opts.token) {
          log.error(
            "no enrollment token to start a new enrollment with: set --enroll-token (or SPECTRA_ENROLL_TOKEN); continuing without a credential",
          );
          return "no-credential";
        }
        continue;
      }
      if (isAuthFailure(failure)) {
        delay = refusedDelay(undefined);
        if (byId) {
          notice(
            `refused-id-${ce.rawMessage}`,
            { enrollment: state.enrollmentId, reason: ce.rawMessage, retryIn: formatDelay(delay) },
            `the server refused this agent's enrollment; to start a new one, delete ${statePath} and restart with a new enrollment token`,
          );
        } else {
          const setting = opts.token?.setting ?? "--enroll-token";
          notice(
            `refused-token-${ce.rawMessage}`,
            { reason: ce.rawMessage, retryIn: formatDelay(delay) },
            `the server refused the enrollment token from ${setting} (expired, already used or revoked?): give the agent a new token`,
          );
        }
      } else if (ce.code === Code.Unimplemented) {
        delay = refusedDelay(undefined);
        notice(
          "unimplemented",
          { server: opts.connection.baseUrl, retryIn: formatDelay(delay) },
          "this server does not support enrollment (an older version?); start the agent without an enrollment token there",
        );
      } else {
        const f = opts.connection.reportFailure(err);
        delay = backoff.next();
        retryLog.failed(retryMessage(opts.connection.baseUrl, "Enroll", f, delay), { rpc: "Enroll" });
      }
    }
    if (!(await sleep(delay, opts.signal))) break;
  }
  return "stopped";

  async function save(s: EnrollmentFile): Promise<boolean> {
    for (;;) {
      try {
        await writeSecretFile(statePath, `${JSON.stringify(s)}\n`);
        return true;
      } catch (err) {
        const delay = backoff.next();
        const reason = err instanceof Error ? err.message : String(err);
        notice("save-failed", { file: statePath, err: reason }, "cannot save the enrollment state; retrying");
        if (!(await sleep(delay, opts.signal))) return false;
      }
    }
  }
}
