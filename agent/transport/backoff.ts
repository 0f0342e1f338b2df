/** Options for {@link createBackoff}. */
export interface BackoffOptions {
  /** First ceiling, in ms; default 1000. */
  initialMs?: number;
  /** Largest ceiling, in ms; default 60 000. */
  maxMs?: number;
  /** Growth per failed attempt; default 2. */
  factor?: number;
  /** Smallest delay returned, so a run of unlucky draws cannot spin; default 100 ms (capped at initialMs). */
  minMs?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

/** Exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS architecture blog). */
export interface Backoff {
  /** Delay before the next attempt: uniform in [minMs, min(maxMs, initialMs·factor^attempt)]; advances the attempt. */
  next(): number;
  /** Back to the first attempt; call after a success. */
  reset(): void;
  /** Failed attempts since the last reset. */
  readonly attempt: number;
}

/** Creates a {@link Backoff}; defaults 1 s → 60 s, doubling. */
export function createBackoff(opts: BackoffOptions = {}): Backoff {
  const initialMs = opts.initialMs ?? 1_000;
  const maxMs = Math.max(opts.maxMs ?? 60_000, initialMs);
  const factor = opts.factor ?? 2;
  const minMs = Math.min(opts.minMs ?? 100, initialMs);
  const random = opts.random ?? Math.random;
  let attempt = 0;
  return {
    next() {
      // Cap the exponent so factor^attempt never overflows to Infinity on a months-long outage.
      const ceiling = Math.min(maxMs, initialMs * factor ** Math.min(attempt, 64));
      attempt++;
      return Math.round(minMs + random() * (ceiling - minMs));
    },
    reset() {
      attempt = 0;
    },
    get attempt() {
      return attempt;
    },
  };
}

/**
 * Resolves after `ms`, or early (without rejecting) when `signal` aborts; returns true when the full time passed.
 * The timer is unref'd only when `unref` is set, so a sleeping retry loop keeps a daemon alive by default.
 */
export function sleep(ms: number, signal?: AbortSignal, unref = false): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    if (unref) timer.unref();
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Formats a delay for log lines: "800 ms", "4 s", "1.5 min". */
export function formatDelay(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10} s`;
  return `${Math.round(ms / 6_000) / 10} min`;
}
