import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { fsync as realFsync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { countLoopTurns } from "../../testing/loop-turns.js";
import { describeStoreContract } from "../store-contract.js";
import { openSqliteStore } from "./sqlite-store.js";
import { openThreadedSqliteStore, STORE_THREAD } from "./threaded-store.js";
import type { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import { sqliteMigrations } from "./migrations.js";
import { HostInfoSchema } from "../../../gen/spectra/v1/agent_service_pb.js";
import { MetricEnvelopeSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import { CommandSchema } from "../../../gen/spectra/v1/diagnostics_pb.js";
import type { FsyncFn } from "./wal-sync.js";

const dir = mkdtempSync(join(tmpdir(), "spectra-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
let current = "";

// The store on the calling thread, and on its own (the server's: threaded-store.ts).
for (const [name, openAt] of [
  ["sqlite (file)", openSqliteStore],
  ["sqlite (file, on its own thread)", openThreadedSqliteStore],
] as const) {
  describeStoreContract(name, {
    async open() {
      current = join(dir, `store-${++n}.db`);
      return openAt(current);
    },
    async reopen() {
      return openAt(current);
    },
  });
}

describe("sqlite store on its own thread", () => {
  const batch = (seq: number) => ({
    hostname: "h1",
    sessionId: "s",
    sequence: BigInt(seq),
    receivedAtMs: 1_700_000_000_000,
    collectorStatus: [],
    envelopes: [
      create(MetricEnvelopeSchema, {
        type: "cpu",
        hostname: "h1",
        timestamp: timestampFromMs(1_700_000_000_000),
        payload: { case: "cpu", value: { usage: seq } },
      }),
    ],
  });

  it("fails the open with the store's own error (a newer schema)", async () => {
    const path = join(dir, "thread-newer.db");
    const db = new Database(path);
    db.pragma(`user_version = ${sqliteMigrations.length + 1}`);
    db.close();
    await expect(openThreadedSqliteStore(path)).rejects.toThrow(/newer than this server/);
  });

  it("writes on the thread what a store on this thread reads back, in call order", async () => {
    const path = join(dir, "thread-order.db");
    const store = await openThreadedSqliteStore(path);
    // not awaited one by one: WAL ids follow the call order, as the Store contract says
    const results = await Promise.all([1, 2, 3, 2].map((seq) => store.writeBatch(batch(seq))));
    expect(results.map((r) => r.duplicate)).toEqual([false, false, false, true]);
    expect(results[1]!.walId).toBeGreaterThan(results[0]!.walId);
    expect(results[2]!.walId).toBeGreaterThan(results[1]!.walId);
    await store.close();
    const same = openSqliteStore(path);
    expect((await same.readWal(0, 10)).map((r) => r.id)).toEqual(results.slice(0, 3).map((r) => r.walId));
    await same.close();
  });

  it("fails every later call once its thread is gone, and says so", async () => {
    const store = await openThreadedSqliteStore(join(dir, "thread-gone.db"));
    await store.writeBatch(batch(1));
    const worker = (store as unknown as Record<symbol, Worker>)[STORE_THREAD]!;
    await worker.terminate();
    await expect(store.writeBatch(batch(2))).rejects.toThrow(/SQLite store thread exited/);
    await expect(store.countEnvelopes()).rejects.toThrow(/SQLite store thread exited/);
    await store.close(); // does not hang
    await expect(store.countEnvelopes()).rejects.toThrow(/store is closed/);
  });
});

describe("sqlite store specifics", () => {
  it("runs in WAL mode and records the schema version", async () => {
    const path = join(dir, "wal.db");
    await openSqliteStore(path).close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("user_version", { simple: true })).toBe(sqliteMigrations.length);
    db.close();
  });

  it("refuses a database written by a newer server", () => {
    const path = join(dir, "newer.db");
    const db = new Database(path);
    db.pragma(`user_version = ${sqliteMigrations.length + 1}`);
    db.close();
    expect(() => openSqliteStore(path)).toThrow(/newer than this server/);
  });

  it("with groupCommitMs, commits batches that arrive within that time of the previous commit together", async () => {
    // Which event-loop turn each write resolved in: one group commit resolves its writes in one turn.
    const loop = countLoopTurns();
    const write = (store: ReturnType<typeof openSqliteStore>, seq: number) =>
      store
        .writeBatch({ hostname: "h", sessionId: "s", sequence: BigInt(seq), envelopes: [], collectorStatus: [], receivedAtMs: 1 })
        .then(() => loop.turns());
    const run = async (groupCommitMs: number) => {
      const store = openSqliteStore(join(dir, `group-${groupCommitMs}.db`), { groupCommitMs });
      const first = await write(store, 1); // nothing committed before: at once
      const second = write(store, 2);
      await new Promise((r) => setTimeout(r, 20));
      const third = write(store, 3); // 20 ms later, still within 1 s of the first commit
      const turns = [first, await second, await third];
      await store.close();
      return turns;
    };
    const [a1, b1, c1] = await run(1_000);
    expect(b1).toBe(c1); // one transaction for both
    expect(b1).toBeGreaterThan(a1!);
    const [, b0, c0] = await run(0);
    expect(c0).toBeGreaterThan(b0!); // without a window: a commit per turn with writes
    loop.stop();
  });

  describe("durability off the event loop", () => {
    /** An fsync that waits until the test lets it go (then runs the real one). */
    function heldFsync() {
      const held: Array<() => void> = [];
      let calls = 0;
      const fsync: FsyncFn = (fd, cb) => {
        calls++;
        held.push(() => realFsync(fd, cb));
      };
      return { fsync, held, calls: () => calls, release: () => held.splice(0).forEach((go) => go()) };
    }
    const settled = async <T>(p: Promise<T>) => {
      let done = false;
      void p.then(() => (done = true), () => (done = true));
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      return done;
    };
    const batch = (seq: number) => ({
      hostname: "h",
      sessionId: "s",
      sequence: BigInt(seq),
      envelopes: [create(MetricEnvelopeSchema, { type: "cpu", hostname: "h", timestamp: timestampFromMs(1_000 * seq), payload: { case: "cpu", value: { usage: seq } } })],
      collectorStatus: [],
      receivedAtMs: 1,
    });

    it("resolves a write only after the WAL is fsynced, one fsync for the writes that wait together", async () => {
      const f = heldFsync();
      const store = openSqliteStore(join(dir, "held-fsync.db"), { fsync: f.fsync });
      const first = store.writeBatch(batch(1));
      const second = store.writeBatch(batch(2));
      expect(await settled(first)).toBe(false); // committed, not yet on disk
      expect(f.calls()).toBe(1); // both in one group commit, one fsync
      const command = create(CommandSchema, { id: "c1" });
      const enqueued = store.enqueueCommand({ command, hostname: "h", createdAtMs: 1, requestedBy: "t" }, 10);
      expect(await settled(enqueued)).toBe(false);
      f.release(); // the first fsync ends; the enqueue's starts after it
      expect((await first).duplicate).toBe(false);
      expect((await second).stored).toBe(1);
      expect(await settled(enqueued)).toBe(false);
      expect(f.calls()).toBe(2);
      f.release();
      await enqueued;
      f.release();
      const closing = store.close();
      for (let i = 0; i < 20 && f.held.length === 0; i++) await new Promise((r) => setImmediate(r));
      f.release();
      await closing;
    });

    it("rejects the waiting writes and every later one when an fsync fails", async () => {
      let fail = true;
      const fsync: FsyncFn = (fd, cb) => (fail ? setImmediate(() => cb(Object.assign(new Error("EIO: i/o error"), { code: "EIO" }))) : realFsync(fd, cb));
      const store = openSqliteStore(join(dir, "failed-fsync.db"), { fsync });
      await expect(store.writeBatch(batch(1))).rejects.toThrow(/fsync of the SQLite WAL failed: EIO/);
      fail = false; // a later fsync that succeeds proves nothing: the kernel may have dropped the failed pages
      await expect(store.upsertAgent(create(HostInfoSchema, { hostname: "h" }), [], 1)).rejects.toThrow(/EIO/);
      await store.close();
    });

    it("copies the WAL into the database on the checkpointer's thread, not in the writer's commits", async () => {
      const path = join(dir, "checkpointer.db");
      const store = openSqliteStore(path, { checkpointIntervalMs: 50 });
      const before = statSync(path).size;
      // ~200 commits of a few pages each: far below SQLite's own checkpoint threshold (1,000 pages), which the
      // writer's connection has turned off; only the checkpointer makes the database file grow meanwhile.
      for (let i = 1; i <= 200; i++) await store.writeBatch(batch(i));
      let after = statSync(path).size;
      for (let i = 0; i < 100 && after <= before; i++) {
        await new Promise((r) => setTimeout(r, 50));
        after = statSync(path).size;
      }
      expect(after).toBeGreaterThan(before);
      await store.close();
      expect(() => statSync(`${path}-wal`)).toThrow(); // the last connection to close removed the WAL
      const db = new Database(path, { readonly: true });
      expect((db.prepare("SELECT count(*) AS n FROM wal").get() as { n: number }).n).toBe(200);
      db.close();
    });
  });
});
