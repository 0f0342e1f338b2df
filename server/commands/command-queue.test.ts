import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import {
  CommandOutcomeSchema,
  CommandState,
  CommandType,
  ListMountsParamsSchema,
  LogLevel,
  NetworkAction,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import { AgentNotRegisteredError, InvalidInputError, NotFoundError, QueueFullError } from "../errors.js";
import { testServices } from "../testing/services.js";
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
