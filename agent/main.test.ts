import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CommandSchema, CommandType } from "../gen/spectra/v1/diagnostics_pb.js";
import { CollectorHealth, CpuMetricsSchema, MemoryMetricsSchema } from "../gen/spectra/v1/metrics_pb.js";
import type { CollectorDefinition } from "./collectors/types.js";
import { ENV_VARS, FLAGS } from "./config.js";
import type { HostAccess } from "./host/host-access.js";
import { helpText, runCli, startDebugServer } from "./main.js";
import { createBackoff } from "./transport/backoff.js";
import { startRecordingAgentService } from "./testing/agent-service.js";

function sink() {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (c) => (text += String(c)));
  return { stream, text: () => text };
}

// Fake collectors: "cpu" needs two readings (rates), "memory" answers at once, "disk" is disabled in tests.
function fakeCollectors(): { collectorNames: string[]; loadCollector: (n: string) => Promise<CollectorDefinition> } {
  const defs: Record<string, CollectorDefinition> = {
    cpu: {
      name: "cpu",
      defaultIntervalMs: 200,
      platforms: ["linux", "windows"],
      create: () => {
        let first = true;
        return {
          collect: async () => {
            if (first) {
              first = false;
              return [];
            }
            return [{ case: "cpu", value: create(CpuMetricsSchema, { usage: 12.5, cores: [10, 15] }) }];
          },
        };
      },
    },
    memory: {
      name: "memory",
      defaultIntervalMs: 200,
      platforms: ["linux", "windows"],
      create: () => ({ collect: async () => [{ case: "memory", value: create(MemoryMetricsSchema, { ramTotal: 1024n }) }] }),
    },
    disk: {
      name: "disk",
      defaultIntervalMs: 200,
      platforms: ["linux"],
      create: () => {
        throw new Error("must not be created while disabled");
      },
    },
  };
  return {
    collectorNames: Object.keys(defs),
    loadCollector: async (n) => {
      const d = defs[n];
      if (!d) throw new Error(`no ${n}`);
      return d;
    },
  };
}

const procRoot = fileURLToPath(new URL("diagnostics/list-mounts/testdata/proc", import.meta.url));
const testHost: HostAccess = {
  platform: "linux",
  paths: { procRoot, sysRoot: "/nonexistent", rootfs: "/nonexistent" },
  exec: { run: () => Promise.reject(new Error("no exec in tests")) },
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "spectra-main-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("--help", () => {
  it("lists every flag and environment variable and exits 0", async () => {
    const out = sink();
    const code = await runCli(["--help"], { stdout: out.stream, env: {} });
    expect(code).toBe(0);
    for (const flag of Object.keys(FLAGS)) expect(out.text()).toContain(`--${flag}`);
    for (const [name] of ENV_VARS) expect(out.text()).toContain(name);
    for (const name of ["cpu", "memory", "disk", "disk_io", "network", "system"]) expect(out.text()).toContain(name);
    expect(helpText(["x"])).toContain("Collectors: x");
  });
});

describe("bad settings", () => {
  const cases: [string[], Record<string, string>, string][] = [
    [["--server", "ftp://x"], {}, '--server: "ftp://x" must start with http:// or https://'],
    [[], { SPECTRA_SERVER: "nope" }, 'SPECTRA_SERVER: "nope" is not a URL'],
    [["--collectors", "cpu,bogus"], {}, '--collectors: unknown collector "bogus"'],
    [["--frobnicate"], {}, "--frobnicate: unknown flag"],
  ];
  it.each(cases)("%j exits 2 with one line naming the setting", async (argv, env, message) => {
    const err = sink();
    const out = sink();
    const code = await runCli(argv, { stdout: out.stream, stderr: err.stream, env });
    expect(code).toBe(2);
    expect(err.text()).toContain(`spectra-agent: ${message}`);
    expect(err.text().trim().split("\n")).toHaveLength(1);
    expect(err.text()).not.toContain("    at ");
    expect(out.text()).toBe("");
  });

  it("names a bad setting inside the config file", async () => {
    const file = join(dir, "agent.yaml");
    writeFileSync(file, "collectors:\n  cpu:\n    interval: 5x\n");
    const err = sink();
    expect(await runCli(["--config", file], { stderr: err.stream, env: {} })).toBe(2);
    expect(err.text()).toBe(`spectra-agent: collectors.cpu.interval: "5x" is not a duration (use e.g. 500ms, 5s, 1m, 1h, 7d or milliseconds)\n`);
  });
});

describe("--once", () => {
  it("prints the envelopes of every enabled collector as JSON, taking rates from two readings", async () => {
    const out = sink();
    const err = sink();
    const file = join(dir, "agent.yaml");
    writeFileSync(file, "collectors:\n  disk: { enabled: false }\n");
    const code = await runCli(["--once", "--config", file, "--hostname", "web-01"], {
      stdout: out.stream,
      stderr: err.stream,
      env: {},
      deps: { ...fakeCollectors(), host: testHost },
    });
    expect(code).toBe(0);
    const json = JSON.parse(out.text()) as { type: string; hostname: string; timestamp: string; cpu?: unknown; memory?: unknown }[];
    expect(json.map((e) => e.type)).toEqual(["cpu", "memory"]);
    expect(json[0]).toMatchObject({ type: "cpu", hostname: "web-01", cpu: { usage: 12.5, cores: [10, 15] } });
    expect(json[1]).toMatchObject({ memory: { ram_total: "1024" } });
    expect(json[0]?.timestamp).toMatch(/^\d{4}-\d\d-\d\dT/);
  });
});

/** A real AgentService on port 0 that records everything; with `commands`, CommandPoll hands out one list_mounts. */
function startServer(opts: { commands?: boolean } = {}) {
  let delivered = false;
  return startRecordingAgentService({
    async *commandPoll(_req, ctx) {
      if (opts.commands && !delivered) {
        delivered = true;
        yield { command: create(CommandSchema, { id: "cmd-1", type: CommandType.LIST_MOUNTS, params: { case: "listMounts", value: {} } }) };
      }
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  });
}

async function until(cond: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const fastTuning = {
  flushIntervalMs: 100,
  windowMs: 300,
  maxJitterMs: 10,
  backoff: () => createBackoff({ initialMs: 20, maxMs: 200, minMs: 5 }),
};

describe("the agent, in process, against a real server", () => {
  it("registers, sends batches with collector statuses, answers list_mounts and stops cleanly", async () => {
    const server = await startServer({ commands: true });
    const shutdown = new AbortController();
    const err = sink();
    try {
      const run = runCli(["--server", server.url, "--data-dir", dir, "--hostname", "e2e-host", "--log-level", "info"], {
        stderr: err.stream,
        env: { SPECTRA_COLLECTORS: "cpu,memory" },
        shutdown: shutdown.signal,
        deps: { ...fakeCollectors(), host: testHost, tuning: fastTuning },
      });
      await until(() => server.hosts.length > 0, 10_000, "registration");
      expect(server.hosts[0]).toMatchObject({ hostname: "e2e-host", os: "linux" });
      await until(() => server.batches.some((b) => b.envelopes.some((e) => e.type === "cpu")), 10_000, "cpu batch");
      await until(() => server.outcomes.length > 0, 10_000, "list_mounts result");
      shutdown.abort();
      expect(await run).toBe(0);

      const batch = server.batches.find((b) => b.envelopes.length > 0)!;
      expect(batch.hostname).toBe("e2e-host");
      expect(batch.sessionId).not.toBe("");
      // Statuses travel only with batches where one changed (or every statusRefreshMs): the first batch carries
      // them, most later ones do not.
      expect(server.batches[0]!.collectorStatus.length).toBeGreaterThan(0);
      expect(server.batches.some((b) => b.collectorStatus.length === 0)).toBe(true);
      const lastStatuses = server.batches.findLast((b) => b.collectorStatus.length > 0)!.collectorStatus;
      const statuses = Object.fromEntries(lastStatuses.map((s) => [s.name, s.health]));
      expect(statuses["memory"]).toBe(CollectorHealth.OK);
      expect(statuses["disk"]).toBe(CollectorHealth.DISABLED);
      const seqs = server.batches.map((b) => Number(b.sequence));
      expect(new Set(seqs).size).toBe(seqs.length);
      const outcome = server.outcomes[0]!;
      expect(outcome.commandId).toBe("cmd-1");
      expect(outcome.result.case === "listMounts" && outcome.result.value.mounts.length).toBe(26);
      expect(err.text()).toContain('"msg":"agent stopped"');
      // The batch flushed at shutdown went out in the last window: nothing is left in the spool.
      const { openSpool } = await import("./transport/spool.js");
      const spool = openSpool({ dir, maxBytes: 1 << 20, maxAgeMs: 60_000, logger: pino({ level: "silent" }) });
      expect(spool.hasPending()).toBe(false);
      await spool.close();
      expect(err.text()).not.toContain("    at ");
    } finally {
      shutdown.abort();
      await server.close();
    }
  });

  it("logs an unreachable server clearly, keeps collecting into the spool and exits 0 on shutdown", async () => {
    const shutdown = new AbortController();
    const err = sink();
    const run = runCli(["--server", "http://127.0.0.1:1", "--data-dir", dir], {
      stderr: err.stream,
      env: { SPECTRA_COLLECTORS: "memory" },
      shutdown: shutdown.signal,
      deps: { ...fakeCollectors(), host: testHost, tuning: fastTuning },
    });
    await until(() => /server http:\/\/127\.0\.0\.1:1 unreachable: ECONNREFUSED; retrying in/.test(err.text()), 10_000, "log line");
    shutdown.abort();
    expect(await run).toBe(0);
    expect(err.text()).not.toContain("    at ");
  });

  it("exits 1 with a clear message when the data directory is taken by another agent", async () => {
    const { openSpool } = await import("./transport/spool.js");
    const held = openSpool({ dir, maxBytes: 1 << 20, maxAgeMs: 60_000, logger: pino({ level: "silent" }) });
    try {
      const err = sink();
      const code = await runCli(["--data-dir", dir, "--server", "http://127.0.0.1:1"], {
        stderr: err.stream,
        env: {},
        deps: { ...fakeCollectors(), host: testHost, tuning: fastTuning },
      });
      expect(code).toBe(1);
      expect(err.text()).toContain("another agent");
      expect(err.text()).not.toContain("    at ");
    } finally {
      await held.close();
    }
  });
});

describe("debug endpoint", () => {
  it("serves vars, a CPU profile and a heap snapshot on 127.0.0.1", async () => {
    const debug = await startDebugServer({ port: 0, logger: pino({ level: "silent" }), vars: () => ({ sequence: 5n }) });
    try {
      expect(debug.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const vars = (await (await fetch(`${debug.url}/debug/vars`)).json()) as Record<string, unknown>;
      expect(vars).toHaveProperty("memoryUsage.rss");
      expect(vars).toHaveProperty("resourceUsage.userCPUTime");
      expect(vars).toHaveProperty("eventLoopDelayMs.p99");
      expect(vars["agent"]).toEqual({ sequence: "5" });

      const profileRes = await fetch(`${debug.url}/debug/profile?seconds=0.2`);
      expect(profileRes.status).toBe(200);
      expect(profileRes.headers.get("content-disposition")).toMatch(/\.cpuprofile"$/);
      const profile = (await profileRes.json()) as { nodes: unknown[]; startTime: number };
      expect(profile.nodes.length).toBeGreaterThan(0);

      expect((await fetch(`${debug.url}/debug/profile?seconds=abc`)).status).toBe(400);
      expect((await fetch(`${debug.url}/nope`)).status).toBe(404);

      const heapRes = await fetch(`${debug.url}/debug/heap`);
      expect(heapRes.headers.get("content-disposition")).toMatch(/\.heapsnapshot"$/);
      const text = await heapRes.text();
      expect(text.startsWith('{"snapshot":')).toBe(true);
    } finally {
      await debug.close();
    }
  });
});
