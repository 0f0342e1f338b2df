import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import {
  CommandOutcomeSchema,
  CommandSchema,
  CommandState,
  CommandType,
  ListMountsParamsSchema,
  LogLevel,
  NetworkAction,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import { AgentNotRegisteredError, InvalidInputError, NotFoundError, QueueFullError } from "../errors.js";
import { silentLogger } from "../../common/logger.js";
import { HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Store, StoreChannel } from "../store/store.js";
import { testServices } from "../testing/services.js";
import { createCommandQueue } from "./command-queue.js";
import { normalizePath, type CommandParams } from "./command-params.js";

const mounts: CommandParams = { case: "listMounts", value: create(ListMountsParamsSchema) };
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});

function setup(opts: { ttlMs?: number; clock?: () => number } = {}) {
  const s = testServices(opts);
  cleanup.push(async () => {
    s.commands.stop();
    await s.store.close();
  });
  return s;
}

describe("command queue", () => {
  it("refuses hosts that never registered", async () => {
    const s = setup();
    await expect(s.commands.enqueue("ghost", mounts, "test")).rejects.toBeInstanceOf(AgentNotRegisteredError);
  });

  it("fills defaults and validates parameters before queuing", async () => {
    const s = setup();
    await s.register("web-01");
    const logs = await s.commands.enqueue("web-01", { case: "fetchLogs", value: {} as never }, "test");
    expect(logs.command.type).toBe(CommandType.FETCH_LOGS);
    expect(logs.command.params).toMatchObject({ case: "fetchLogs", value: { minLevel: LogLevel.ERROR } });
    const disk = await s.commands.enqueue("web-01", { case: "diskUsage", value: { path: "/var//log/../lib/" } as never }, "test");
    expect(disk.command.params.value).toMatchObject({ path: "/var/lib", topN: 20 });
    const bad = [
      { case: "diskUsage", value: { path: "relative/path" } },
      { case: "diskUsage", value: { topN: 100_000 } },
      { case: "networkDiag", value: {} },
      { case: "networkDiag", value: { action: NetworkAction.PING, target: "-f; rm -rf /" } },
      { case: "networkDiag", value: { action: NetworkAction.CONNECT, target: "db:99999" } },
      { case: "networkDiag", value: { action: NetworkAction.CONNECT, target: "db" } },
      { case: "fetchLogs", value: { limit: 1_000_000 } },
      { case: "networkDiag", value: { action: NetworkAction.PING, target: "[127.0.0.1]" } },
      { case: "networkDiag", value: { action: NetworkAction.PING, target: "127.0.0.1", timeoutMs: 60_000 } },
      { case: "networkDiag", value: { action: NetworkAction.TRACEROUTE, target: "::1", maxHops: 500 } },
      { case: "networkDiag", value: { action: NetworkAction.PING, target: "$(reboot)" } },
      { case: "networkDiag", value: { action: NetworkAction.PING, target: "a\nb" } },
      { case: "networkDiag", value: { action: NetworkAction.PING, target: "`id`" } },
      { case: "diskUsage", value: { path: "/tmp\0/x" } },
      { case: "fetchLogs", value: { unit: "ssh\n--rotate" } },
      { case: "fetchLogs", value: { unit: "--rotate" } },
    ] as const;
    for (const p of bad) await expect(s.commands.enqueue("web-01", p as never, "test")).rejects.toBeInstanceOf(InvalidInputError);
    expect(await s.store.countPendingCommands("web-01")).toBe(2);
  });

  it("answers queue full after 10 queued commands", async () => {
    const s = setup();
    await s.register("web-01");
    for (let i = 0; i < 10; i++) await s.commands.enqueue("web-01", mounts, "test");
    await expect(s.commands.enqueue("web-01", mounts, "test")).rejects.toBeInstanceOf(QueueFullError);
  });

  it("wakes a waiting poller at once and gives each command to exactly one poller", async () => {
    const s = setup();
    await s.register("web-01");
    const a = s.commands.next("web-01", { timeoutMs: 5_000 });
    const b = s.commands.next("web-01", { timeoutMs: 300 });
    const queued = await s.commands.enqueue("web-01", mounts, "test");
    const got = await Promise.all([a, b]);
    const ids = got.filter((r) => r !== undefined).map((r) => r!.command.id);
    expect(ids).toEqual([queued.command.id]);
    expect((await s.commands.get(queued.command.id)).state).toBe(CommandState.DELIVERED);
  });

  it("returns undefined on timeout and on abort", async () => {
    const s = setup();
    await s.register("web-01");
    expect(await s.commands.next("web-01", { timeoutMs: 50 })).toBeUndefined();
    const ac = new AbortController();
    const p = s.commands.next("web-01", { signal: ac.signal });
    ac.abort();
    expect(await p).toBeUndefined();
  });

  it("completes a command for its own host only and lets watchers follow it to the end", async () => {
    const s = setup();
    await s.register("web-01");
    const q = await s.commands.enqueue("web-01", mounts, "test");
    const ac = new AbortController();
    const seen: CommandState[] = [];
    const watching = (async () => {
      for await (const rec of s.commands.watch(q.command.id, ac.signal)) seen.push(rec.state);
    })();
    await s.commands.next("web-01", { timeoutMs: 1_000 });
    const outcome = create(CommandOutcomeSchema, { commandId: q.command.id, type: CommandType.LIST_MOUNTS, error: "boom" });
    await expect(s.commands.complete("other", outcome)).rejects.toBeInstanceOf(NotFoundError);
    const done = await s.commands.complete("web-01", outcome);
    expect(done.state).toBe(CommandState.FAILED);
    await watching;
    expect(seen[0]).toBe(CommandState.QUEUED);
    expect(seen.at(-1)).toBe(CommandState.FAILED);
  });

  it("expires commands past their time to live", async () => {
    let now = 1_000_000;
    const s = setup({ ttlMs: 60_000, clock: () => now });
    await s.register("web-01");
    const q = await s.commands.enqueue("web-01", mounts, "test");
    now += 59_000;
    expect(await s.commands.expireOverdue()).toBe(0);
    now += 2_000;
    expect(await s.commands.expireOverdue()).toBe(1);
    expect((await s.commands.get(q.command.id)).state).toBe(CommandState.EXPIRED);
  });
});

describe("normalizePath", () => {
  it("resolves dots and keeps paths absolute", () => {
    expect(normalizePath("/")).toBe("/");
    expect(normalizePath("/a/./b/../c//")).toBe("/a/c");
    expect(normalizePath("/../..")).toBe("/");
    expect(normalizePath("c:\\Users\\..\\Windows")).toBe("C:\\Windows");
    expect(() => normalizePath("C:relative")).toThrow(InvalidInputError);
  });
});

describe("release", () => {
  it("puts a claimed command back and wakes the next poller", async () => {
    const s = setup();
    await s.register("web-01");
    const q = await s.commands.enqueue("web-01", mounts, "test");
    const first = await s.commands.next("web-01", { timeoutMs: 100 });
    expect(first?.command.id).toBe(q.command.id);
    const waiting = s.commands.next("web-01", { timeoutMs: 2_000 });
    await s.commands.release(first!);
    expect((await waiting)?.command.id).toBe(q.command.id);
  });
});

describe("changes made by another server process", () => {
  /** An in-memory SQLite store with a hand-driven subscribe, standing in for another process's NOTIFY. */
  function sharedStoreSetup() {
    const base = openSqliteStore(":memory:");
    const subs = new Map<StoreChannel, Set<(key: string | null) => void>>();
    const store = new Proxy(base, {
      get(target, prop) {
        if (prop === "subscribe") {
          return (channel: StoreChannel, cb: (key: string | null) => void) => {
            let set = subs.get(channel);
            if (!set) subs.set(channel, (set = new Set()));
            set.add(cb);
            return () => set.delete(cb);
          };
        }
        const v: unknown = Reflect.get(target, prop);
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as Store;
    const commands = createCommandQueue({
      store,
      logger: silentLogger(),
      clock: Date.now,
      options: { maxQueued: 10, ttlMs: 3_600_000, expireEveryMs: 60_000 },
    });
    cleanup.push(async () => {
      commands.stop();
      await base.close();
    });
    const notify = (channel: StoreChannel, key: string | null) => {
      for (const cb of [...(subs.get(channel) ?? [])]) cb(key);
    };
    /** Queues a command the way another process would: straight into the shared store, no local wake-up. */
    const enqueueElsewhere = async (id: string) => {
      const command = create(CommandSchema, { id, type: CommandType.LIST_MOUNTS, params: { case: "listMounts", value: {} } });
      await base.enqueueCommand({ command, hostname: "web-01", createdAtMs: Date.now(), requestedBy: "other" }, 10);
    };
    return { base, commands, notify, enqueueElsewhere, subs };
  }

  it("wakes a waiting poller when another process queues a command, and on a reconnect (key null)", async () => {
    const s = sharedStoreSetup();
    await s.base.upsertAgent(create(HostInfoSchema, { hostname: "web-01" }), [], 1);
    let got: string | undefined = "pending";
    const polling = s.commands.next("web-01", { timeoutMs: 5_000 }).then((r) => (got = r?.command.id));
    await s.enqueueElsewhere("x1");
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toBe("pending"); // nothing told this process yet
    s.notify("command_queued", "db-01"); // another host: no effect
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toBe("pending");
    const started = Date.now();
    s.notify("command_queued", "web-01");
    await polling;
    expect(got).toBe("x1");
    expect(Date.now() - started).toBeLessThan(1_000);

    const again = s.commands.next("web-01", { timeoutMs: 5_000 });
    await s.enqueueElsewhere("x2");
    s.notify("command_queued", null);
    expect((await again)?.command.id).toBe("x2");
  });

  it("wakes watchers when another process finishes a command, and unsubscribes on stop", async () => {
    const s = sharedStoreSetup();
    await s.base.upsertAgent(create(HostInfoSchema, { hostname: "web-01" }), [], 1);
    await s.enqueueElsewhere("w1");
    const ac = new AbortController();
    const seen: CommandState[] = [];
    const watching = (async () => {
      for await (const rec of s.commands.watch("w1", ac.signal)) seen.push(rec.state);
    })();
    await new Promise((r) => setTimeout(r, 20));
    await s.base.claimNextCommand("web-01", Date.now());
    s.notify("command_updated", "w1");
    await new Promise((r) => setTimeout(r, 20));
    await s.base.finishCommand("w1", "web-01", CommandState.COMPLETED, undefined, Date.now());
    s.notify("command_updated", "w1");
    await watching;
    expect(seen).toEqual([CommandState.QUEUED, CommandState.DELIVERED, CommandState.COMPLETED]);
    expect([...s.subs.values()].reduce((n, set) => n + set.size, 0)).toBe(2);
    s.commands.stop();
    expect([...s.subs.values()].reduce((n, set) => n + set.size, 0)).toBe(0);
  });
});
