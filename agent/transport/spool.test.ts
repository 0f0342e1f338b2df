import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CollectorHealth, CollectorStatusSchema, MetricEnvelopeSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { openSpool, type Spool, type SpoolOptions } from "./spool.js";

const silent = pino({ level: "silent" });
let dir: string;
const open: Spool[] = [];

function spool(opts: Partial<SpoolOptions> = {}, at = dir): Spool {
  const s = openSpool({ dir: at, maxBytes: 100 * 1024 * 1024, maxAgeMs: 7 * 86_400_000, logger: silent, ...opts });
  open.push(s);
  return s;
}

function append(s: Spool, n = 1, collector = "cpu", padding = 0) {
  const envelopes = Array.from({ length: n }, () =>
    create(MetricEnvelopeSchema, { type: collector, hostname: "h".repeat(1 + padding) }),
  );
  return s.append({
    hostname: "web-01",
    envelopes,
    collectorStatus: [create(CollectorStatusSchema, { name: collector, health: CollectorHealth.OK })],
    countsByCollector: { [collector]: n },
  });
}

const seqs = (s: Spool, after?: bigint, limit = 1000) => s.read(after, limit).map((b) => Number(b.sequence));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "spectra-spool-"));
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("spool", () => {
  it("stores batches with increasing sequences and reads them in order", () => {
    const s = spool();
    expect(s.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect([append(s), append(s, 3), append(s)]).toEqual([1n, 2n, 3n]);
    const batches = s.read(undefined, 10);
    expect(batches.map((b) => b.sequence)).toEqual([1n, 2n, 3n]);
    const b = batches[1]!.batch;
    expect(b.hostname).toBe("web-01");
    expect(b.sessionId).toBe(s.sessionId);
    expect(b.sequence).toBe(2n);
    expect(b.envelopes).toHaveLength(3);
    expect(b.collectorStatus[0]?.name).toBe("cpu");
    expect(seqs(s, 1n, 1)).toEqual([2]);
    expect(s.hasPending()).toBe(true);
  });

  it("removes acknowledged batches and keeps the rest in order", () => {
    const s = spool();
    for (let i = 0; i < 5; i++) append(s);
    expect(s.remove([2n, 4n, 99n])).toBe(2);
    expect(seqs(s)).toEqual([1, 3, 5]);
    expect(s.stats().batches).toBe(3);
    s.remove([1n, 3n, 5n]);
    expect(s.hasPending()).toBe(false);
    expect(s.stats().bytes).toBe(0);
  });

  it("keeps the session and replays pending batches after a restart; sequences are never reused", () => {
    const first = spool();
    for (let i = 0; i < 4; i++) append(first);
    first.remove([1n, 2n]);
    const session = first.sessionId;
    first.close();

    const second = spool();
    expect(second.sessionId).toBe(session);
    expect(seqs(second)).toEqual([3, 4]);
    second.remove([3n, 4n]);
    second.close();

    const third = spool();
    expect(third.hasPending()).toBe(false);
    expect(append(third)).toBe(5n);
    expect(third.read(undefined, 10)[0]?.batch.sessionId).toBe(session);
  });

  it("drops the oldest batches over the size bound and counts their envelopes per collector", () => {
    const drops: Record<string, number>[] = [];
    const s = spool({ maxBytes: 64 * 1024, onDrop: (c) => drops.push(c) });
    // ~10 KiB per batch: 10 batches exceed 64 KiB.
    for (let i = 0; i < 10; i++) append(s, 10, i % 2 === 0 ? "cpu" : "disk", 1000);
    const left = seqs(s);
    expect(left[left.length - 1]).toBe(10);
    expect(left[0]).toBeGreaterThan(1);
    expect(left).toEqual(Array.from({ length: left.length }, (_, i) => 11 - left.length + i));
    expect(s.stats().bytes).toBeLessThanOrEqual(64 * 1024);
    const droppedBatches = 10 - left.length;
    const dropped = s.dropped();
    expect((dropped["cpu"] ?? 0) + (dropped["disk"] ?? 0)).toBe(droppedBatches * 10);
    const fromCallback = drops.reduce((n, c) => n + Object.values(c).reduce((a, b) => a + b, 0), 0);
    expect(fromCallback).toBe(droppedBatches * 10);
  });

  it("drops batches older than the age bound", () => {
    let now = 1_000_000;
    const s = spool({ maxAgeMs: 60_000, now: () => now });
    append(s, 2, "cpu");
    append(s, 3, "memory");
    now += 30_000;
    append(s, 1, "cpu");
    now += 31_000; // the first two are now 61 s old
    append(s, 1, "cpu");
    expect(seqs(s)).toEqual([3, 4]);
    expect(s.dropped()).toEqual({ cpu: 2, memory: 3 });
  });

  it("persists the drop counts across restarts", () => {
    const s = spool({ maxBytes: 64 * 1024 });
    for (let i = 0; i < 10; i++) append(s, 10, "cpu", 1000);
    const dropped = s.dropped();
    s.close();
    expect(spool({ maxBytes: 64 * 1024 }).dropped()).toEqual(dropped);
  });

  it("skips and counts a record whose bytes were damaged", () => {
    const s = spool();
    for (let i = 0; i < 3; i++) append(s, 2, "network");
    s.close();
    const db = new Database(join(dir, "spool.db"));
    db.prepare("UPDATE batches SET data = X'0a0568656c6c6f' WHERE sequence = 2").run();
    db.close();

    const reopened = spool();
    expect(seqs(reopened)).toEqual([1, 3]);
    expect(reopened.dropped()).toEqual({ network: 2 });
    expect(reopened.stats().batches).toBe(2);
  });

  it("survives a crash with a torn write at the end of the journal", () => {
    const s = spool();
    for (let i = 0; i < 5; i++) append(s, 5, "cpu", 200);
    // Copy the files as a killed process leaves them: the database plus its write-ahead log, not checkpointed.
    const crashed = mkdtempSync(join(tmpdir(), "spectra-crash-"));
    try {
      copyFileSync(join(dir, "spool.db"), join(crashed, "spool.db"));
      const wal = join(dir, "spool.db-wal");
      expect(existsSync(wal)).toBe(true);
      copyFileSync(wal, join(crashed, "spool.db-wal"));
      // Cut the last journal frame in half: the last transaction was being written when the process died.
      const size = statSync(join(crashed, "spool.db-wal")).size;
      truncateSync(join(crashed, "spool.db-wal"), size - 700);

      const recovered = spool({}, crashed);
      const left = seqs(recovered);
      expect(left.length).toBeGreaterThanOrEqual(1);
      expect(left.length).toBeLessThan(5);
      expect(left).toEqual(Array.from({ length: left.length }, (_, i) => i + 1));
      expect(recovered.sessionId).toBe(s.sessionId);
      // The torn batch never committed, so its number is free; numbers already stored are never reused.
      expect(Number(append(recovered))).toBe(left.length + 1);
      recovered.close();
    } finally {
      rmSync(crashed, { recursive: true, force: true });
    }
  });

  it("moves a database it cannot read aside and starts a new session", () => {
    const s = spool();
    append(s);
    const oldSession = s.sessionId;
    s.close();
    writeFileSync(join(dir, "spool.db"), Buffer.alloc(8192, 0x5a));
    rmSync(join(dir, "spool.db-wal"), { force: true });

    const fresh = spool();
    expect(fresh.sessionId).not.toBe(oldSession);
    expect(fresh.hasPending()).toBe(false);
    expect(append(fresh)).toBe(1n);
    expect(readdirSync(dir).some((f) => f.startsWith("spool.db.corrupt-"))).toBe(true);
  });

  it("refuses a second agent on the same data directory", () => {
    spool();
    expect(() => openSpool({ dir, maxBytes: 1 << 20, maxAgeMs: 60_000, logger: silent })).toThrow(/another agent/);
  });
});
