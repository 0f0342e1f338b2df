import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

// The agent's clock (process.uptime()) is not one vitest's fake timers control; `performance.now()` is.
vi.mock("../clock.js", () => ({ monotonicMs: () => performance.now() }));
import { MetricEnvelopeSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { createBatcher, type PendingBatch } from "./batcher.js";

const env = (type: string) => create(MetricEnvelopeSchema, { type });

describe("createBatcher", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("flushes at 100 envelopes", () => {
    const out: PendingBatch[] = [];
    const b = createBatcher({ onFlush: (x) => out.push(x) });
    b.add("cpu", Array.from({ length: 60 }, () => env("cpu")));
    expect(out).toHaveLength(0);
    b.add("disk", Array.from({ length: 50 }, () => env("disk")));
    expect(out).toHaveLength(1);
    expect(out[0]?.envelopes).toHaveLength(100);
    expect(out[0]?.countsByCollector).toEqual({ cpu: 60, disk: 40 });
    expect(b.pending).toBe(10);
  });

  it("flushes 5 s after the first pending envelope", () => {
    const out: PendingBatch[] = [];
    const b = createBatcher({ onFlush: (x) => out.push(x) });
    b.add("cpu", [env("cpu")]);
    vi.advanceTimersByTime(4_000);
    b.add("memory", [env("memory")]);
    vi.advanceTimersByTime(999);
    expect(out).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(out).toHaveLength(1);
    expect(out[0]?.countsByCollector).toEqual({ cpu: 1, memory: 1 });
    // Idle: no timer, no empty batches.
    vi.advanceTimersByTime(60_000);
    expect(out).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("flushes on demand and after close", () => {
    const out: PendingBatch[] = [];
    const b = createBatcher({ onFlush: (x) => out.push(x) });
    b.flush();
    expect(out).toHaveLength(0);
    b.add("cpu", [env("cpu")]);
    b.close();
    expect(out).toHaveLength(1);
    b.add("cpu", [env("cpu")]);
    expect(out).toHaveLength(2);
  });

  it("flushes a nearly due batch when the scheduler wakes up, before its own timer", () => {
    const out: PendingBatch[] = [];
    const b = createBatcher({ onFlush: (x) => out.push(x) });
    b.add("cpu", [env("cpu")]);
    vi.advanceTimersByTime(4_000);
    b.flushDue();
    expect(out).toHaveLength(0);
    vi.advanceTimersByTime(999);
    b.flushDue(); // the next 5 s tick woke up a moment before the flush timer would
    expect(out).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
