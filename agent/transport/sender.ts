import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../../common/logger.js";
import {
  PushMetricsRequestSchema,
  StreamMetricsRequestSchema,
  type PushMetricsRequest,
} from "../../gen/spectra/v1/agent_service_pb.js";
import { createBackoff, sleep, type Backoff } from "./backoff.js";
import { isAuthFailure, RetryLog, retryMessage, type AgentConnection } from "./client.js";
import type { Spool, SpooledBatch } from "./spool.js";

/** Field number of `batch` in StreamMetricsRequest and PushMetricsRequest. */
const BATCH_FIELD = 1;

/**
 * A request carrying a spooled batch as the bytes the spool holds, without decoding and re-encoding it: the bytes
 * go in as an unknown field with the number of `batch`, which protobuf serialization writes out as is (tag, length,
 * bytes), so the server reads an ordinary `batch` field. Saves a decode and an encode of every batch sent.
 */
export function requestWithBatch<S extends typeof StreamMetricsRequestSchema | typeof PushMetricsRequestSchema>(
  schema: S,
  row: Pick<SpooledBatch, "data">,
): MessageShape<S> {
  const msg = create(schema as DescMessage) as MessageShape<S>;
  msg.$unknown = [{ no: BATCH_FIELD, wireType: WireType.LengthDelimited, data: lengthPrefixed(row.data) }];
  return msg;
}

/**
 * The encoded request (StreamMetricsRequest or PushMetricsRequest: `batch` is field 1 of both) carrying a spooled
 * batch: the bytes protobuf-es writes for {@link requestWithBatch}'s message, the field's tag, the batch's length
 * and the batch, built without a message object. StreamMetrics sends these (see ./raw-stream.ts).
 */
export function encodeRequestWithBatch(row: Pick<SpooledBatch, "data">): Uint8Array {
  return lengthPrefixed(row.data, BATCH_TAG);
}

/** The tag of field 1, length-delimited: (1 << 3) | 2. */
const BATCH_TAG = (BATCH_FIELD << 3) | WireType.LengthDelimited;

/** `data` after its length as a varint, and after `tag` (one byte) when given. */
function lengthPrefixed(data: Uint8Array, tag?: number): Uint8Array {
  let n = data.byteLength;
  let varint = 1;
  while (n > 0x7f) {
    n >>>= 7;
    varint++;
  }
  let i = tag === undefined ? 0 : 1;
  const out = new Uint8Array(i + varint + data.byteLength);
  if (tag !== undefined) out[0] = tag;
  n = data.byteLength;
  while (n > 0x7f) {
    out[i++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[i++] = n;
  out.set(data, i);
  return out;
}

/** Options for {@link createSender}. */
export interface SenderOptions {
  connection: AgentConnection;
  spool: Spool;
  logger: Logger;
  /** How long one StreamMetrics stream stays open collecting batches before it half-closes for acks; default 30 s. */
  windowMs?: number;
  /** Most batches per stream; default 50. */
  windowBatches?: number;
  backoff?: Backoff;
  /** Timeout of a unary PushMetrics call, and the grace after a stream window for the server's answer; default 15 s. */
  callTimeoutMs?: number;
  /** How long stop() waits for the current window's acknowledgements; default 5 s. */
  stopTimeoutMs?: number;
}

/** Counters for /debug/vars and tests. */
export interface SenderStats {
  mode: string;
  windows: number;
  sentBatches: number;
  ackedBatches: number;
  rejectedBatches: number;
  failures: number;
}

/** Moves batches from the spool to the server and retires them when acknowledged. */
export interface Sender {
  start(): void;
  /** Tells the sender a new batch is in the spool. */
  notify(): void;
  /** Half-closes the current stream, waits briefly for its acknowledgements, then stops. */
  stop(): Promise<void>;
  stats(): SenderStats;
}

/**
 * Creates a {@link Sender}. Over HTTP/2 it keeps a client stream (StreamMetrics) open for a window of up to
 * `windowMs` or `windowBatches`, then half-closes it and applies the response: acked and rejected sequences leave the
 * spool, anything else is sent again in the next window (the server drops replays by session and sequence). Over
 * the HTTP/1.1 fallback it sends one batch per PushMetrics call. Failures reconnect with backoff and jitter.
 */
export function createSender(opts: SenderOptions): Sender {
  const { connection, spool } = opts;
  const log = opts.logger;
  const windowMs = opts.windowMs ?? 30_000;
  const windowBatches = opts.windowBatches ?? 50;
  const callTimeoutMs = opts.callTimeoutMs ?? 15_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 5_000;
  const backoff = opts.backoff ?? createBackoff();
  const retryLog = new RetryLog(log);
  const stats: SenderStats = { mode: connection.mode, windows: 0, sentBatches: 0, ackedBatches: 0, rejectedBatches: 0, failures: 0 };

  let stopping = false;
  // Aborts the calls in flight; fired by stop() after the grace period.
  const hardStop = new AbortController();
  // Ends sleeps and waits as soon as stop() is called.
  const stopSignal = new AbortController();
  let loop: Promise<void> | undefined;
  const waiters = new Set<() => void>();

  function notify(): void {
    for (const wake of waiters) wake();
    waiters.clear();
  }

  /** Waits for notify(), `ms`, or abort; true when notified. */
  function waitForBatch(ms: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted || stopping) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (woken: boolean): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        waiters.delete(onWake);
        resolve(woken);
      };
      const onWake = (): void => done(true);
      const onAbort = (): void => done(false);
      const timer = setTimeout(() => done(false), ms);
      waiters.add(onWake);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * One StreamMetrics window; returns how many batches left the spool. The requests go out as the spool's bytes
   * behind the request's field tag (encodeRequestWithBatch), written to the HTTP/2 stream without connect's
   * per-message pipeline (connection.streamMetrics).
   */
  async function streamWindow(): Promise<number> {
    const windowEnd = Date.now() + windowMs;
    const sent: bigint[] = [];
    const call = new AbortController();
    const onHardStop = (): void => call.abort(new Error("agent stopping"));
    hardStop.signal.addEventListener("abort", onHardStop, { once: true });

    async function* requests(): AsyncGenerator<Uint8Array> {
      let cursor: bigint | undefined;
      while (sent.length < windowBatches && !call.signal.aborted) {
        const rows = await spool.read(cursor, Math.min(16, windowBatches - sent.length));
        if (rows.length === 0) {
          // At shutdown the window takes what is spooled now (the final flush included), then half-closes.
          if (stopping) return;
          const remaining = windowEnd - Date.now();
          if (remaining <= 0 || !(await waitForBatch(remaining, call.signal))) return;
          continue;
        }
        for (const row of rows) {
          cursor = row.sequence;
          sent.push(row.sequence);
          stats.sentBatches++;
          yield encodeRequestWithBatch(row);
        }
      }
    }

    stats.windows++;
    try {
      const res = await connection.streamMetrics(requests(), { signal: call.signal, timeoutMs: windowMs + callTimeoutMs });
      const acked = new Set(res.ackedSequences);
      const rejected = new Set(res.rejectedSequences);
      const removed = spool.remove([...acked, ...rejected]);
      stats.ackedBatches += acked.size;
      if (rejected.size > 0) {
        stats.rejectedBatches += rejected.size;
        log.warn(
          { sequences: [...rejected].map(String), reason: res.rejectedReason },
          "server rejected batches as invalid; dropped from the spool",
        );
      }
      const unanswered = sent.filter((s) => !acked.has(s) && !rejected.has(s));
      if (unanswered.length > 0) {
        log.debug({ sequences: unanswered.map(String) }, "batches not acknowledged; they will be sent again");
      }
      if (removed === 0 && sent.length > 0) {
        // No progress without an error would spin; treat it as a failure so backoff applies.
        throw new ConnectError(`server acknowledged none of ${sent.length} batches`, Code.Unknown);
      }
      return removed;
    } finally {
      hardStop.signal.removeEventListener("abort", onHardStop);
      // Wakes the request generator if the call ended while it waited for a batch.
      call.abort();
    }
  }

  /** Sends everything pending with unary PushMetrics, one batch per call; returns how many left the spool. */
  async function pushPending(): Promise<number> {
    const client = connection.client();
    let cursor: bigint | undefined;
    let removed = 0;
    while (!hardStop.signal.aborted) {
      const rows = await spool.read(cursor, 16);
      if (rows.length === 0) break;
      for (const row of rows) {
        if (hardStop.signal.aborted) break;
        cursor = row.sequence;
        stats.sentBatches++;
        try {
          const req: PushMetricsRequest = requestWithBatch(PushMetricsRequestSchema, row);
          const res = await client.pushMetrics(req, { signal: hardStop.signal, timeoutMs: callTimeoutMs });
          if (res.ackedSequence === row.sequence || res.ackedSequence === 0n) {
            removed += spool.remove([row.sequence]);
            stats.ackedBatches++;
          } else {
            log.warn({ sent: String(row.sequence), acked: String(res.ackedSequence) }, "server acknowledged another sequence");
          }
          connection.reportSuccess();
        } catch (err) {
          const ce = ConnectError.from(err);
          if (ce.code !== Code.InvalidArgument) throw err;
          removed += spool.remove([row.sequence]);
          stats.rejectedBatches++;
          log.warn({ sequences: [String(row.sequence)], reason: ce.rawMessage }, "server rejected a batch as invalid; dropped from the spool");
        }
      }
    }
    return removed;
  }

  async function run(): Promise<void> {
    // Whether the last attempt reached the server: decides if a final send at shutdown is worth trying.
    let healthy = false;
    let finalSendDone = false;
    for (;;) {
      if (stopping) {
        if (finalSendDone || !healthy || !spool.hasPending()) break;
        finalSendDone = true;
      } else if (!spool.hasPending()) {
        await waitForBatch(60_000, stopSignal.signal);
        continue;
      }
      const mode = connection.mode;
      stats.mode = mode;
      try {
        if (mode === "h2") await streamWindow();
        else await pushPending();
        healthy = true;
        connection.reportSuccess();
        backoff.reset();
        retryLog.succeeded("server reachable again; sending the spool", { pending: spool.stats().batches });
      } catch (err) {
        healthy = false;
        if (stopping) break;
        stats.failures++;
        const failure = connection.reportFailure(err);
        // A refused credential waits long (batches stay in the spool); the credential logs it once.
        const delay = connection.retryDelay(failure, backoff);
        const rpc = mode === "h2" ? "StreamMetrics" : "PushMetrics";
        if (isAuthFailure(failure)) log.debug({ rpc, err: failure.reason, delayMs: delay }, "credential refused");
        else retryLog.failed(retryMessage(connection.baseUrl, rpc, failure, delay), { rpc, pending: spool.stats().batches });
        await sleep(delay, stopSignal.signal);
      }
    }
  }

  return {
    start() {
      if (loop) return;
      loop = run().catch((err: unknown) => {
        // run() handles call failures itself; this is a bug or a broken spool, reported once.
        log.error({ err: err instanceof Error ? err.message : String(err) }, "sender stopped unexpectedly");
      });
    },
    notify,
    async stop() {
      if (stopping) return;
      stopping = true;
      stopSignal.abort();
      notify();
      if (!loop) return;
      const finished = await Promise.race([loop.then(() => true), sleep(stopTimeoutMs, undefined, true).then(() => false)]);
      if (!finished) {
        hardStop.abort();
        await loop;
      }
    },
    stats: () => ({ ...stats }),
  };
}
