import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Logger } from "../common/logger.js";
import {
  CollectorHealth,
  CollectorStatusSchema,
  MetricEnvelopeSchema,
  type CollectorStatus,
  type MetricEnvelope,
} from "../gen/spectra/v1/metrics_pb.js";
import { NO_DATA, type Collector, type Payload } from "./collectors/types.js";
import { monotonicMs } from "./clock.js";

/** A collector instance with its schedule. */
export interface ScheduledCollector {
  name: string;
  intervalMs: number;
  /** Per-run timeout; default min(intervalMs, 30 s). */
  timeoutMs?: number;
  collector: Collector;
}

/** Receives the envelopes of one collector run (never empty). */
export type EnvelopeSink = (collector: string, envelopes: MetricEnvelope[]) => void;

/** A collector that does not run, reported with a fixed status (disabled, failed to start). */
export interface StaticStatus {
  name: string;
  health: CollectorHealth;
  error?: string;
  intervalMs?: number;
}

/** Options for {@link createScheduler}. */
export interface SchedulerOptions {
  collectors: readonly ScheduledCollector[];
  hostname: string;
  sink: EnvelopeSink;
  logger: Logger;
  staticStatuses?: readonly StaticStatus[];
  /** Upper bound of the start jitter; each collector starts after random·min(interval, maxJitterMs). Default 2 s. */
  maxJitterMs?: number;
  random?: () => number;
  /** Wall clock for envelope timestamps and last_success; injectable for tests. */
  now?: () => number;
  /** How long stop() waits for running collectors after aborting them; default 2 s. */
  stopGraceMs?: number;
  /**
   * Called at every wake-up that runs collectors, before they run. The agent flushes a batch that is due here, so
   * the flush shares the collectors' wake-up instead of having its own.
   */
  beforeTick?: () => void;
  /** Monotonic clock (ms) the schedule runs on; default `monotonicMs` (agent/clock.ts). */
  monotonicNow?: () => number;
}

/** Counters beyond the proto status, for /debug/vars and tests. */
export interface CollectorRunStats {
  name: string;
  runs: number;
  failures: number;
  /** Ticks skipped because the previous run had not finished. */
  skippedTicks: number;
  running: boolean;
}

/** Runs every collector on its own timer and keeps a status per collector. */
export interface Scheduler {
  /** Starts the timers (each after its jitter). */
  start(): void;
  /** Stops the timers, aborts running collections and waits for them (bounded by stopGraceMs). */
  stop(): Promise<void>;
  /** A copy of every collector's status, including dropped-envelope counts added with {@link addDropped}. */
  statuses(): CollectorStatus[];
  /** Adds envelopes the spool dropped, per collector name. */
  addDropped(counts: Readonly<Record<string, number>>): void;
  /**
   * A number that changes whenever a status changes in more than its timings: health, error message, dropped
   * count. (Each run's duration and last success change every tick and do not count.) The agent sends the
   * statuses with a batch only when this changed or they are getting old.
   */
  statusVersion(): number;
  /** Run counters per collector. */
  stats(): CollectorRunStats[];
}

/** Outcome of one collector run. */
export type RunOutcome =
  | { kind: "ok"; payloads: Payload[]; durationUs: number }
  | { kind: "no-data"; durationUs: number }
  | { kind: "error"; error: Error; durationUs: number; timedOut: boolean };

/** Default per-run timeout: the interval, at most 30 s. */
export function defaultTimeoutMs(intervalMs: number): number {
  return Math.min(intervalMs, 30_000);
}

/**
 * Runs `collector.collect` once with a timeout. The signal passed to the collector aborts at the timeout; a
 * collector that ignores it still yields an error outcome at the timeout. `settled` resolves when the collector's
 * own promise finishes, which may be later (callers use it to avoid overlapping runs).
 */
export function runCollector(
  collector: Collector,
  timeoutMs: number,
  outerSignal?: AbortSignal,
): { outcome: Promise<RunOutcome>; settled: Promise<void>; abort: () => void } {
  const controller = new AbortController();
  const started = monotonicMs();
  const elapsedUs = (): number => Math.round((monotonicMs() - started) * 1000);
  const onOuterAbort = (): void => controller.abort(outerSignal?.reason);
  outerSignal?.addEventListener("abort", onOuterAbort, { once: true });

  let collecting: Promise<Awaited<ReturnType<Collector["collect"]>>>;
  try {
    collecting = Promise.resolve(collector.collect(controller.signal));
  } catch (err) {
    collecting = Promise.reject(err);
  }
  const settled = collecting.then(
    () => undefined,
    () => undefined,
  );

  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<RunOutcome>((resolve) => {
    timer = setTimeout(() => {
      const error = new Error(`timed out after ${timeoutMs} ms`);
      controller.abort(error);
      resolve({ kind: "error", error, durationUs: elapsedUs(), timedOut: true });
    }, timeoutMs);
  });
  const finished = collecting.then(
    (result): RunOutcome =>
      result === NO_DATA ? { kind: "no-data", durationUs: elapsedUs() } : { kind: "ok", payloads: result, durationUs: elapsedUs() },
    (err: unknown): RunOutcome => ({ kind: "error", error: toError(err), durationUs: elapsedUs(), timedOut: false }),
  );
  const outcome = Promise.race([finished, timeout]).finally(() => {
    clearTimeout(timer);
    outerSignal?.removeEventListener("abort", onOuterAbort);
  });
  return { outcome, settled, abort: () => controller.abort(new Error("scheduler stopped")) };
}

// Envelope `type` is the proto field name of the payload case ("disk_io"), computed once from the descriptor.
const TYPE_BY_CASE: ReadonlyMap<string, string> = new Map(
  (MetricEnvelopeSchema.oneofs.find((o) => o.name === "payload")?.fields ?? []).map((f) => [f.localName, f.name]),
);

/** The legacy envelope type name (snake_case proto field name) of a payload case, e.g. "diskIo" → "disk_io". */
export function envelopeType(payloadCase: Payload["case"]): string {
  const name = TYPE_BY_CASE.get(payloadCase);
  if (name === undefined) throw new Error(`unknown payload case ${payloadCase}`);
  return name;
}

/**
 * Wraps payloads into envelopes that share one timestamp. The messages are written as object literals, complete
 * (the generated types make every field required here), the same objects protobuf-es's `create()` returns: on
 * the agent's interpreter-only JavaScript, `create()` walks the descriptor field by field, which the CPU profile of
 * a running agent showed as a sizeable share of each tick (docs/benchmarks.md, "Agent footprint").
 */
export function toEnvelopes(payloads: readonly Payload[], hostname: string, timestampMs: number): MetricEnvelope[] {
  const timestamp = timestampLiteral(timestampMs);
  return payloads.map((payload) => ({ $typeName: "spectra.v1.MetricEnvelope", type: envelopeType(payload.case), timestamp, hostname, payload }));
}

/** `timestampFromMs` as an object literal (see {@link toEnvelopes}). */
export function timestampLiteral(timestampMs: number): Timestamp {
  const seconds = Math.floor(timestampMs / 1000);
  return { $typeName: "google.protobuf.Timestamp", seconds: BigInt(seconds), nanos: (timestampMs - seconds * 1000) * 1_000_000 };
}

interface Entry {
  def: ScheduledCollector;
  timeoutMs: number;
  status: CollectorStatus;
  dropped: bigint;
  running: boolean;
  inFlight: Promise<void> | undefined;
  controller: AbortController | undefined;
  /** Monotonic times: next tick, and the running run's start and deadline. */
  nextDueMs: number;
  startedMs: number;
  deadlineMs: number;
  /** The running run already ended with a timeout (its late result is ignored). */
  timedOut: boolean;
  runs: number;
  failures: number;
  skippedTicks: number;
  failingSinceMs: number | undefined;
  consecutiveFailures: number;
  logger: Logger;
}

/** A wake-up this close (ms) to a due time counts as on time: timers fire at whole milliseconds. */
const DUE_SLACK_MS = 1;

/**
 * Creates a {@link Scheduler}; nothing runs until start().
 *
 * One timer serves every collector: it wakes at the earliest due tick (or run deadline) and runs everything due
 * then. The start jitter is one random draw per scheduler (each collector starts after r·min(interval,
 * maxJitterMs)), so collectors with the same interval, and those whose intervals are multiples of each other, tick
 * in the same wake-up while agents on different hosts still spread out. Ticks stay on their grid (no drift), and
 * ticks missed while the process was stalled are skipped, not run in a burst.
 */
export function createScheduler(opts: SchedulerOptions): Scheduler {
  const random = opts.random ?? Math.random;
  const now = opts.now ?? Date.now;
  const mono = opts.monotonicNow ?? (() => monotonicMs());
  const maxJitterMs = opts.maxJitterMs ?? 2_000;
  const stopGraceMs = opts.stopGraceMs ?? 2_000;
  let stopped = false;
  let started = false;
  let timer: NodeJS.Timeout | undefined;
  let armedFor = Infinity;

  const entries: Entry[] = opts.collectors.map((def) => ({
    def,
    timeoutMs: def.timeoutMs ?? defaultTimeoutMs(def.intervalMs),
    status: create(CollectorStatusSchema, {
      name: def.name,
      health: CollectorHealth.UNSPECIFIED,
      intervalMs: def.intervalMs,
    }),
    dropped: 0n,
    running: false,
    inFlight: undefined,
    controller: undefined,
    nextDueMs: Infinity,
    startedMs: 0,
    deadlineMs: Infinity,
    timedOut: false,
    runs: 0,
    failures: 0,
    skippedTicks: 0,
    failingSinceMs: undefined,
    consecutiveFailures: 0,
    logger: opts.logger.child({ collector: def.name }),
  }));
  const byName = new Map(entries.map((e) => [e.def.name, e]));
  const staticDropped = new Map<string, bigint>();
  let version = 0;

  /** Sets the one timer for the earliest due tick or pending deadline (unchanged if it already points there). */
  function arm(): void {
    if (stopped) return;
    let target = Infinity;
    for (const e of entries) {
      if (e.nextDueMs < target) target = e.nextDueMs;
      if (e.running && !e.timedOut && e.deadlineMs < target) target = e.deadlineMs;
    }
    if (target === armedFor && timer !== undefined) return;
    clearTimeout(timer);
    timer = undefined;
    armedFor = target;
    if (target === Infinity) return;
    timer = setTimeout(wake, Math.max(0, Math.ceil(target - mono())));
  }

  function wake(): void {
    timer = undefined;
    armedFor = Infinity;
    if (stopped) return;
    const t = mono();
    for (const e of entries) {
      if (e.running && !e.timedOut && e.deadlineMs <= t + DUE_SLACK_MS) timeOut(e, t);
    }
    if (entries.some((e) => e.nextDueMs <= t + DUE_SLACK_MS)) {
      try {
        opts.beforeTick?.();
      } catch (err) {
        opts.logger.error({ err: describe(toError(err)) }, "before-tick hook failed");
      }
      for (const e of entries) {
        if (e.nextDueMs > t + DUE_SLACK_MS) continue;
        tick(e, t);
        const interval = e.def.intervalMs;
        e.nextDueMs += interval;
        if (e.nextDueMs <= t) e.nextDueMs += (Math.floor((t - e.nextDueMs) / interval) + 1) * interval;
      }
    }
    arm();
  }

  function tick(e: Entry, t: number): void {
    if (e.running) {
      // Never two runs of one collector at once: a slow run costs the next tick, not a pile-up.
      e.skippedTicks++;
      e.logger.debug({ skippedTicks: e.skippedTicks }, "previous run still going; tick skipped");
      return;
    }
    e.running = true;
    e.timedOut = false;
    e.runs++;
    e.startedMs = t;
    e.deadlineMs = t + e.timeoutMs;
    // A fresh signal per run: collectors may leave listeners on it.
    const controller = new AbortController();
    e.controller = controller;
    let collecting: ReturnType<Collector["collect"]>;
    try {
      collecting = Promise.resolve(e.def.collector.collect(controller.signal));
    } catch (err) {
      collecting = Promise.reject(err);
    }
    e.inFlight = collecting.then(
      (result) => finish(e, result === NO_DATA ? { kind: "no-data", durationUs: elapsedUs(e) } : { kind: "ok", payloads: result, durationUs: elapsedUs(e) }),
      (err: unknown) => finish(e, { kind: "error", error: toError(err), durationUs: elapsedUs(e), timedOut: false }),
    );
  }

  function elapsedUs(e: Entry): number {
    return Math.round((mono() - e.startedMs) * 1000);
  }

  function finish(e: Entry, outcome: RunOutcome): void {
    e.running = false;
    e.controller = undefined;
    const late = e.timedOut;
    e.timedOut = false;
    // A run that timed out was already reported; its late result is dropped.
    if (!late) record(e, outcome);
    if (started) arm();
  }

  function timeOut(e: Entry, t: number): void {
    const error = new Error(`timed out after ${e.timeoutMs} ms`);
    e.timedOut = true;
    e.controller?.abort(error);
    record(e, { kind: "error", error, durationUs: Math.round((t - e.startedMs) * 1000), timedOut: true });
  }

  function record(e: Entry, outcome: RunOutcome): void {
    const status = e.status;
    status.lastDurationUs = Math.min(outcome.durationUs, 0xffffffff);
    if (outcome.kind === "error") {
      if (stopped) return; // an abort caused by stop() is not a failure
      e.failures++;
      e.consecutiveFailures++;
      const message = describe(outcome.error);
      if (status.health !== CollectorHealth.ERROR || status.error !== message) version++;
      if (status.health !== CollectorHealth.ERROR) {
        e.failingSinceMs = now();
        e.logger.warn({ err: message, timedOut: outcome.timedOut }, "collector failing");
      } else if (status.error !== message) {
        e.logger.debug({ err: message }, "collector still failing, with a different error");
      }
      status.health = CollectorHealth.ERROR;
      status.error = message;
      return;
    }
    const wasFailing = status.health === CollectorHealth.ERROR;
    const health = outcome.kind === "no-data" ? CollectorHealth.NO_DATA : CollectorHealth.OK;
    if (status.health !== health) version++;
    const ts = now();
    if (wasFailing) {
      e.logger.info(
        { failures: e.consecutiveFailures, failingForMs: ts - (e.failingSinceMs ?? ts) },
        "collector recovered",
      );
    }
    e.consecutiveFailures = 0;
    e.failingSinceMs = undefined;
    status.error = "";
    status.lastSuccess = timestampLiteral(ts);
    if (outcome.kind === "no-data") {
      if (status.health !== CollectorHealth.NO_DATA) e.logger.info("no data for this collector on this host");
      status.health = CollectorHealth.NO_DATA;
      return;
    }
    status.health = CollectorHealth.OK;
    if (outcome.payloads.length > 0 && !stopped) {
      opts.sink(e.def.name, toEnvelopes(outcome.payloads, opts.hostname, ts));
    }
  }

  return {
    start() {
      if (stopped) throw new Error("scheduler already stopped");
      if (started) return;
      started = true;
      const r = random();
      const t0 = mono();
      for (const e of entries) e.nextDueMs = t0 + Math.floor(r * Math.min(e.def.intervalMs, maxJitterMs));
      arm();
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      for (const e of entries) e.controller?.abort(new Error("scheduler stopped"));
      const running = entries.flatMap((e) => (e.inFlight && e.running ? [e.inFlight] : []));
      if (running.length === 0) return;
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(running),
        new Promise<void>((resolve) => {
          grace = setTimeout(resolve, stopGraceMs);
        }),
      ]);
      clearTimeout(grace);
    },

    statuses() {
      const out: CollectorStatus[] = entries.map((e) => create(CollectorStatusSchema, { ...e.status, droppedEnvelopes: e.dropped }));
      for (const s of opts.staticStatuses ?? []) {
        out.push(
          create(CollectorStatusSchema, {
            name: s.name,
            health: s.health,
            error: s.error ?? "",
            intervalMs: s.intervalMs ?? 0,
            droppedEnvelopes: staticDropped.get(s.name) ?? 0n,
          }),
        );
      }
      return out;
    },

    addDropped(counts) {
      for (const [name, n] of Object.entries(counts)) {
        if (n > 0) version++;
        const e = byName.get(name);
        if (e) e.dropped += BigInt(n);
        else staticDropped.set(name, (staticDropped.get(name) ?? 0n) + BigInt(n));
      }
    },

    statusVersion: () => version,

    stats() {
      return entries.map((e) => ({
        name: e.def.name,
        runs: e.runs,
        failures: e.failures,
        skippedTicks: e.skippedTicks,
        running: e.running,
      }));
    },
  };
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** One line for a status or log: the message plus the first cause's message, never a stack. */
function describe(err: Error): string {
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return cause && !err.message.includes(cause) ? `${err.message}: ${cause}` : err.message;
}
