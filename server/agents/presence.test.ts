// The presence tracker on a real SQLite file with a hand-driven clock: thresholds, the timeline's times, cheap
// persistence, the restart grace, two servers on one database, cleanup and bounded work per run.
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { countLoopTurns } from "../testing/loop-turns.js";
import { silentLogger } from "../../common/logger.js";
import { HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { CollectorHealth, CollectorStatusSchema } from "../../gen/spectra/v1/metrics_pb.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import { openPostgresStore } from "../store/postgres/postgres-store.js";
import { createTestDatabase, dropTestDatabases, itPostgresMissing, postgresProblem } from "../testing/postgres.js";
import type { AgentContact, Store } from "../store/store.js";
import { createPresence, type PresenceOptions } from "./presence.js";

const dir = mkdtempSync(join(tmpdir(), "spectra-presence-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const T0 = Date.UTC(2026, 1, 1);

/** A store whose touchAgents calls are counted. */
function counted(store: Store): Store & { touches: AgentContact[][] } {
  const touches: AgentContact[][] = [];
  return Object.assign(
    new Proxy(store, {
      get(target, prop, recv) {
        if (prop === "touchAgents") {
          return (c: AgentContact[]) => {
            touches.push(c);
            return target.touchAgents(c);
          };
        }
        const v = Reflect.get(target, prop, recv) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }),
    { touches },
  );
}

function setup(opts: Partial<PresenceOptions> = {}, path = join(dir, `p-${++n}.db`), backend?: Store) {
  const clock = { now: T0 };
  const store = counted(backend ?? openSqliteStore(path));
  const presence = createPresence({ store, logger: silentLogger(), clock: () => clock.now, options: opts });
  const register = async (hostname: string, intervalMs?: number) => {
    await store.upsertAgent(create(HostInfoSchema, { hostname }), [], clock.now);
    if (intervalMs !== undefined && !(await store.getAgentAccess(hostname))) {
      // Where the interval the agent reported is kept (AgentAccess.recordReport).
      const rec = { hostname, version: 0, state: "approved" as const, labels: {}, keyUsed: true, keyPickup: false, diagnostics: [] };
      await store.putAgentAccess({ ...rec, reportIntervalMs: intervalMs, createdAtMs: clock.now, updatedAtMs: clock.now }, undefined);
    }
    presence.registered(hostname, intervalMs);
  };
  const timeline = async (hostname: string) =>
    (await store.agentTimeline({ hostname, fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, limit: 100 })).changes.map((c) => [c.status, c.atMs - T0]);
  /** Advances the clock in steps of `stepMs`, running the job at each step. */
  const run = async (ms: number, stepMs = 1_000) => {
    for (let t = 0; t < ms; t += stepMs) {
      clock.now += stepMs;
      await presence.tick();
    }
  };
  return { clock, store, presence, register, timeline, run, path };
}

describe("presence", () => {
  it("goes online, stale, offline at the thresholds of the agent's interval, and back online at contact", async () => {
    const { clock, presence, register, timeline, run, store } = setup();
    await presence.start(false);
    await register("web-01", 1_000); // 1 s interval: stale after 3 s, offline after 12 s
    await presence.tick();
    expect(presence.view("web-01")).toMatchObject({ status: "online", sinceMs: T0 });
    await run(2_000);
    presence.contact("web-01"); // at +2 s
    await run(2_500, 500);
    expect(presence.view("web-01")?.status).toBe("online");
    await run(1_000, 500); // +5.5 s: 3.5 s silent
    expect(presence.view("web-01")).toMatchObject({ status: "stale", sinceMs: T0 + 5_000 });
    // The job noticing late does not move the recorded time.
    await run(60_000, 7_000);
    expect(presence.view("web-01")).toMatchObject({ status: "offline", sinceMs: T0 + 14_000 });
    clock.now += 500;
    presence.contact("web-01");
    const back = clock.now;
    await presence.flush();
    expect(await timeline("web-01")).toEqual([
      ["online", 0],
      ["stale", 5_000],
      ["offline", 14_000],
      ["online", back - T0],
    ]);
    expect(await store.getAgent("web-01")).toMatchObject({ lastSeenMs: back });
    await presence.stop();
    await store.close();
  });

  it("uses the default interval (5 s) for agents that reported none, and the configured multiples", async () => {
    const { presence, register, timeline, run, store } = setup({ staleAfter: 2, offlineAfter: 4 });
    await presence.start(false);
    await register("legacy-01");
    await run(30_000);
    await presence.flush();
    expect(await timeline("legacy-01")).toEqual([
      ["online", 0],
      ["stale", 10_000],
      ["offline", 20_000],
    ]);
    expect(presence.thresholds()).toEqual({ staleMs: 10_000, offlineMs: 20_000 });
    expect(presence.thresholds(1_000)).toEqual({ staleMs: 2_000, offlineMs: 4_000 });
    await store.close();
  });

  it("keeps contact in memory and writes it at most every persistEveryMs per agent, many agents at once", async () => {
    const { clock, presence, register, run, store } = setup({ persistEveryMs: 5_000 });
    await presence.start(false);
    await register("a", 1_000);
    await register("b", 1_000);
    const status = create(CollectorStatusSchema, { name: "cpu", health: CollectorHealth.OK });
    store.touches.length = 0;
    for (let i = 0; i < 20; i++) {
      clock.now += 500; // a batch every half second from each
      presence.contact("a", [status]);
      presence.contact("b");
      await presence.tick();
    }
    // 10 s of batches: two writes, each for both agents (not 40).
    expect(store.touches.length).toBeLessThanOrEqual(3);
    expect(store.touches.every((t) => t.length === 2)).toBe(true);
    expect((await store.getAgent("a"))!.lastSeenMs).toBeGreaterThanOrEqual(clock.now - 5_000);
    expect((await store.getAgent("a"))!.collectorStatus[0]).toMatchObject({ name: "cpu" });
    await presence.stop(); // the rest is written at shutdown
    expect((await store.getAgent("a"))!.lastSeenMs).toBe(clock.now);
    await run(0);
    await store.close();
  });

  it("writes a large fleet's contacts 100 agents per transaction, the event loop free between them", async () => {
    const { clock, presence, register, store } = setup({ persistEveryMs: 5_000, maxPerTick: 10_000 });
    await presence.start(false);
    const hosts = Array.from({ length: 250 }, (_, i) => `h-${i}`);
    for (const h of hosts) await register(h, 1_000);
    store.touches.length = 0;
    clock.now += 6_000;
    for (const h of hosts) presence.contact(h);
    const loop = countLoopTurns();
    await presence.tick();
    loop.stop();
    expect(store.touches.map((t) => t.length)).toEqual([100, 100, 50]);
    expect(loop.turns()).toBeGreaterThanOrEqual(3); // other work ran between the writes
    for (const h of [hosts[0]!, hosts[249]!]) expect((await store.getAgent(h))!.lastSeenMs).toBe(clock.now);
    await presence.stop();
    await store.close();
  });

  it("after a restart counts silence from the server's start, and takes the stored status over", async () => {
    const first = setup();
    await first.presence.start(false);
    await first.register("web-01", 1_000);
    await first.presence.stop();
    await first.store.close();
    // The server was down for an hour; the agent did not come back.
    const again = setup({}, first.path);
    again.clock.now = T0 + 3_600_000;
    await again.presence.start(false);
    expect(again.presence.view("web-01")).toMatchObject({ status: "online", sinceMs: T0 });
    await again.run(4_000);
    expect(again.presence.view("web-01")).toMatchObject({ status: "stale", sinceMs: T0 + 3_600_000 + 3_000 });
    await again.presence.flush();
    expect(await again.timeline("web-01")).toEqual([
      ["online", 0],
      ["stale", 3_603_000],
    ]);
    await again.store.close();
  });

  it("on a shared database: a server without the agent's contact does not mark it stale; a change is stored once", async () => {
    await sharedDatabase();
  });

  it("hands agents offline longer than cleanupAfterMs to the cleanup, and gives unregistered hosts no status", async () => {
    const { presence, register, run, store } = setup({ cleanupAfterMs: 10_000 });
    const removed: string[] = [];
    presence.setCleanup(async (h) => {
      removed.push(h);
      await store.removeAgent(h, { atMs: 0, reason: "test", deleteData: false });
    });
    await presence.start(false);
    await register("old-01", 1_000);
    presence.contact("stranger"); // sends batches but never registered
    await run(15_000);
    expect(presence.view("old-01")?.status).toBe("offline"); // offline since +12 s
    expect(removed).toEqual([]);
    await run(10_000);
    expect(removed).toEqual(["old-01"]);
    expect(presence.view("old-01")).toBeUndefined();
    expect(presence.view("stranger")).toBeUndefined();
    expect(await store.getAgent("old-01")).toBeUndefined();
    // The data is kept: so is the timeline, ending offline; the stranger has none.
    expect(await store.latestAgentStatuses()).toEqual([{ hostname: "old-01", status: "offline", atMs: T0 + 12_000 }]);
    await store.close();
  });

  it("looks at a bounded number of agents per run", async () => {
    const { presence, register, run, store } = setup({ maxPerTick: 2 });
    await presence.start(false);
    for (const h of ["a", "b", "c", "d", "e"]) await register(h, 1_000);
    await run(3_500, 3_500); // all are due for stale; one run handles two
    const stale = () => ["a", "b", "c", "d", "e"].filter((h) => presence.view(h)?.status === "stale").length;
    expect(stale()).toBe(2);
    await presence.tick();
    expect(stale()).toBe(4);
    await presence.tick();
    expect(stale()).toBe(5);
    // Still recorded at the moment the threshold passed.
    expect(presence.view("e")?.sinceMs).toBe(T0 + 3_000);
    await store.close();
  });
});

/** Two trackers (two servers) on one database: on a second connection to the SQLite file, or two PostgreSQL stores. */
async function sharedDatabase(stores?: [Store, Store]) {
  const a = setup({ syncEveryMs: 2_000, persistEveryMs: 1_000 }, join(dir, `p-${++n}.db`), stores?.[0]);
  await a.presence.start(false);
  await a.register("web-01", 1_000);
  const b = setup({ syncEveryMs: 2_000, persistEveryMs: 1_000 }, a.path, stores?.[1]);
  await b.presence.start(false);
  for (let i = 0; i < 20; i++) {
    a.clock.now += 500;
    b.clock.now = a.clock.now;
    a.presence.contact("web-01"); // the agent talks to server A only
    await a.presence.tick();
    await b.presence.tick();
  }
  expect(b.presence.view("web-01")?.status).toBe("online");
  // The agent stops: both servers notice; the timeline has each change once.
  for (let i = 0; i < 30; i++) {
    a.clock.now += 500;
    b.clock.now = a.clock.now;
    await a.presence.tick();
    await b.presence.tick();
  }
  await a.presence.flush();
  await b.presence.flush();
  expect((await a.timeline("web-01")).map(([s]) => s)).toEqual(["online", "stale", "offline"]);
  expect(b.presence.view("web-01")?.status).toBe("offline");
  await b.store.close();
  await a.store.close();
}

const pgProblem = await postgresProblem();
describe("presence on a shared PostgreSQL database", () => {
  afterAll(() => dropTestDatabases());
  if (pgProblem !== undefined) {
    itPostgresMissing(pgProblem, "presence.test.ts");
    return;
  }
  it("does not mark an agent stale on the server it is not connected to; stores each change once", async () => {
    const url = await createTestDatabase();
    await sharedDatabase([await openPostgresStore(url, { instanceId: "a" }), await openPostgresStore(url, { instanceId: "b" })]);
  });
});
