/**
 * Pure pieces of the fleet bench's report (bench/fleet.ts): errors counted by kind with their first distinct
 * messages, command delivery (triggers joined with the arrivals the simulated agents recorded), latency summaries.
 */
import { ConnectError } from "@connectrpc/connect";
import { percentile } from "./proc.js";

/** A one-line reason for an error (Connect code name and message, or the message). */
export function reason(err: unknown): string {
  if (err instanceof ConnectError) return `[${err.code}] ${err.rawMessage}`;
  return err instanceof Error ? err.message : String(err);
}

export interface ErrorSummary {
  total: number;
  /** By kind (e.g. "StreamMetrics"): how many, and the first distinct messages (at most 5) with their counts. */
  byKind: Record<string, { count: number; first: Array<[message: string, count: number]> }>;
}

/** Counts errors by kind; keeps the first few distinct messages of each kind. */
export class ErrorTally {
  private readonly kinds = new Map<string, { count: number; messages: Map<string, number> }>();

  add(kind: string, err: unknown): void {
    let k = this.kinds.get(kind);
    if (!k) this.kinds.set(kind, (k = { count: 0, messages: new Map() }));
    k.count++;
    const msg = reason(err).slice(0, 300);
    const seen = k.messages.get(msg);
    if (seen !== undefined) k.messages.set(msg, seen + 1);
    else if (k.messages.size < 5) k.messages.set(msg, 1);
  }

  summary(): ErrorSummary {
    const byKind: ErrorSummary["byKind"] = {};
    let total = 0;
    for (const [kind, k] of this.kinds) {
      total += k.count;
      byKind[kind] = { count: k.count, first: [...k.messages] };
    }
    return { total, byKind };
  }
}

/** Adds several summaries up (workers' and the main thread's). */
export function mergeErrors(all: ErrorSummary[]): ErrorSummary {
  const out: ErrorSummary = { total: 0, byKind: {} };
  for (const s of all) {
    out.total += s.total;
    for (const [kind, k] of Object.entries(s.byKind)) {
      const o = (out.byKind[kind] ??= { count: 0, first: [] });
      o.count += k.count;
      for (const [m, n] of k.first) {
        const i = o.first.findIndex(([x]) => x === m);
        if (i >= 0) o.first[i]![1] += n;
        else if (o.first.length < 5) o.first.push([m, n]);
      }
    }
  }
  return out;
}

export interface Trigger {
  /** The command id the server answered with; undefined when the trigger call failed. */
  id: string | undefined;
  hostname: string;
  /** Wall time (ms) the trigger call started. */
  at: number;
}

export interface Delivery {
  triggered: number;
  /** Trigger calls that failed (no command was created). */
  failedTriggers: number;
  delivered: number;
  /** Created but never seen by the agent. */
  lost: number;
  /** Commands seen more than once (their extra arrivals). */
  duplicates: number;
  /** Arrivals of ids no trigger of the window created (triggered before it, or by something else). */
  otherArrivals: number;
  /** Trigger call start → first arrival, per delivered command (ms). */
  latencies: number[];
}

/** Joins triggers with the arrivals the agents recorded (first arrival per id counts; later ones are duplicates). */
export function summarizeDelivery(triggers: readonly Trigger[], arrivals: ReadonlyArray<readonly [id: string, atMs: number]>): Delivery {
  const byId = new Map<string, number[]>();
  for (const [id, at] of arrivals) {
    const l = byId.get(id);
    if (l) l.push(at);
    else byId.set(id, [at]);
  }
  const d: Delivery = { triggered: triggers.length, failedTriggers: 0, delivered: 0, lost: 0, duplicates: 0, otherArrivals: 0, latencies: [] };
  const mine = new Set<string>();
  for (const t of triggers) {
    if (t.id === undefined) {
      d.failedTriggers++;
      continue;
    }
    mine.add(t.id);
    const seen = byId.get(t.id);
    if (!seen) {
      d.lost++;
      continue;
    }
    d.delivered++;
    d.duplicates += seen.length - 1;
    d.latencies.push(Math.min(...seen) - t.at);
  }
  for (const [id, l] of byId) if (!mine.has(id)) d.otherArrivals += l.length;
  return d;
}

export interface LatencyStats {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function latencyStats(xs: readonly number[]): LatencyStats {
  if (xs.length === 0) return { n: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  let max = -Infinity;
  for (const x of xs) if (x > max) max = x;
  return { n: xs.length, p50: percentile([...xs], 50), p99: percentile([...xs], 99), max };
}

/** The values whose time is in [from, to). */
export function inWindow(at: readonly number[], values: readonly number[], from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < at.length; i++) if (at[i]! >= from && at[i]! < to) out.push(values[i]!);
  return out;
}
