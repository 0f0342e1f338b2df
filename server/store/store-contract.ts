import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import {
  CommandOutcomeSchema,
  CommandSchema,
  CommandState,
  CommandType,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import {
  CollectorHealth,
  CollectorStatusSchema,
  MetricEnvelopeSchema,
  type MetricEnvelope,
} from "../../gen/spectra/v1/metrics_pb.js";
import { QueueFullError } from "../errors.js";
import type { BatchWrite, Store } from "./store.js";

/** How the contract suite gets a backend: a fresh empty store, and the same store reopened (persistence). */
export interface StoreFactory {
  open(): Promise<Store>;
  /** Opens the same database again after close(); omit for backends without persistence. */
  reopen?(): Promise<Store>;
}

function cpu(ms: number, usage: number): MetricEnvelope {
  return create(MetricEnvelopeSchema, {
    type: "cpu",
    hostname: "web-01",
    timestamp: timestampFromMs(ms),
    payload: { case: "cpu", value: { usage, cores: [usage], load1m: 0.5 } },
  });
}

function disk(ms: number, mount: string, used: bigint): MetricEnvelope {
  return create(MetricEnvelopeSchema, {
    type: "disk",
    hostname: "web-01",
    timestamp: timestampFromMs(ms),
    payload: { case: "disk", value: { mountpoint: mount, diskUsed: used, diskTotal: 1000n } },
  });
}

function batch(seq: bigint, envelopes: MetricEnvelope[], sessionId = "s1"): BatchWrite {
  return { hostname: "web-01", sessionId, sequence: seq, envelopes, collectorStatus: [], receivedAtMs: 1_000 };
}

const host = create(HostInfoSchema, { hostname: "web-01", os: "linux", arch: "amd64", ramTotal: 16n << 30n });

function command(id: string) {
  return create(CommandSchema, {
    id,
    type: CommandType.LIST_MOUNTS,
    params: { case: "listMounts", value: {} },
    createdAt: timestampFromMs(1_000),
  });
}

/** The behaviour every Store backend must have. */
export function describeStoreContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    it("stores a batch and reads envelopes back in time order", async () => {
      const store = await factory.open();
      const r = await store.writeBatch(batch(1n, [cpu(2_000, 10), cpu(1_000, 5)]));
      expect(r).toEqual({ duplicate: false, stored: 2 });
      const rows = await store.listEnvelopes({ hostname: "web-01", limit: 10 });
      expect(rows.map((e) => e.timestampMs)).toEqual([1_000, 2_000]);
      expect(rows[0]!.envelope.payload).toMatchObject({ case: "cpu", value: { usage: 5 } });
      expect(await store.countEnvelopes("web-01")).toBe(2);
      expect(await store.countEnvelopes("other")).toBe(0);
      await store.close();
    });

    it("stores a replayed (hostname, session, sequence) once", async () => {
      const store = await factory.open();
      await store.writeBatch(batch(7n, [cpu(1_000, 1)]));
      const again = await store.writeBatch(batch(7n, [cpu(1_000, 1)]));
      expect(again).toEqual({ duplicate: true, stored: 0 });
      // Another session with the same sequence number is a different batch.
      expect((await store.writeBatch(batch(7n, [cpu(1_500, 1)], "s2"))).duplicate).toBe(false);
      // Batches without a session (legacy REST) are never de-duplicated.
      await store.writeBatch(batch(0n, [cpu(3_000, 1)], ""));
      await store.writeBatch(batch(0n, [cpu(3_000, 1)], ""));
      expect(await store.countEnvelopes()).toBe(4);
      await store.close();
    });

    it("keeps the latest envelope per type and key, never replaced by older data", async () => {
      const store = await factory.open();
      await store.writeBatch(batch(1n, [disk(2_000, "/", 20n), disk(2_000, "/home", 30n), cpu(2_000, 50)]));
      await store.writeBatch(batch(2n, [disk(1_000, "/", 10n)])); // late replay
      await store.writeBatch(batch(3n, [cpu(3_000, 60)]));
      const latest = await store.latest("web-01");
      expect(latest.map((l) => [l.type, l.key, l.timestampMs])).toEqual([
        ["cpu", "", 3_000],
        ["disk", "/", 2_000],
        ["disk", "/home", 2_000],
      ]);
      await store.close();
    });

    it("writes concurrent batches and resolves each", async () => {
      const store = await factory.open();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.writeBatch(batch(BigInt(i + 1), [cpu(i, i)]))),
      );
      expect(results.every((r) => !r.duplicate && r.stored === 1)).toBe(true);
      expect(await store.countEnvelopes()).toBe(50);
      await store.close();
    });

    it("registers agents, keeps registration time, records contact and collector status", async () => {
      const store = await factory.open();
      await store.upsertAgent(host, ["cpu"], 1_000);
      await store.upsertAgent(create(HostInfoSchema, { ...host, agentVersion: "0.2.0" }), ["cpu", "memory"], 2_000);
      const status = create(CollectorStatusSchema, { name: "cpu", health: CollectorHealth.OK, intervalMs: 5000 });
      await store.touchAgent("web-01", 3_000, [status]);
      await store.touchAgent("unknown", 3_000);
      const a = await store.getAgent("web-01");
      expect(a).toMatchObject({ registeredAtMs: 1_000, lastSeenMs: 3_000, collectors: ["cpu", "memory"] });
      expect(a!.host.agentVersion).toBe("0.2.0");
      expect(a!.host.ramTotal).toBe(16n << 30n);
      expect(a!.collectorStatus[0]).toMatchObject({ name: "cpu", health: CollectorHealth.OK });
      expect(await store.getAgent("unknown")).toBeUndefined();
      expect((await store.listAgents()).map((x) => x.host.hostname)).toEqual(["web-01"]);
      await store.close();
    });

    it("queues commands in order, caps the queue, delivers each once", async () => {
      const store = await factory.open();
      for (let i = 0; i < 3; i++) await store.enqueueCommand({ command: command(`c${i}`), hostname: "web-01", createdAtMs: 1_000 + i, requestedBy: "test" }, 3);
      await expect(
        store.enqueueCommand({ command: command("c3"), hostname: "web-01", createdAtMs: 2_000, requestedBy: "test" }, 3),
      ).rejects.toBeInstanceOf(QueueFullError);
      const first = await store.claimNextCommand("web-01", 5_000);
      expect(first).toMatchObject({ state: CommandState.DELIVERED, deliveredAtMs: 5_000 });
      expect(first!.command.id).toBe("c0");
      // Delivered commands leave the queue: there is room again.
      await store.enqueueCommand({ command: command("c3"), hostname: "web-01", createdAtMs: 2_000, requestedBy: "test" }, 3);
      const claims = await Promise.all([1, 2, 3, 4].map(() => store.claimNextCommand("web-01", 6_000)));
      expect(claims.map((c) => c?.command.id)).toEqual(["c1", "c2", "c3", undefined]);
      expect(await store.countPendingCommands("web-01")).toBe(4);
      const audit = await store.listCommands({ hostname: "web-01", limit: 2 });
      expect(audit.map((c) => [c.command.id, c.requestedBy])).toEqual([["c3", "test"], ["c2", "test"]]);
      expect(await store.listCommands({ hostname: "nobody", limit: 10 })).toEqual([]);
      expect((await store.listCommands({ limit: 10 })).length).toBe(4);
      // A command whose poller vanished goes back in front of newer ones.
      expect(await store.requeueCommand("c2", "other-host")).toBe(false);
      expect(await store.requeueCommand("c2", "web-01")).toBe(true);
      expect(await store.requeueCommand("c2", "web-01")).toBe(false);
      await store.enqueueCommand({ command: command("c4"), hostname: "web-01", createdAtMs: 9_000, requestedBy: "test" }, 3);
      const again = await store.claimNextCommand("web-01", 7_000);
      expect(again).toMatchObject({ state: CommandState.DELIVERED, deliveredAtMs: 7_000 });
      expect(again!.command.id).toBe("c2");
      await store.close();
    });

    it("finishes a command once, only for its own host, and expires overdue ones", async () => {
      const store = await factory.open();
      await store.enqueueCommand({ command: command("a"), hostname: "web-01", createdAtMs: 1_000, requestedBy: "test" }, 10);
      await store.enqueueCommand({ command: command("b"), hostname: "web-01", createdAtMs: 9_000, requestedBy: "test" }, 10);
      await store.claimNextCommand("web-01", 1_500);
      const outcome = create(CommandOutcomeSchema, {
        commandId: "a",
        type: CommandType.LIST_MOUNTS,
        result: { case: "listMounts", value: { mounts: [{ mountpoint: "/", device: "/dev/vda1", fstype: "ext4" }] } },
      });
      expect(await store.finishCommand("a", "intruder", CommandState.COMPLETED, outcome, 2_000)).toBeUndefined();
      const done = await store.finishCommand("a", "web-01", CommandState.COMPLETED, outcome, 2_000);
      expect(done).toMatchObject({ state: CommandState.COMPLETED, finishedAtMs: 2_000 });
      const retry = await store.finishCommand("a", "web-01", CommandState.FAILED, undefined, 3_000);
      expect(retry).toMatchObject({ state: CommandState.COMPLETED, finishedAtMs: 2_000 });
      expect(await store.expireCommands(5_000, 10_000)).toEqual([]);
      expect(await store.expireCommands(10_000, 10_000)).toEqual(["b"]);
      const b = await store.getCommand("b");
      expect(b).toMatchObject({ state: CommandState.EXPIRED, finishedAtMs: 10_000 });
      const a = await store.getCommand("a");
      expect(a!.outcome!.result).toMatchObject({ case: "listMounts" });
      expect(await store.getCommand("nope")).toBeUndefined();
      await store.close();
    });

    if (factory.reopen) {
      const reopen = factory.reopen;
      it("keeps metrics, agents, commands and replay keys across a restart", async () => {
        const store = await factory.open();
        await store.upsertAgent(host, [], 1_000);
        await store.writeBatch(batch(1n, [cpu(1_000, 1)]));
        await store.enqueueCommand({ command: command("x"), hostname: "web-01", createdAtMs: 1_000, requestedBy: "test" }, 10);
        await store.close();
        const again = await reopen();
        expect(await again.countEnvelopes()).toBe(1);
        expect((await again.writeBatch(batch(1n, [cpu(1_000, 1)]))).duplicate).toBe(true);
        expect(await again.getAgent("web-01")).toBeDefined();
        expect((await again.claimNextCommand("web-01", 2_000))?.command.id).toBe("x");
        await again.close();
      });
    }
  });
}
