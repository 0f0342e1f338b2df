import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

// The agent's clock (process.uptime()) is not one vitest's fake timers control; `performance.now()` is.
vi.mock("./clock.js", () => ({ monotonicMs: () => performance.now() }));
import { CollectorHealth, CpuMetricsSchema, DiskIoMetricsSchema, type MetricEnvelope } from "../gen/spectra/v1/metrics_pb.js";
import { NO_DATA, type Collector, type Payload } from "./collectors/types.js";
import { createScheduler, envelopeType, runCollector, type ScheduledCollector } from "./scheduler.js";

function captureLogger() {
  const lines: { level: number; msg: string; collector?: string; err?: string }[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) if (line) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

/** stop() waits for running collectors with a (fake) timer, so the clock must move while it waits. */
async function stopWithFakeTimers(s: { stop(): Promise<void> }): Promise<void> {
  const stopped = s.stop();
  await vi.advanceTimersByTimeAsync(3_000);
  await stopped;
}

const cpu = (usage: number): Payload => ({ case: "cpu", value: create(CpuMetricsSchema, { usage }) });

function collectorOf(fn: (signal: AbortSignal) => ReturnType<Collector["collect"]>): Collector {
  return { collect: fn };
}

describe("scheduler", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("starts each collector after a jitter below min(interval, 2 s), then every interval", async () => {
    const calls: Record<string, number[]> = { fast: [], slow: [] };
    const mk = (name: string, intervalMs: number): ScheduledCollector => ({
      name,
      intervalMs,
      collector: collectorOf(async () => {
        calls[name]?.push(Date.now());
        return [];
      }),
    });
    const t0 = Date.now();
    const s = createScheduler({
      collectors: [mk("fast", 1_000), mk("slow", 60_000)],
      hostname: "h",
      sink: () => {},
      logger: pino({ level: "silent" }),
      random: () => 0.75,
    });
    s.start();
    await vi.advanceTimersByTimeAsync(3_999);
    expect(calls["fast"]?.map((t) => t - t0)).toEqual([750, 1_750, 2_750, 3_750]);
    expect(calls["slow"]?.map((t) => t - t0)).toEqual([1_500]);
    await s.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls["fast"]).toHaveLength(4);
  });

  it("runs collectors whose ticks coincide in one wake-up, with the before-tick hook first", async () => {
    const events: string[] = [];
    const mk = (name: string, intervalMs: number): ScheduledCollector => ({
      name,
      intervalMs,
      collector: collectorOf(async () => {
        events.push(`${name}@${Date.now() - t0}`);
        return [];
      }),
    });
    const t0 = Date.now();
    const s = createScheduler({
      collectors: [mk("cpu", 5_000), mk("network", 5_000), mk("memory", 10_000), mk("disk", 60_000)],
      hostname: "h",
      sink: () => {},
      logger: pino({ level: "silent" }),
      random: () => 0.5,
      beforeTick: () => events.push(`tick@${Date.now() - t0}`),
    });
    s.start();
    await vi.advanceTimersByTimeAsync(11_000);
    expect(events).toEqual([
      "tick@1000", "cpu@1000", "network@1000", "memory@1000", "disk@1000",
      "tick@6000", "cpu@6000", "network@6000",
      "tick@11000", "cpu@11000", "network@11000", "memory@11000",
    ]);
    // One timer for all of them.
    expect(vi.getTimerCount()).toBe(1);
    await s.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("keeps ticks on their grid and skips the ones missed during a stall", async () => {
    const seen: number[] = [];
    let mono = 0;
    const s = createScheduler({
      collectors: [{ name: "cpu", intervalMs: 1_000, collector: collectorOf(async () => (seen.push(mono), [])) }],
      hostname: "h",
      sink: () => {},
      logger: pino({ level: "silent" }),
      random: () => 0,
      monotonicNow: () => mono,
    });
    s.start();
    await vi.advanceTimersByTimeAsync(0);
    mono = 3_500; // the process was stopped for 3.5 s
    await vi.advanceTimersByTimeAsync(1_000);
    mono = 4_000;
    await vi.advanceTimersByTimeAsync(500);
    expect(seen).toEqual([0, 3_500, 4_000]);
    await s.stop();
  });

  it("keeps the jitter within bounds for any random draw", async () => {
    for (const r of [0, 0.3, 0.999999]) {
      const seen: number[] = [];
      const t0 = Date.now();
      const s = createScheduler({
        collectors: [{ name: "cpu", intervalMs: 5_000, collector: collectorOf(async () => (seen.push(Date.now() - t0), [])) }],
        hostname: "h",
        sink: () => {},
        logger: pino({ level: "silent" }),
        random: () => r,
      });
      s.start();
      await vi.advanceTimersByTimeAsync(2_000);
      expect(seen).toHaveLength(1);
      expect(seen[0]).toBeGreaterThanOrEqual(0);
      expect(seen[0]).toBeLessThan(2_000);
      await s.stop();
    }
  });

  it("never runs one collector twice at once and counts skipped ticks", async () => {
    let active = 0;
    let maxActive = 0;
    const s = createScheduler({
      collectors: [
        {
          name: "slow",
          intervalMs: 1_000,
          timeoutMs: 10_000,
          collector: collectorOf(async () => {
            active++;
            maxActive = Math.max(maxActive, active);
            await new Promise((r) => setTimeout(r, 2_500));
            active--;
            return [cpu(1)];
          }),
        },
      ],
      hostname: "h",
      sink: () => {},
      logger: pino({ level: "silent" }),
      random: () => 0,
    });
    s.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(maxActive).toBe(1);
    const [stats] = s.stats();
    expect(stats?.skippedTicks).toBeGreaterThanOrEqual(5);
    expect(stats?.runs).toBeGreaterThanOrEqual(3);
    await stopWithFakeTimers(s);
  });

  it("times a run out, aborts its signal and reports an error; a hung collector is not run again meanwhile", async () => {
    let signal: AbortSignal | undefined;
    let calls = 0;
    const s = createScheduler({
      collectors: [
        {
          name: "hung",
          intervalMs: 1_000,
          collector: collectorOf((sig) => {
            calls++;
            signal = sig;
            return new Promise(() => {}); // ignores its signal
          }),
        },
      ],
      hostname: "h",
      sink: () => {},
      logger: pino({ level: "silent" }),
      random: () => 0,
    });
    s.start();
    await vi.advanceTimersByTimeAsync(1_001);
    const [status] = s.statuses();
    expect(status?.health).toBe(CollectorHealth.ERROR);
    expect(status?.error).toBe("timed out after 1000 ms");
    expect(signal?.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toBe(1);
    expect(s.stats()[0]?.skippedTicks).toBeGreaterThanOrEqual(4);
    await stopWithFakeTimers(s);
  });

  it("logs when a collector starts failing and when it recovers, not every tick", async () => {
    const { logger, lines } = captureLogger();
    let n = 0;
    const s = createScheduler({
      collectors: [
        {
          name: "flaky",
          intervalMs: 1_000,
          collector: collectorOf(async () => {
            n++;
            if (n >= 2 && n <= 4) throw new Error("read /proc/stat", { cause: new Error("EACCES") });
            return [cpu(n)];
          }),
        },
      ],
      hostname: "h",
      sink: () => {},
      logger,
      random: () => 0,
    });
    s.start();
    await vi.advanceTimersByTimeAsync(1_500);
    expect(s.statuses()[0]?.error).toBe("read /proc/stat: EACCES");
    expect(s.statuses()[0]?.health).toBe(CollectorHealth.ERROR);
    await vi.advanceTimersByTimeAsync(4_000);
    await s.stop();
    const warn = lines.filter((l) => l.msg === "collector failing");
    const info = lines.filter((l) => l.msg === "collector recovered");
    expect(warn).toHaveLength(1);
    expect(warn[0]?.collector).toBe("flaky");
    expect(warn[0]?.err).toBe("read /proc/stat: EACCES");
    expect(info).toHaveLength(1);
    expect((info[0] as unknown as { failures: number }).failures).toBe(3);
    const st = s.statuses()[0];
    expect(st?.health).toBe(CollectorHealth.OK);
    expect(st?.error).toBe("");
    expect(st?.lastSuccess).toBeDefined();
    expect(lines.every((l) => !JSON.stringify(l).includes("    at "))).toBe(true);
  });

  it("reports NO_DATA without envelopes, and OK with envelopes wrapped per payload", async () => {
    const got: [string, MetricEnvelope[]][] = [];
    const now = Date.UTC(2026, 1, 2, 7, 48, 40);
    const s = createScheduler({
      collectors: [
        { name: "wifi", intervalMs: 1_000, collector: collectorOf(async () => NO_DATA) },
        {
          name: "disk_io",
          intervalMs: 1_000,
          collector: collectorOf(async () => [
            { case: "diskIo", value: create(DiskIoMetricsSchema, { device: "vda" }) },
            { case: "diskIo", value: create(DiskIoMetricsSchema, { device: "vdb" }) },
          ]),
        },
        { name: "baseline", intervalMs: 1_000, collector: collectorOf(async () => []) },
      ],
      hostname: "web-01",
      sink: (name, envs) => got.push([name, envs]),
      logger: pino({ level: "silent" }),
      random: () => 0,
      now: () => now,
    });
    s.start();
    await vi.advanceTimersByTimeAsync(10);
    await s.stop();
    const byName = Object.fromEntries(s.statuses().map((x) => [x.name, x]));
    expect(byName["wifi"]?.health).toBe(CollectorHealth.NO_DATA);
    expect(byName["disk_io"]?.health).toBe(CollectorHealth.OK);
    expect(byName["baseline"]?.health).toBe(CollectorHealth.OK);
    expect(byName["disk_io"]?.intervalMs).toBe(1_000);
    expect(got).toHaveLength(1);
    const [name, envs] = got[0]!;
    expect(name).toBe("disk_io");
    expect(envs.map((e) => [e.type, e.hostname, Number(e.timestamp?.seconds) * 1000])).toEqual([
      ["disk_io", "web-01", now],
      ["disk_io", "web-01", now],
    ]);
  });

  it("changes the status version on health, error and drops, not on every successful run", async () => {
    let n = 0;
    const s = createScheduler({
      collectors: [
        {
          name: "flaky",
          intervalMs: 1_000,
          collector: collectorOf(async () => {
            n++;
            if (n === 3 || n === 4) throw new Error("read /proc/stat");
            if (n === 5) throw new Error("read /proc/stat again");
            return n >= 7 ? NO_DATA : [cpu(n)];
          }),
        },
      ],
      hostname: "h",
      sink: () => {},
      logger: pino({ level: "silent" }),
      random: () => 0,
    });
    const versions: number[] = [s.statusVersion()];
    s.start();
    for (let i = 0; i < 8; i++) {
      await vi.advanceTimersByTimeAsync(i === 0 ? 10 : 1_000);
      versions.push(s.statusVersion());
    }
    s.addDropped({ flaky: 0 });
    versions.push(s.statusVersion());
    s.addDropped({ flaky: 2 });
    versions.push(s.statusVersion());
    await stopWithFakeTimers(s);
    // runs: 1 ok (new), 2 ok, 3 error (new), 4 same error, 5 other error (new), 6 ok (new), 7 no data (new), 8 no data
    const changed = versions.slice(1).map((v, i) => v !== versions[i]);
    expect(changed).toEqual([true, false, true, false, true, true, true, false, false, true]);
  });

  it("reports static statuses and dropped envelopes", () => {
    const s = createScheduler({
      collectors: [{ name: "cpu", intervalMs: 5_000, collector: collectorOf(async () => []) }],
      staticStatuses: [{ name: "wifi", health: CollectorHealth.DISABLED }],
      hostname: "h",
      sink: () => {},
      logger: pino({ level: "silent" }),
    });
    s.addDropped({ cpu: 3, wifi: 1 });
    s.addDropped({ cpu: 2 });
    const byName = Object.fromEntries(s.statuses().map((x) => [x.name, x]));
    expect(byName["cpu"]?.droppedEnvelopes).toBe(5n);
    expect(byName["cpu"]?.health).toBe(CollectorHealth.UNSPECIFIED);
    expect(byName["wifi"]?.health).toBe(CollectorHealth.DISABLED);
    expect(byName["wifi"]?.droppedEnvelopes).toBe(1n);
  });

  it("aborts running collections on stop and records no failure", async () => {
    let aborted = false;
    const s = createScheduler({
      collectors: [
        {
          name: "long",
          intervalMs: 60_000,
          collector: collectorOf(
            (sig) =>
              new Promise((_, reject) => {
                sig.addEventListener("abort", () => {
                  aborted = true;
                  reject(sig.reason);
                });
              }),
          ),
        },
      ],
      hostname: "h",
      sink: () => {},
      logger: pino({ level: "silent" }),
      random: () => 0,
    });
    s.start();
    await vi.advanceTimersByTimeAsync(1);
    await s.stop();
    expect(aborted).toBe(true);
    expect(s.statuses()[0]?.health).toBe(CollectorHealth.UNSPECIFIED);
  });
});

describe("envelopeType", () => {
  it("uses the proto field name", () => {
    expect(envelopeType("diskIo")).toBe("disk_io");
    expect(envelopeType("processList")).toBe("process_list");
    expect(envelopeType("updateStatus")).toBe("update_status");
    expect(envelopeType("cpu")).toBe("cpu");
  });
});

describe("runCollector", () => {
  it("turns a synchronous throw into an error outcome", async () => {
    const run = runCollector(
      {
        collect: () => {
          throw new Error("boom");
        },
      },
      1_000,
    );
    const outcome = await run.outcome;
    expect(outcome.kind).toBe("error");
  });
});
