import type { MetricEnvelope } from "../../gen/spectra/v1/metrics_pb.js";
import { monotonicMs } from "../clock.js";

/** One flushed group of envelopes with the number contributed by each collector (for drop accounting). */
export interface PendingBatch {
  envelopes: MetricEnvelope[];
  countsByCollector: Record<string, number>;
}

/** Options for {@link createBatcher}. */
export interface BatcherOptions {
  /** Flush when this many envelopes are pending; default 100 (the original agent's). */
  maxEnvelopes?: number;
  /** Flush this long after the first pending envelope arrived; default 5 s (the original agent's). */
  flushIntervalMs?: number;
  /** Receives each batch synchronously (the agent writes it to the spool). Must not throw. */
  onFlush: (batch: PendingBatch) => void;
  /** Monotonic clock (ms) for {@link Batcher.flushDue}; default `monotonicMs` (agent/clock.ts). */
  now?: () => number;
}

/** Groups envelopes into batches: at most maxEnvelopes each, none older than flushIntervalMs. */
export interface Batcher {
  add(collector: string, envelopes: readonly MetricEnvelope[]): void;
  /** Flushes whatever is pending now (shutdown, --once). */
  flush(): void;
  /**
   * Flushes if the oldest pending envelope is nearly flushIntervalMs old (within a tenth of it). The scheduler
   * calls this at each wake-up, so the batch of the previous tick leaves in the same wake-up as the next tick's
   * collection, before the flush timer (a separate wake-up a moment later) would fire.
   */
  flushDue(): void;
  /** Envelopes waiting for the next flush. */
  readonly pending: number;
  /** Flushes and stops the timer; later add() calls flush immediately per call. */
  close(): void;
}

/** Creates a {@link Batcher}. */
export function createBatcher(opts: BatcherOptions): Batcher {
  const maxEnvelopes = opts.maxEnvelopes ?? 100;
  const flushIntervalMs = opts.flushIntervalMs ?? 5_000;
  let envelopes: MetricEnvelope[] = [];
  let counts: Record<string, number> = {};
  // The timer runs only while something is pending, so an idle agent has no wake-ups here.
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const now = opts.now ?? (() => monotonicMs());
  let firstAtMs = 0;

  function flush(): void {
    clearTimeout(timer);
    timer = undefined;
    if (envelopes.length === 0) return;
    const batch: PendingBatch = { envelopes, countsByCollector: counts };
    envelopes = [];
    counts = {};
    opts.onFlush(batch);
  }

  return {
    add(collector, items) {
      for (const env of items) {
        envelopes.push(env);
        counts[collector] = (counts[collector] ?? 0) + 1;
        if (envelopes.length >= maxEnvelopes) flush();
      }
      if (closed) {
        flush();
        return;
      }
      if (envelopes.length > 0 && timer === undefined) {
        firstAtMs = now();
        timer = setTimeout(flush, flushIntervalMs);
      }
    },
    flush,
    flushDue() {
      if (envelopes.length > 0 && now() - firstAtMs >= flushIntervalMs * 0.9) flush();
    },
    get pending() {
      return envelopes.length;
    },
    close() {
      closed = true;
      flush();
    },
  };
}
