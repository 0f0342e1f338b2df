import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CollectorHealth, CollectorStatusSchema, MetricEnvelopeSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { openSpool, type Spool, type SpoolOptions } from "./spool.js";

const silent = pino({ level: "silent" });
let dir: string;
const open: Spool[] = [];
const dirs: string[] = [];

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

const seqs = async (s: Spool, after?: bigint, limit = 1000) => (await s.read(after, limit)).map((b) => Number(b.sequence));

/** The data directory as a killed agent leaves it: a copy taken while the spool is still open (no close()). */
function crashCopy(): string {
  const copy = mkdtempSync(join(tmpdir(), "spectra-crash-"));
  dirs.push(copy);
  cpSync(dir, copy, { recursive: true });
  return copy;
}

const segmentsIn = (at: string) => readdirSync(at).filter((f) => /^spool-\d{20}\.seg$/.test(f)).sort();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "spectra-spool-"));
});
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("spool", () => {
  it("stores batches with increasing sequences and reads them in order", async () => {
    const s = spool();
    expect(s.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect([await append(s), await append(s, 3), await append(s)]).toEqual([1n, 2n, 3n]);
    const batches = await s.read(undefined, 10);
    expect(batches.map((b) => b.sequence)).toEqual([1n, 2n, 3n]);
    const b = batches[1]!.batch;
    expect(b.hostname).toBe("web-01");
    expect(b.sessionId).toBe(s.sessionId);
    expect(b.sequence).toBe(2n);
    expect(b.envelopes).toHaveLength(3);
    expect(b.collectorStatus[0]?.name).toBe("cpu");
    expect(await seqs(s, 1n, 1)).toEqual([2]);
    expect(s.hasPending()).toBe(true);
  });

  it("appends concurrently in order, each durable before it is readable", async () => {
    const s = spool();
    const pending = [append(s), append(s), append(s)];
    expect(await Promise.all(pending)).toEqual([1n, 2n, 3n]);
    // A killed agent's files hold every batch whose append had resolved.
    const copy = crashCopy();
    await s.close();
    expect(await seqs(spool({}, copy))).toEqual([1, 2, 3]);
  });

  it("removes acknowledged batches and keeps the rest in order", async () => {
    const s = spool();
    for (let i = 0; i < 5; i++) await append(s);
    expect(s.remove([2n, 4n, 99n])).toBe(2);
    expect(await seqs(s)).toEqual([1, 3, 5]);
    expect(s.stats().batches).toBe(3);
    s.remove([1n, 3n, 5n]);
    expect(s.hasPending()).toBe(false);
    expect(s.stats().bytes).toBe(0);
  });

  it("keeps the session and replays pending batches after a restart; sequences are never reused", async () => {
    const first = spool();
    for (let i = 0; i < 4; i++) await append(first);
    first.remove([1n, 3n]);
    const session = first.sessionId;
    await first.close();

    const second = spool();
    expect(second.sessionId).toBe(session);
    expect(await seqs(second)).toEqual([2, 4]);
    second.remove([2n, 4n]);
    await second.close();

    const third = spool();
    expect(third.hasPending()).toBe(false);
    expect(await append(third)).toBe(5n);
    expect((await third.read(undefined, 10))[0]?.batch.sessionId).toBe(session);
  });

  it("replays after a kill: acknowledgements survive, and retired segments are deleted", async () => {
    const s = spool({ segmentBytes: 600, ackSaveDelayMs: 0 });
    for (let i = 0; i < 6; i++) await append(s, 2, "cpu", 100);
    expect(segmentsIn(dir).length).toBeGreaterThan(2);
    s.remove([1n, 2n, 3n, 5n]);
    await s.settled();
    // The state write that retires them runs in the background; wait for the files to go.
    await until(() => !segmentsIn(dir).includes("spool-00000000000000000001.seg"));
    const copy = crashCopy();
    const again = spool({ segmentBytes: 600 }, copy);
    expect(await seqs(again)).toEqual([4, 6]);
    expect(await append(again)).toBe(7n);
  });

  it("saves acknowledgements within the delay; before that a crash only means sending them again", async () => {
    const s = spool({ ackSaveDelayMs: 200 });
    for (let i = 0; i < 3; i++) await append(s);
    s.remove([1n, 2n]);
    expect(await seqs(spool({}, crashCopy()))).toEqual([1, 2, 3]);
    await new Promise((r) => setTimeout(r, 400));
    expect(await seqs(spool({}, crashCopy()))).toEqual([3]);
  });

  it("never reuses a sequence after everything was acknowledged and the segments deleted", async () => {
    const s = spool({ segmentBytes: 300, ackSaveDelayMs: 0 });
    for (let i = 0; i < 5; i++) await append(s, 1, "cpu", 200);
    s.remove([1n, 2n, 3n, 4n, 5n]);
    await until(() => segmentsIn(dir).length <= 1);
    const copy = crashCopy();
    expect(await append(spool({ segmentBytes: 300 }, copy))).toBe(6n);
  });

  it("drops the oldest batches over the size bound and counts their envelopes per collector", async () => {
    const drops: Record<string, number>[] = [];
    const s = spool({ maxBytes: 64 * 1024, onDrop: (c) => drops.push(c) });
    // ~10 KiB per batch: 10 batches exceed 64 KiB.
    for (let i = 0; i < 10; i++) await append(s, 10, i % 2 === 0 ? "cpu" : "disk", 1000);
    const left = await seqs(s);
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

  it("drops batches older than the age bound", async () => {
    let now = 1_000_000;
    const s = spool({ maxAgeMs: 60_000, now: () => now });
    await append(s, 2, "cpu");
    await append(s, 3, "memory");
    now += 30_000;
    await append(s, 1, "cpu");
    now += 31_000; // the first two are now 61 s old
    await append(s, 1, "cpu");
    expect(await seqs(s)).toEqual([3, 4]);
    expect(s.dropped()).toEqual({ cpu: 2, memory: 3 });
  });

  it("persists the drop counts across restarts", async () => {
    const s = spool({ maxBytes: 64 * 1024 });
    for (let i = 0; i < 10; i++) await append(s, 10, "cpu", 1000);
    const dropped = s.dropped();
    expect(dropped["cpu"]).toBeGreaterThan(0);
    await s.close();
    expect(spool({ maxBytes: 64 * 1024 }).dropped()).toEqual(dropped);
  });

  it("skips and counts a record whose bytes were damaged, once", async () => {
    const s = spool();
    for (let i = 0; i < 3; i++) await append(s, 2, "network", 50);
    await s.close();
    // Flip a byte inside the second record's protobuf (the end of the file is the third record).
    const [seg] = segmentsIn(dir);
    const path = join(dir, seg!);
    const bytes = readFileSync(path);
    const recordSize = (bytes.length - 16 - 2 - 36) / 3;
    bytes[bytes.length - recordSize - 10]! ^= 0xff;
    writeFileSync(path, bytes);

    const reopened = spool();
    expect(await seqs(reopened)).toEqual([1, 3]);
    expect(reopened.dropped()).toEqual({ network: 2 });
    expect(reopened.stats().batches).toBe(2);
    await reopened.close();
    open.splice(0);
    expect(spool().dropped()).toEqual({ network: 2 });
  });

  it("cuts off a torn record at the end after a crash and carries on", async () => {
    const s = spool();
    for (let i = 0; i < 5; i++) await append(s, 5, "cpu", 200);
    const crashed = crashCopy();
    const [seg] = segmentsIn(crashed);
    // The last record was being written when the process died: only part of it reached the disk.
    truncateSync(join(crashed, seg!), statSync(join(crashed, seg!)).size - 700);

    const recovered = spool({}, crashed);
    const left = await seqs(recovered);
    expect(left).toEqual([1, 2, 3, 4]);
    expect(recovered.sessionId).toBe(s.sessionId);
    expect(recovered.dropped()).toEqual({});
    // The torn batch was never on disk, so never sent: its number may be given out again; stored ones never are.
    expect(Number(await append(recovered))).toBeGreaterThanOrEqual(5);
    expect(await seqs(recovered)).toHaveLength(5);
  });

  it("ignores the zeros a power cut can leave after the last record", async () => {
    const s = spool();
    for (let i = 0; i < 3; i++) await append(s);
    const crashed = crashCopy();
    appendFileSync(join(crashed, segmentsIn(crashed)[0]!), Buffer.alloc(4096));

    const recovered = spool({}, crashed);
    expect(await seqs(recovered)).toEqual([1, 2, 3]);
    expect(await append(recovered)).toBe(4n);
    await recovered.close();
    open.splice(open.indexOf(recovered), 1);
    expect(await seqs(spool({}, crashed))).toEqual([1, 2, 3, 4]);
  });

  it("recovers the session from the segments when the state file is unreadable", async () => {
    const s = spool();
    await append(s);
    await append(s);
    const session = s.sessionId;
    await s.close();
    writeFileSync(join(dir, "spool-state.json"), "{ not json");

    const recovered = spool();
    expect(recovered.sessionId).toBe(session);
    expect(await seqs(recovered)).toEqual([1, 2]);
    expect(await append(recovered)).toBe(3n);
    expect(readdirSync(dir).some((f) => f.startsWith("spool-state.json.corrupt-"))).toBe(true);
  });

  it("starts a new session when the state file is unreadable and there is no segment", async () => {
    const s = spool();
    await append(s);
    s.remove([1n]);
    const oldSession = s.sessionId;
    await s.close();
    for (const f of segmentsIn(dir)) rmSync(join(dir, f));
    writeFileSync(join(dir, "spool-state.json"), Buffer.alloc(100, 0x5a));

    const fresh = spool();
    expect(fresh.sessionId).not.toBe(oldSession);
    expect(fresh.hasPending()).toBe(false);
    expect(await append(fresh)).toBe(1n);
  });

  it("refuses a second agent on the same data directory", () => {
    spool();
    expect(() => openSpool({ dir, maxBytes: 1 << 20, maxAgeMs: 60_000, logger: silent })).toThrow(/another agent/);
  });

  it("takes over the lock of an agent that is gone", async () => {
    writeFileSync(join(dir, "spool.lock"), "2147483646 12345\n");
    const s = spool();
    expect(await append(s)).toBe(1n);
  });

  it("serves batches written earlier from the file, checked against their checksum", async () => {
    const s = spool({ segmentBytes: 2048 });
    for (let i = 0; i < 40; i++) await append(s, 2, i % 2 ? "cpu" : "memory", 30);
    await s.close();
    const again = spool({ segmentBytes: 2048 });
    const all = await again.read(undefined, 100);
    expect(all.map((b) => Number(b.sequence))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(all.every((b) => b.batch.envelopes.length === 2 && b.batch.sequence === b.sequence)).toBe(true);
    expect(all[5]!.data.byteLength).toBe(all[5]!.bytes);
  });
});

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
