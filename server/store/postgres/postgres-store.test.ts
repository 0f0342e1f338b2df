// The store contract against PostgreSQL (SPECTRA_TEST_PG, default 127.0.0.1:5432), each store in a fresh database,
// plus what only a shared database has: migration locking, per-instance WAL, partitions, claims and notifications
// across two stores. Without PostgreSQL: skipped with a message, or failed under CI=true.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, describe, expect, it } from "vitest";
import { CommandSchema, CommandState, CommandType } from "../../../gen/spectra/v1/diagnostics_pb.js";
import { MetricEnvelopeSchema } from "../../../gen/spectra/v1/metrics_pb.js";
import { QueueFullError } from "../../errors.js";
import {
  createTestDatabase,
  dropTestDatabases,
  itPostgresMissing,
  postgresProblem,
  withDatabase,
} from "../../testing/postgres.js";
import { describeStoreContract } from "../store-contract.js";
import type { BatchWrite, Store, StoreChannel } from "../store.js";
import { postgresMigrations, runPostgresMigrations } from "./migrations.js";
import { openPostgresStore } from "./postgres-store.js";

const problem = await postgresProblem();
const opened: Store[] = [];
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
  await dropTestDatabases();
});

/** Opens a store and remembers it, so a failed test does not leave connections behind. */
async function open(url: string, instanceId = "test-1"): Promise<Store> {
  const s = await openPostgresStore(url, { instanceId });
  opened.push(s);
  return s;
}

function batch(seq: number, ms: number, hostname = "web-01"): BatchWrite {
  return {
    hostname,
    sessionId: "s",
    sequence: BigInt(seq),
    envelopes: [
      create(MetricEnvelopeSchema, {
        type: "cpu",
        hostname,
        timestamp: timestampFromMs(ms),
        payload: { case: "cpu", value: { usage: 1 } },
      }),
    ],
    collectorStatus: [],
    receivedAtMs: ms,
  };
}

function command(id: string) {
  return create(CommandSchema, {
    id,
    type: CommandType.LIST_MOUNTS,
    params: { case: "listMounts", value: {} },
    createdAt: timestampFromMs(1_000),
  });
}

/** Collects notifications of one channel; `next` waits for one matching key. */
function recorder(store: Store, channel: StoreChannel) {
  const seen: (string | null)[] = [];
  const waiters: { match: (k: string | null) => boolean; resolve: () => void }[] = [];
  store.subscribe!(channel, (key) => {
    seen.push(key);
    for (const w of [...waiters]) {
      if (w.match(key)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  return {
    seen,
    next(match: (k: string | null) => boolean, ms = 3_000): Promise<void> {
      if (seen.some(match)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${channel} notification within ${ms} ms; saw ${JSON.stringify(seen)}`)), ms);
        waiters.push({
          match,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        });
      });
    },
  };
}

if (problem !== undefined) {
  describe("PostgreSQL store", () => itPostgresMissing(problem, "postgres-store.test.ts"));
} else {
  let current = "";
  describeStoreContract("postgres", {
    async open() {
      current = await createTestDatabase();
      return open(current);
    },
    async reopen() {
      return open(current);
    },
  });

  describe("postgres store specifics", () => {
    it("records the schema version, migrates once when two servers start together, refuses a newer schema", async () => {
      const url = await createTestDatabase();
      const [a, b] = await Promise.all([open(url, "a"), open(url, "b")]);
      const versions = await withDatabase(url, (c) => c.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version"));
      expect(versions.rows.map((r) => r.version)).toEqual(postgresMigrations.map((_, i) => i + 1));
      await a.close();
      await b.close();
      // Running the migrations again changes nothing.
      await withDatabase(url, (c) => runPostgresMigrations(c));
      await withDatabase(url, (c) => c.query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, 0)", [postgresMigrations.length + 1]));
      await expect(openPostgresStore(url, { instanceId: "a" })).rejects.toThrow(/newer than this server/);
    });

    it("keeps each instance's WAL apart", async () => {
      const url = await createTestDatabase();
      const a = await open(url, "a");
      const b = await open(url, "b");
      const a1 = await a.writeBatch(batch(1, 1_000));
      const b1 = await b.writeBatch(batch(1, 1_000, "db-01"));
      const a2 = await a.writeBatch(batch(2, 2_000));
      // The same batch through the other server is still a duplicate: replay keys are shared.
      expect(await b.writeBatch(batch(2, 2_000))).toMatchObject({ duplicate: true, walId: 0 });
      expect((await a.readWal(0, 10)).map((w) => w.id)).toEqual([a1.walId, a2.walId]);
      expect((await b.readWal(0, 10)).map((w) => w.id)).toEqual([b1.walId]);
      await b.commitFlush({ chunks: [], rollups: [], flushed: [], deleteWalBelow: Number.MAX_SAFE_INTEGER, meta: { horizon: "b" } });
      expect(await b.readWal(0, 10)).toEqual([]);
      expect((await a.readWal(0, 10)).map((w) => w.id)).toEqual([a1.walId, a2.walId]);
      expect(await a.getMeta("horizon")).toBeUndefined();
      expect(await b.getMeta("horizon")).toBe("b");
      expect(await a.countEnvelopes()).toBe(2 + 1);
    });

    it("survives a lost write connection, isolates a bad batch from its group, and keeps uint64 sequences", async () => {
      const url = await createTestDatabase();
      const s = await open(url);
      const first = await s.writeBatch(batch(1, 1_000));
      const killed = await withDatabase(url, async (c) =>
        (
          await c.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'spectra-server write'`,
          )
        ).rows.length,
      );
      expect(killed).toBe(1);
      await new Promise((r) => setTimeout(r, 100));
      const second = await s.writeBatch(batch(2, 2_000));
      expect(second.walId).toBeGreaterThan(first.walId);
      // A hostname PostgreSQL cannot store fails its own batch only.
      const results = await Promise.allSettled([
        s.writeBatch(batch(3, 3_000)),
        s.writeBatch(batch(1, 3_000, "bad\u0000host")),
        s.writeBatch(batch(4, 4_000)),
      ]);
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
      const ok = results.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<{ walId: number }>).value.walId);
      expect(ok[1]!).toBeGreaterThan(ok[0]!);
      expect(ok[0]!).toBeGreaterThan(second.walId);
      // The largest uint64 sequence is stored and recognised again.
      const big = { ...batch(0, 5_000), sequence: 2n ** 64n - 1n };
      expect((await s.writeBatch(big)).duplicate).toBe(false);
      expect((await s.writeBatch(big)).duplicate).toBe(true);
      expect((await s.writeBatch({ ...big, sequence: 2n ** 63n - 1n })).duplicate).toBe(false);
      expect(await s.countEnvelopes("web-01")).toBe(6);
    });

    it("creates one partition per day of chunks and per month of rollups, and drops them with retention", async () => {
      const url = await createTestDatabase();
      const s = await open(url);
      const [id] = await s.ensureSeries([{ hostname: "web-01", metric: "cpu_usage", labels: "" }]);
      const day = 86_400_000;
      const t0 = Date.UTC(2026, 0, 30);
      await s.commitFlush({
        chunks: [0, 1, 2, 3].map((d) => ({ seriesId: id!, minT: t0 + d * day, maxT: t0 + d * day + 10, count: 1, data: new Uint8Array([d]) })),
        rollups: [
          { tier: "1m", seriesId: id!, windowStart: t0, data: new Uint8Array([1]) },
          { tier: "1h", seriesId: id!, windowStart: t0 + 3 * day, data: new Uint8Array([2]) },
          // Outside any day or month partition: kept in DEFAULT, still readable.
          { tier: "1h", seriesId: id!, windowStart: -day, data: new Uint8Array([3]) },
        ],
        flushed: [],
      });
      const parts = () =>
        withDatabase(url, async (c) =>
          (
            await c.query<{ relname: string; n: string }>(
              `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent IN ('chunks'::regclass, 'rollups_1m'::regclass, 'rollups_1h'::regclass) ORDER BY 1`,
            )
          ).rows.map((r) => r.relname),
        );
      const firstDay = t0 / day;
      expect(await parts()).toEqual(
        [
          "chunks_default",
          ...[0, 1, 2, 3].map((d) => `chunks_d${firstDay + d}`),
          "rollups_1h_default",
          "rollups_1h_m202602",
          "rollups_1m_default",
          "rollups_1m_m202601",
        ].sort(),
      );
      expect((await s.readRollups("1h", [id!], -day, t0 + 9 * day)).map((r) => r.windowStart)).toEqual([-day, t0 + 3 * day]);
      const r = await s.applyRetention({ raw: t0 + 2 * day + 5, "1m": Date.UTC(2026, 1, 2), "1h": 0 }, { "1m": 3_600_000, "1h": day });
      expect(r).toEqual({ chunks: 2, rollups: 2, snapshots: 0 });
      expect(await parts()).toEqual(
        ["chunks_default", `chunks_d${firstDay + 2}`, `chunks_d${firstDay + 3}`, "rollups_1h_default", "rollups_1h_m202602", "rollups_1m_default"].sort(),
      );
      expect((await s.readChunks([id!], 0, t0 + 9 * day)).map((c) => c.data[0])).toEqual([2, 3]);
      // A late chunk for a dropped day gets its partition again.
      await s.commitFlush({ chunks: [{ seriesId: id!, minT: t0, maxT: t0 + 1, count: 1, data: new Uint8Array([9]) }], rollups: [], flushed: [] });
      expect(await parts()).toContain(`chunks_d${firstDay}`);
      expect(await s.sizeBytes()).toBeGreaterThan(0);
    });

    it("claims each command once across two servers and caps the queue across them", async () => {
      const url = await createTestDatabase();
      const a = await open(url, "a");
      const b = await open(url, "b");
      const results = await Promise.allSettled(
        Array.from({ length: 16 }, (_, i) =>
          (i % 2 === 0 ? a : b).enqueueCommand({ command: command(`c${i}`), hostname: "web-01", createdAtMs: 1_000 + i, requestedBy: "t" }, 10),
        ),
      );
      expect(results.filter((r) => r.status === "fulfilled").length).toBe(10);
      for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(QueueFullError);
      const claimed: string[] = [];
      await Promise.all(
        [a, b, a, b].map(async (s) => {
          for (;;) {
            const rec = await s.claimNextCommand("web-01", 5_000);
            if (!rec) return;
            expect(rec.state).toBe(CommandState.DELIVERED);
            claimed.push(rec.command.id);
          }
        }),
      );
      expect(claimed.length).toBe(10);
      expect(new Set(claimed).size).toBe(10);
      expect(await a.countPendingCommands("web-01")).toBe(10);
    });

    it("tells the other server about queued and changed commands, not itself, and recovers a lost listener", async () => {
      const url = await createTestDatabase();
      const a = await open(url, "a");
      const b = await open(url, "b");
      const queuedAtB = recorder(b, "command_queued");
      const updatedAtB = recorder(b, "command_updated");
      const queuedAtA = recorder(a, "command_queued");
      const updatedAtA = recorder(a, "command_updated");

      await a.enqueueCommand({ command: command("n1"), hostname: "web-01", createdAtMs: 1_000, requestedBy: "t" }, 10);
      await queuedAtB.next((k) => k === "web-01", 1_000);
      const rec = await a.claimNextCommand("web-01", 2_000);
      expect(rec?.command.id).toBe("n1");
      await updatedAtB.next((k) => k === "n1", 1_000);
      expect(await b.requeueCommand("n1", "web-01")).toBe(true);
      await queuedAtA.next((k) => k === "web-01", 1_000);
      await updatedAtA.next((k) => k === "n1", 1_000);
      await b.claimNextCommand("web-01", 3_000);
      await b.finishCommand("n1", "web-01", CommandState.COMPLETED, undefined, 4_000);
      await a.enqueueCommand({ command: command("n2"), hostname: "web-01", createdAtMs: 5_000, requestedBy: "t" }, 10);
      expect(await a.expireCommands(6_000, 7_000)).toEqual(["n2"]);
      await updatedAtB.next((k) => k === "n2", 1_000);
      // Nobody hears their own changes (the caller wakes its own waiters).
      expect(queuedAtA.seen.filter((k) => k !== null).length).toBe(1);
      expect(queuedAtB.seen).toEqual(["web-01", "web-01"]);

      // Kill B's listening connection: B reconnects, says "anything may have changed", and hears again.
      const killed = await withDatabase(url, async (c) =>
        (
          await c.query<{ ok: boolean }>(
            `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'spectra-server listen'`,
          )
        ).rows.length,
      );
      expect(killed).toBeGreaterThanOrEqual(2); // A's and B's listeners
      await queuedAtB.next((k) => k === null, 5_000);
      await a.enqueueCommand({ command: command("n3"), hostname: "db-01", createdAtMs: 8_000, requestedBy: "t" }, 10);
      await queuedAtB.next((k) => k === "db-01", 2_000);
    });

    it("tells the other server when an agent's access record changes (keys rotated or revoked), not itself", async () => {
      const url = await createTestDatabase();
      const a = await open(url, "a");
      const b = await open(url, "b");
      const atB = recorder(b, "agent_access_changed");
      const atA = recorder(a, "agent_access_changed");
      const rec = { hostname: "web-01", version: 0, state: "approved" as const, labels: {}, keyUsed: false, keyPickup: false, diagnostics: [], createdAtMs: 1, updatedAtMs: 1 };
      expect(await a.putAgentAccess(rec, undefined)).toEqual({ ok: true, version: 1 });
      await atB.next((k) => k === "web-01", 1_000);
      expect(await a.putAgentAccess({ ...rec, state: "revoked" }, 1)).toEqual({ ok: true, version: 2 });
      expect(await a.putAgentAccess({ ...rec, state: "approved" }, 1)).toEqual({ ok: false, reason: "conflict" }); // no notice
      expect(await b.deleteAgentAccess("web-01")).toBe(true);
      await atA.next((k) => k === "web-01", 1_000);
      await new Promise((r) => setTimeout(r, 200));
      expect(atB.seen).toEqual(["web-01", "web-01"]);
      expect(atA.seen).toEqual(["web-01"]);
    });

    it("tells the other server when an admin token is revoked (the streams opened with it end)", async () => {
      const url = await createTestDatabase();
      const a = await open(url, "a");
      const b = await open(url, "b");
      const atB = recorder(b, "admin_token_revoked");
      const atA = recorder(a, "admin_token_revoked");
      const tok = { id: "00000000000000a1", name: "ops", role: "viewer" as const, secretHash: "ab".repeat(32), createdAtMs: 1, createdBy: "t" };
      expect(await a.createAdminToken(tok)).toBe(true);
      expect((await a.revokeAdminToken("ops", 2_000))?.revokedAtMs).toBe(2_000);
      await atB.next((k) => k === tok.id, 1_000);
      expect(await a.revokeAdminToken("nobody", 2_000)).toBeUndefined(); // no notice
      await new Promise((r) => setTimeout(r, 200));
      expect(atB.seen).toEqual([tok.id]);
      expect(atA.seen).toEqual([]); // not told of its own change
    });

    it("tells the other server when an agent is removed (its streams end, its commands' watchers wake)", async () => {
      const url = await createTestDatabase();
      const a = await open(url, "a");
      const b = await open(url, "b");
      const access = recorder(b, "agent_access_changed");
      const updated = recorder(b, "command_updated");
      const rec = { hostname: "web-01", version: 0, state: "approved" as const, labels: {}, keyUsed: false, keyPickup: false, diagnostics: [], createdAtMs: 1, updatedAtMs: 1 };
      await a.putAgentAccess(rec, undefined);
      await a.enqueueCommand({ command: command("c1"), hostname: "web-01", createdAtMs: 1_000, requestedBy: "test" }, 10);
      await access.next((k) => k === "web-01");
      const r = await a.removeAgent("web-01", { atMs: 2_000, reason: "agent removed by test", deleteData: false });
      expect(r).toMatchObject({ access: true, expiredCommands: ["c1"] });
      await updated.next((k) => k === "c1");
      await new Promise((res) => setTimeout(res, 200));
      expect(access.seen).toEqual(["web-01", "web-01"]);
      const deleted = recorder(b, "host_data_deleted");
      await a.removeAgent("web-01", { atMs: 2_500, reason: "agent removed by test", deleteData: true });
      await deleted.next((k) => k === "web-01");
      // Two servers recording the same change at once: stored once.
      const both = await Promise.all([
        a.recordAgentStatuses([{ hostname: "web-01", status: "offline", atMs: 3_000 }]),
        b.recordAgentStatuses([{ hostname: "web-01", status: "offline", atMs: 3_001 }]),
      ]);
      expect(both.flat().filter(Boolean)).toHaveLength(1);
      // Two servers each writing several hosts' changes at once, the hosts in opposite orders: no deadlock.
      const hosts = Array.from({ length: 20 }, (_, i) => `h-${i}`);
      const many = await Promise.all([
        a.recordAgentStatuses(hosts.map((hostname) => ({ hostname, status: "stale" as const, atMs: 4_000 }))),
        b.recordAgentStatuses([...hosts].reverse().map((hostname) => ({ hostname, status: "stale" as const, atMs: 4_000 }))),
      ]);
      expect(many.flat().filter(Boolean)).toHaveLength(hosts.length);
    });
  });
}
