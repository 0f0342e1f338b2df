import type * as http2 from "node:http2";
import https from "node:https";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createNodeHttpClient, Http2SessionManager } from "@connectrpc/connect-node";
import type { Compression } from "@connectrpc/connect/protocol";
import { gzip } from "../../common/gzip.js";
import type { Logger } from "../../common/logger.js";
import { AgentService, type HostInfo, type StreamMetricsResponse } from "../../gen/spectra/v1/agent_service_pb.js";
import { createBackoff, formatDelay, sleep, type Backoff } from "./backoff.js";
import { authInterceptor, type Credential } from "./credentials.js";
import { createRawClientStream, type RawCallOptions, type RawClientStreamFn } from "./raw-stream.js";
import { clientTlsOptions, pinnedHttp2Options, pinnedHttpsAgent, type ClientTls, type ServerPin } from "./tls-pin.js";

/** The Connect client of the AgentService. */
export type AgentClient = Client<typeof AgentService>;

/** "h2": HTTP/2 (h2c for http://, TLS+ALPN for https://); "http1": the HTTP/1.1 fallback. */
export type HttpMode = "h2" | "http1";

/** What kind of failure a call ended with; drives logging and the HTTP/1.1 fallback. */
export type FailureKind =
  /** No connection: refused, DNS, unreachable network, connect timeout. */
  | "unreachable"
  /** Connected, but HTTP/2 failed at the protocol level (an HTTP/1.1-only server or proxy). */
  | "protocol"
  /** The connection was reset or the stream cancelled by the peer. */
  | "reset"
  /** Our own deadline passed. */
  | "timeout"
  /** The server answered with an error code. */
  | "server"
  /** We aborted (shutdown). */
  | "canceled"
  | "other";

/** A classified failure with a one-line reason for logs (never a stack). */
export interface Failure {
  kind: FailureKind;
  /** E.g. "ECONNREFUSED", "[internal] Protocol error". */
  reason: string;
  code: Code;
}

/** Options for {@link createAgentConnection}. */
export interface AgentConnectionOptions {
  /** Server base URL (http:// or https://). */
  baseUrl: string;
  logger: Logger;
  /** HTTP/2 keepalive PING interval; default 30 s. */
  pingIntervalMs?: number;
  /** A PING unanswered this long kills the connection; default 10 s. */
  pingTimeoutMs?: number;
  /** Close the HTTP/2 connection after this long without streams; default 15 min. */
  idleConnectionTimeoutMs?: number;
  /** Consecutive protocol-level HTTP/2 failures before falling back to HTTP/1.1; default 3. */
  protocolFailuresBeforeFallback?: number;
  /** How long to stay on HTTP/1.1 before trying HTTP/2 again; default 15 min. */
  retryH2AfterMs?: number;
  /** Start in this mode (tests); default "h2". */
  initialMode?: HttpMode;
  now?: () => number;
  /**
   * The agent's key: sent as `Authorization: Bearer` on every call but Enroll (read per call, so a rotation applies
   * at once), told when the server refuses or accepts it. Without it calls carry no credential.
   */
  credential?: Pick<Credential, "current" | "refused" | "accepted">;
  /** Pins the server certificate (https:// only): see ./tls-pin.ts. Without it, certificates are verified against the CAs. */
  pin?: ServerPin;
  /**
   * https:// only: the client certificate presented to a server with mutual TLS, and a CA bundle that verifies the
   * server instead of the system's CAs (ignored with a pin, which replaces verification).
   */
  tls?: ClientTls;
  /** Wait before retrying after the server refused the credential; default 5 min (with ±20 % jitter). */
  authRetryMs?: number;
  random?: () => number;
}

/**
 * The agent's connection to the server: one HTTP/2 transport shared by every RPC, and an HTTP/1.1 transport used
 * after repeated protocol-level HTTP/2 failures (then HTTP/2 is tried again every retryH2AfterMs).
 */
export interface AgentConnection {
  readonly baseUrl: string;
  /** The mode calls should use now (may switch back to "h2" for a probe after retryH2AfterMs). */
  readonly mode: HttpMode;
  /** A client for the current mode. */
  client(): AgentClient;
  /**
   * StreamMetrics over HTTP/2 (the connection's HTTP/2 session, headers, compression, interceptors and limits), with
   * each request message given as its encoded bytes (see ./raw-stream.ts). HTTP/2 only: the HTTP/1.1 fallback
   * sends PushMetrics through {@link client}.
   */
  streamMetrics(messages: AsyncIterable<Uint8Array>, options: RawCallOptions): Promise<StreamMetricsResponse>;
  /** Classifies a failed call and counts it towards the fallback. */
  reportFailure(err: unknown): Failure;
  /** Records a successful call (clears the protocol failure count). */
  reportSuccess(): void;
  /**
   * Delay before a retry loop tries again after `failure`: the loop's backoff, but at least the long auth retry
   * delay when the server refused the credential (a revoked key does not get better by hammering the server).
   */
  retryDelay(failure: Failure, backoff: Backoff): number;
  /** Closes the HTTP/2 connection. */
  close(): void;
}

/** Message size cap both ways; a batch is tens of KiB, the default (~4 GiB) invites trouble. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Creates an {@link AgentConnection}; nothing connects until the first call. */
export function createAgentConnection(opts: AgentConnectionOptions): AgentConnection {
  const now = opts.now ?? Date.now;
  const threshold = opts.protocolFailuresBeforeFallback ?? 3;
  const retryH2AfterMs = opts.retryH2AfterMs ?? 15 * 60_000;
  const log = opts.logger;
  const authRetryMs = opts.authRetryMs ?? 5 * 60_000;
  const random = opts.random ?? Math.random;
  const secure = opts.baseUrl.startsWith("https:");
  const pin = opts.pin && secure ? opts.pin : undefined;
  const clientTls = secure ? opts.tls : undefined;
  const ownTls = clientTlsOptions(clientTls, false);
  const httpsAgent = pin
    ? pinnedHttpsAgent(pin, clientTls)
    : Object.keys(ownTls).length > 0
      ? new https.Agent({ keepAlive: true, ...ownTls })
      : undefined;
  let mode: HttpMode = opts.initialMode ?? "h2";
  let fallbackSinceMs = mode === "http1" ? now() : 0;
  let probingH2 = false;
  let protocolFailures = 0;

  const h2Manager = new GuardedSessionManager(
    opts.baseUrl,
    {
      pingIntervalMs: opts.pingIntervalMs ?? 30_000,
      pingTimeoutMs: opts.pingTimeoutMs ?? 10_000,
      idleConnectionTimeoutMs: opts.idleConnectionTimeoutMs ?? 15 * 60_000,
    },
    pin ? pinnedHttp2Options(pin, clientTls) : Object.keys(ownTls).length > 0 ? ownTls : undefined,
  );
  let h2Client: AgentClient | undefined;
  let h1Client: AgentClient | undefined;
  let h2Raw: RawClientStreamFn | undefined;

  const common = {
    baseUrl: opts.baseUrl,
    useBinaryFormat: true,
    sendCompression: gzip,
    // Only messages of 1 KiB or more are gzipped (connect's default, stated here because it matters): a batch of
    // one 5 s tick is ~0.8 KB and would cost a zlib stream setup (~300 KB of buffers) to save a few hundred bytes;
    // spool replays after an outage and large collectors' batches are compressed.
    compressMinBytes: 1024,
    acceptCompression: [gzip],
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
    interceptors: opts.credential ? [authInterceptor(opts.credential)] : [],
  };

  function h2(): AgentClient {
    h2Client ??= createClient(AgentService, createConnectTransport({ ...common, httpVersion: "2", sessionManager: h2Manager }));
    return h2Client;
  }
  function h2RawStream(): RawClientStreamFn {
    h2Raw ??= createRawClientStream({ ...common, httpClient: createNodeHttpClient({ httpVersion: "2", sessionProvider: () => h2Manager }) });
    return h2Raw;
  }
  function h1(): AgentClient {
    h1Client ??= createClient(AgentService, createH1Transport(common, httpsAgent));
    return h1Client;
  }

  return {
    baseUrl: opts.baseUrl,
    get mode() {
      if (mode === "http1" && now() - fallbackSinceMs >= retryH2AfterMs) {
        mode = "h2";
        probingH2 = true;
        log.info({ server: opts.baseUrl }, "trying HTTP/2 again");
      }
      return mode;
    },
    client() {
      return this.mode === "h2" ? h2() : h1();
    },
    streamMetrics(messages, options) {
      return h2RawStream()(AgentService.method.streamMetrics, messages, options);
    },
    reportFailure(err) {
      const failure = classifyError(err);
      if (mode === "h2" && (failure.kind === "protocol" || failure.kind === "reset")) {
        protocolFailures++;
        // A probe after a fallback goes back on the first failure; a fresh agent needs several in a row.
        if (probingH2 || protocolFailures >= threshold) {
          mode = "http1";
          fallbackSinceMs = now();
          protocolFailures = 0;
          log.warn(
            { server: opts.baseUrl, err: failure.reason, retryH2In: formatDelay(retryH2AfterMs) },
            "HTTP/2 does not work with this server (an HTTP/1.1-only proxy?); falling back to HTTP/1.1 and PushMetrics",
          );
          h2Manager.abort();
        }
        probingH2 = false;
      }
      if (isAuthFailure(failure)) opts.credential?.refused(failure.reason);
      // An unreachable server says nothing about HTTP/2: a probe in progress stays a probe.
      return failure;
    },
    reportSuccess() {
      opts.credential?.accepted();
      protocolFailures = 0;
      if (probingH2) {
        probingH2 = false;
        log.info({ server: opts.baseUrl }, "HTTP/2 works again");
      }
    },
    retryDelay(failure, backoff) {
      const delay = backoff.next();
      if (!isAuthFailure(failure)) return delay;
      return Math.max(delay, Math.round(authRetryMs * (0.8 + 0.4 * random())));
    },
    close() {
      h2Manager.abort();
      httpsAgent?.destroy();
    },
  };
}

/** True when the server refused the caller's credential: none, unknown, revoked, or issued to another host. */
export function isAuthFailure(failure: Pick<Failure, "code">): boolean {
  return failure.code === Code.Unauthenticated || failure.code === Code.PermissionDenied;
}

function createH1Transport(common: {
  baseUrl: string;
  useBinaryFormat: boolean;
  sendCompression: Compression;
  compressMinBytes: number;
  acceptCompression: Compression[];
  readMaxBytes: number;
  writeMaxBytes: number;
  interceptors: Interceptor[];
}, agent: import("node:https").Agent | undefined): Transport {
  return createConnectTransport({ ...common, httpVersion: "1.1", ...(agent ? { nodeOptions: { agent } } : {}) });
}

/**
 * Http2SessionManager with one fix: connect-node 2.1 removes its "error" listener from a session it replaces, and a
 * late "error" from that session (seen against HTTP/1.1-only servers: "Protocol error") then becomes an uncaught
 * exception that would kill the agent. Every session that carries a request gets a no-op listener of ours; the
 * manager's own listeners still see the error while they are attached.
 */
class GuardedSessionManager {
  readonly authority: string;
  private readonly inner: Http2SessionManager;
  private readonly guarded = new WeakSet<http2.Http2Session>();

  constructor(
    url: string,
    options: ConstructorParameters<typeof Http2SessionManager>[1],
    sessionOptions?: ConstructorParameters<typeof Http2SessionManager>[2],
  ) {
    this.inner = new Http2SessionManager(url, options, sessionOptions);
    this.authority = this.inner.authority;
  }

  async request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: Omit<http2.ClientSessionRequestOptions, "signal">,
  ): Promise<http2.ClientHttp2Stream> {
    const stream = await this.inner.request(method, path, headers, options);
    const session = stream.session;
    if (session && !this.guarded.has(session)) {
      this.guarded.add(session);
      session.on("error", ignore);
    }
    return stream;
  }

  notifyResponseByteRead(stream: http2.ClientHttp2Stream): void {
    this.inner.notifyResponseByteRead(stream);
  }

  abort(): void {
    this.inner.abort();
  }
}

function ignore(): void {}

const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ETIMEDOUT",
  "ENETDOWN",
]);
const RESET_CODES = new Set(["ECONNRESET", "EPIPE", "ERR_HTTP2_GOAWAY_SESSION", "ERR_HTTP2_STREAM_CANCEL", "ERR_STREAM_PREMATURE_CLOSE"]);

/** Classifies any error from a Connect call into a {@link Failure}. */
export function classifyError(err: unknown): Failure {
  const ce = ConnectError.from(err);
  const chain = errorChain(err);
  const codes = chain.map((e) => (e as { code?: unknown }).code).filter((c): c is string => typeof c === "string");
  const messages = chain.map((e) => e.message).join(" | ");
  const netCode = codes.find((c) => UNREACHABLE_CODES.has(c));
  if (netCode) return { kind: "unreachable", reason: netCode, code: ce.code };
  if (
    codes.some((c) => c === "ERR_HTTP2_ERROR" || c === "ERR_HTTP2_SESSION_ERROR" || c === "ERR_HTTP2_PROTOCOL_ERROR") ||
    /protocol error|HTTP_1_1_REQUIRED|HTTP 505|HTTP\/1\.1|ALPN/i.test(messages)
  ) {
    return { kind: "protocol", reason: reasonOf(ce), code: ce.code };
  }
  const resetCode = codes.find((c) => RESET_CODES.has(c));
  if (resetCode) return { kind: "reset", reason: resetCode, code: ce.code };
  if (ce.code === Code.DeadlineExceeded) return { kind: "timeout", reason: reasonOf(ce), code: ce.code };
  if (ce.code === Code.Canceled) {
    // A CANCEL from the peer (connection dropped on us) is a reset; our own abort carries our reason.
    return /stream closed with error code CANCEL/.test(messages)
      ? { kind: "reset", reason: reasonOf(ce), code: ce.code }
      : { kind: "canceled", reason: reasonOf(ce), code: ce.code };
  }
  if (ce.code === Code.Aborted) return { kind: "reset", reason: reasonOf(ce), code: ce.code };
  if (ce.code === Code.Unavailable) return { kind: "unreachable", reason: reasonOf(ce), code: ce.code };
  if (ce.code !== Code.Unknown && ce.code !== Code.Internal) return { kind: "server", reason: reasonOf(ce), code: ce.code };
  return { kind: "other", reason: reasonOf(ce), code: ce.code };
}

/** The log line for a failed attempt: "server http://… unreachable: ECONNREFUSED; retrying in 4 s". */
export function retryMessage(baseUrl: string, rpc: string, failure: Failure, delayMs: number): string {
  const retry = `retrying in ${formatDelay(delayMs)}`;
  if (failure.kind === "unreachable") return `server ${baseUrl} unreachable: ${failure.reason}; ${retry}`;
  return `${rpc} to ${baseUrl} failed: ${failure.reason}; ${retry}`;
}

/**
 * Rate-limits the warning of a retry loop: every one of the first `burst` failures, then one every `everyMs`, and
 * one info line on recovery. Keeps a long outage from filling the log.
 */
export class RetryLog {
  private failures = 0;
  private lastWarnMs = 0;
  constructor(
    private readonly logger: Logger,
    private readonly burst = 3,
    private readonly everyMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs a failed attempt (maybe). */
  failed(message: string, fields: Record<string, unknown> = {}): void {
    this.failures++;
    const t = this.now();
    if (this.failures <= this.burst || t - this.lastWarnMs >= this.everyMs) {
      this.lastWarnMs = t;
      this.logger.warn({ ...fields, attempt: this.failures }, message);
    } else {
      this.logger.debug({ ...fields, attempt: this.failures }, message);
    }
  }

  /** Logs recovery when there were failures; resets the count. */
  succeeded(message: string, fields: Record<string, unknown> = {}): void {
    if (this.failures > 0) this.logger.info({ ...fields, failedAttempts: this.failures }, message);
    this.failures = 0;
  }
}

/** Options for {@link registerWithRetry}. */
export interface RegisterOptions {
  connection: AgentConnection;
  /** Host info, built once by the caller. */
  host: HostInfo;
  collectors: readonly string[];
  /** Diagnostics the agent's config allows (proto names, e.g. "disk_usage"). */
  diagnostics?: readonly string[];
  /** How often the agent sends batches (its heartbeat), for the server's online/stale/offline thresholds. */
  reportIntervalMs?: number;
  logger: Logger;
  signal: AbortSignal;
  backoff?: Backoff;
  /** Per-attempt timeout; default 10 s. */
  timeoutMs?: number;
}

/**
 * Calls AgentService.Register until the server answers, with backoff and jitter. Resolves true once registered,
 * false when `signal` aborted first. Never throws.
 */
export async function registerWithRetry(opts: RegisterOptions): Promise<boolean> {
  const backoff = opts.backoff ?? createBackoff();
  const retryLog = new RetryLog(opts.logger);
  while (!opts.signal.aborted) {
    try {
      await opts.connection.client().register(
        {
          host: opts.host,
          collectors: [...opts.collectors],
          diagnostics: [...(opts.diagnostics ?? [])],
          ...(opts.reportIntervalMs !== undefined ? { reportInterval: durationFromMs(opts.reportIntervalMs) } : {}),
        },
        { signal: opts.signal, timeoutMs: opts.timeoutMs ?? 10_000 },
      );
      opts.connection.reportSuccess();
      retryLog.succeeded("server reachable again");
      opts.logger.info({ server: opts.connection.baseUrl, hostname: opts.host.hostname }, "registered with the server");
      return true;
    } catch (err) {
      if (opts.signal.aborted) break;
      const failure = opts.connection.reportFailure(err);
      const delay = opts.connection.retryDelay(failure, backoff);
      // A refused credential is logged once by the credential itself.
      if (isAuthFailure(failure)) opts.logger.debug({ rpc: "Register", err: failure.reason, delayMs: delay }, "credential refused");
      else retryLog.failed(retryMessage(opts.connection.baseUrl, "Register", failure, delay), { rpc: "Register" });
      await sleep(delay, opts.signal);
    }
  }
  return false;
}

function errorChain(err: unknown): Error[] {
  const chain: Error[] = [];
  let cur: unknown = err;
  while (cur instanceof Error && !chain.includes(cur) && chain.length < 10) {
    chain.push(cur);
    cur = cur.cause;
  }
  return chain;
}

function reasonOf(ce: ConnectError): string {
  return `[${codeName(ce.code)}] ${ce.rawMessage}`;
}

function codeName(code: Code): string {
  // Code is a numeric enum: Code[14] === "Unavailable"; the wire names are snake_case.
  const name = Code[code] as string | undefined;
  return name ? name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() : String(code);
}
