/**
 * Runs a slow check (a package-manager simulation, a Windows Update search) so that it can outlive one collector
 * run without being lost or started twice.
 *
 * `next(signal)` starts the check unless one is in flight and waits for it. When the scheduler gives up first
 * (its per-run timeout aborts `signal`), the check keeps running under its own command timeouts; when it ends,
 * its outcome is kept, and the next `next()` returns that outcome at once and starts a fresh check in the
 * background for the run after. So a check faster than the collector timeout reports its own result; a slower
 * one reports the previous check's result (one interval old) instead of failing every run. Only `close()`
 * aborts a check in flight.
 */
export class BackgroundCheck<T> {
  private inFlight: Promise<void> | undefined;
  private latest: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  /** Whether `latest` was already handed to a caller. */
  private delivered = true;
  private readonly lifetime = new AbortController();

  /** `check` gets a signal that aborts only on close(). */
  constructor(private readonly check: (signal: AbortSignal) => Promise<T>) {}

  private start(): Promise<void> {
    // Through an async wrapper, so a check that throws synchronously still ends up in `latest`.
    this.inFlight ??= (async () => this.check(this.lifetime.signal))()
      .then(
        (value) => {
          this.latest = { ok: true, value };
        },
        (error: unknown) => {
          this.latest = { ok: false, error };
        },
      )
      .finally(() => {
        this.delivered = false;
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  private take(): T {
    const latest = this.latest!;
    this.delivered = true;
    if (!latest.ok) throw latest.error;
    return latest.value;
  }

  /** The outcome of a check (see the class comment); rejects with the check's error, or on abort of `signal`. */
  async next(signal: AbortSignal): Promise<T> {
    if (this.latest && !this.delivered && !this.inFlight) {
      // A check that outlived an earlier run has finished: report it and refresh in the background.
      void this.start();
      return this.take();
    }
    const running = this.start();
    await new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        reject(abortError(signal));
        return;
      }
      const onAbort = (): void => reject(abortError(signal));
      signal.addEventListener("abort", onAbort, { once: true });
      void running.then(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
    return this.take();
  }

  /** True while a check runs (for tests and logs). */
  get running(): boolean {
    return this.inFlight !== undefined;
  }

  /** Aborts a check in flight; later `next()` calls still work but their checks are aborted at once. */
  close(): void {
    this.lifetime.abort(new Error("update check closed"));
  }
}

function abortError(signal: AbortSignal): Error {
  const err = new Error("update check still running when the collector run was aborted; its result comes with the next run", {
    cause: signal.reason,
  });
  err.name = "AbortError";
  return err;
}
