import { createLinkedAbortController } from "@connectrpc/connect/protocol";
import { describe, expect, it } from "vitest";
import { ShutdownSignal } from "./shutdown-signal.js";

describe("ShutdownSignal", () => {
  it("links calls as connect does, forgets finished ones, and aborts the open ones once with its reason", () => {
    const shutdown = new ShutdownSignal();
    const calls = Array.from({ length: 10_000 }, () => createLinkedAbortController(shutdown.signal));
    expect(shutdown.listenerCount).toBe(10_000);
    // calls that end on their own unlink themselves
    for (const c of calls.slice(0, 9_000)) c.abort(new Error("call done"));
    expect(shutdown.listenerCount).toBe(1_000);
    let legacy = 0;
    const onShutdown = function (this: AbortSignal) {
      expect(this).toBe(shutdown.signal);
      legacy++;
    };
    shutdown.signal.addEventListener("abort", onShutdown, { once: true });
    const reason = new Error("stopping");
    shutdown.abort(reason);
    shutdown.abort(new Error("again")); // no effect
    expect(shutdown.signal.aborted).toBe(true);
    expect(shutdown.signal.reason).toBe(reason);
    expect(legacy).toBe(1);
    for (const c of calls.slice(9_000)) expect(c.signal.reason).toBe(reason);
    for (const c of calls.slice(0, 9_000)) expect((c.signal.reason as Error).message).toBe("call done");
    expect(shutdown.listenerCount).toBe(0);
    // a call started after the shutdown is aborted at once
    expect(createLinkedAbortController(shutdown.signal).signal.aborted).toBe(true);
    expect(() => shutdown.signal.throwIfAborted()).toThrow("stopping");
  });
});
