import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/spectra/v1/agent_service_pb.js";
import {
  CommandSchema,
  CommandType,
  ListMountsParamsSchema,
  ListMountsResultSchema,
  MountInfoSchema,
  type Command,
  type CommandOutcome,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import type { HostAccess } from "../host/host-access.js";
import { diagnosticRegistry, type DiagnosticRegistry } from "../diagnostics/registry.js";
import { createBackoff } from "../transport/backoff.js";
import { createAgentConnection } from "../transport/client.js";
import { createCommandLoop } from "./command-loop.js";
import { serveAgentService } from "../testing/agent-service.js";

const procRoot = fileURLToPath(new URL("../diagnostics/list-mounts/testdata/proc", import.meta.url));
const host: HostAccess = {
  platform: "linux",
  paths: { procRoot, sysRoot: "/nonexistent", rootfs: "" },
  exec: { run: () => Promise.reject(new Error("no commands in this test")) },
};

/** An in-test server: `push` queues a command for the open CommandPoll stream; `endStream` ends it. */
async function startServer() {
  const outcomes: CommandOutcome[] = [];
  const queue: Command[] = [];
  let wake: (() => void) | undefined;
  let polls = 0;
  let endCurrent = false;
  const impl: Partial<ServiceImpl<typeof AgentService>> = {
    async *commandPoll(req, ctx) {
      polls++;
      expect(req.hostname).toBe("web-01");
      endCurrent = false;
      while (!ctx.signal.aborted && !endCurrent) {
        const next = queue.shift();
        if (next) {
          yield { command: next };
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          ctx.signal.addEventListener("abort", () => resolve(), { once: true });
        });
      }
    },
    async commandResult(req) {
      if (req.outcome) outcomes.push(req.outcome);
      return {};
    },
  };
  const served = await serveAgentService(impl);
  const url = served.url;
  return {
    url,
    outcomes,
    get polls() {
      return polls;
    },
    push(...commands: Command[]) {
      queue.push(...commands);
      wake?.();
    },
    endStream() {
      endCurrent = true;
      wake?.();
    },
    close: served.close,
  };
}

async function until(cond: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: { registry?: DiagnosticRegistry; commandTimeoutMs?: number } = {}) {
  const server = await startServer();
  cleanups.push(() => server.close());
  const logger = pino({ level: "silent" });
  const connection = createAgentConnection({ baseUrl: server.url, logger });
  cleanups.push(() => connection.close());
  const loop = createCommandLoop({
    connection,
    hostname: "web-01",
    host,
    logger,
    backoff: createBackoff({ initialMs: 20, maxMs: 100, minMs: 5 }),
    ...(opts.registry ? { registry: opts.registry } : {}),
    ...(opts.commandTimeoutMs ? { commandTimeoutMs: opts.commandTimeoutMs } : {}),
  });
  cleanups.push(() => loop.stop());
  loop.start();
  return { server, loop };
}

const listMounts = (id: string) =>
  create(CommandSchema, { id, type: CommandType.LIST_MOUNTS, params: { case: "listMounts", value: create(ListMountsParamsSchema) } });

describe("command loop", () => {
  it("runs a list_mounts command pushed by the server and sends the result back", async () => {
    const { server } = await setup();
    server.push(listMounts("c-1"));
    await until(() => server.outcomes.length === 1, 10_000, "result");
    const outcome = server.outcomes[0]!;
    expect(outcome.commandId).toBe("c-1");
    expect(outcome.type).toBe(CommandType.LIST_MOUNTS);
    expect(outcome.error).toBe("");
    expect(outcome.result.case).toBe("listMounts");
    const mounts = outcome.result.case === "listMounts" ? outcome.result.value.mounts : [];
    expect(mounts.length).toBe(26);
    expect(mounts.find((m) => m.mountpoint === "/")).toMatchObject({ device: "/dev/vda", fstype: "ext4" });
  });

  it("answers unknown and not yet supported commands with an error", async () => {
    // An agent built without disk usage (the registry slot left empty) must answer, not stay silent.
    const { server } = await setup({ registry: { ...diagnosticRegistry, diskUsage: undefined } });
    server.push(
      create(CommandSchema, { id: "c-restart", type: CommandType.RESTART_AGENT }),
      create(CommandSchema, { id: "c-disk", type: CommandType.DISK_USAGE, params: { case: "diskUsage", value: { path: "/" } } }),
      create(CommandSchema, { id: "c-none" }),
      // A legacy-queued command may carry only its type.
      create(CommandSchema, { id: "c-legacy", type: CommandType.LIST_MOUNTS }),
    );
    await until(() => server.outcomes.length === 4, 10_000, "results");
    const byId = Object.fromEntries(server.outcomes.map((o) => [o.commandId, o]));
    expect(byId["c-restart"]?.error).toBe("command type RESTART_AGENT is not supported by this agent");
    expect(byId["c-disk"]?.error).toBe("diskUsage is not supported by this agent yet");
    expect(byId["c-none"]?.error).toContain("not supported");
    expect(byId["c-legacy"]?.error).toBe("");
    expect(byId["c-legacy"]?.result.case).toBe("listMounts");
  });

  it("reconnects when the stream ends and ignores a redelivered command", async () => {
    const { server, loop } = await setup();
    server.push(listMounts("c-1"));
    await until(() => server.outcomes.length === 1, 10_000, "first result");
    server.endStream();
    await until(() => server.polls >= 2, 10_000, "reconnect");
    server.push(listMounts("c-1"), listMounts("c-2"));
    await until(() => server.outcomes.length === 2, 10_000, "second result");
    await new Promise((r) => setTimeout(r, 100));
    expect(server.outcomes.map((o) => o.commandId)).toEqual(["c-1", "c-2"]);
    expect(loop.stats().connects).toBeGreaterThanOrEqual(2);
  });

  it("runs at most two commands at once and times out a hung one", async () => {
    let running = 0;
    let maxRunning = 0;
    const registry: DiagnosticRegistry = {
      ...diagnosticRegistry,
      listMounts: async () => ({
        name: "listMounts",
        platforms: ["linux"],
        async run(_p, ctx) {
          running++;
          maxRunning = Math.max(maxRunning, running);
          try {
            await new Promise((r) => setTimeout(r, 100));
            return create(ListMountsResultSchema, { mounts: [create(MountInfoSchema, { mountpoint: "/" })] });
          } finally {
            running--;
            void ctx;
          }
        },
      }),
      diskUsage: async () => ({
        name: "diskUsage",
        platforms: ["linux"],
        run: () => new Promise(() => {}),
      }),
    };
    const { server } = await setup({ registry, commandTimeoutMs: 300 });
    server.push(create(CommandSchema, { id: "hung", type: CommandType.DISK_USAGE, params: { case: "diskUsage", value: {} } }));
    for (let i = 0; i < 5; i++) server.push(listMounts(`m-${i}`));
    await until(() => server.outcomes.length === 6, 10_000, "all results");
    expect(maxRunning).toBeLessThanOrEqual(2);
    const hung = server.outcomes.find((o) => o.commandId === "hung");
    expect(hung?.error).toBe("timed out after 300 ms");
    expect(server.outcomes.filter((o) => o.error === "")).toHaveLength(5);
  });

  it("keeps retrying while the server is away and stops promptly", async () => {
    const logger = pino({ level: "silent" });
    const connection = createAgentConnection({ baseUrl: "http://127.0.0.1:1", logger });
    const loop = createCommandLoop({ connection, hostname: "h", host, logger, backoff: createBackoff({ initialMs: 10, maxMs: 20, minMs: 5 }) });
    loop.start();
    await until(() => loop.stats().connects >= 3, 5_000, "retries");
    const t0 = Date.now();
    await loop.stop();
    connection.close();
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});
