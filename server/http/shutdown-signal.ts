/**
 * The server's shutdown signal, handed to connect (`shutdownSignal`) and the legacy routes, which link every call's
 * own signal to it. A standard AbortSignal keeps its listeners in a list that `addEventListener` and
 * `removeEventListener` walk to find duplicates: with thousands of agents each holding streams open, every new call
 * paid for every open one (3–4 % of the server's time with 1,000 agents, docs/benchmarks.md "Fleet scale"). This
 * one keeps them in a Set: adding and removing cost the same with 10 or 10,000 open calls.
 *
 * It implements what those callers use: `aborted`, `reason`, `throwIfAborted`, and `addEventListener` /
 * `removeEventListener` for "abort" (each listener called once, with the signal as `this` and an Event, as a
 * standard signal does, so `{ once: true }` needs nothing more). It is not an EventTarget otherwise.
 */
type Listener = ((this: AbortSignal, ev: Event) => unknown) | { handleEvent(ev: Event): unknown };

export class ShutdownSignal {
  private readonly listeners = new Set<Listener>();
  aborted = false;
  reason: unknown = undefined;
  onabort: ((this: AbortSignal, ev: Event) => unknown) | null = null;

  /** This object where an AbortSignal is expected. */
  get signal(): AbortSignal {
    return this as unknown as AbortSignal;
  }

  addEventListener(type: string, listener: Listener | null): void {
    if (type !== "abort" || listener === null) return;
    this.listeners.add(listener);
  }

  removeEventListener(type: string, listener: Listener | null): void {
    if (type !== "abort" || listener === null) return;
    this.listeners.delete(listener);
  }

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }

  /** Aborts: every listener registered now is called once, in the order added. */
  abort(reason: unknown = new DOMException("The server is shutting down.", "AbortError")): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const ev = new Event("abort");
    const all = [...this.listeners];
    this.listeners.clear();
    if (this.onabort) this.onabort.call(this.signal, ev);
    for (const l of all) {
      if (typeof l === "function") l.call(this.signal, ev);
      else l.handleEvent(ev);
    }
  }

  /** Listeners registered (tests). */
  get listenerCount(): number {
    return this.listeners.size;
  }
}
