// Every registered collector in a real agent process against a real server: each one's envelopes are stored, or
// the agent reports that its source is absent on this host (NO_DATA) — never silence, never an unexplained error.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { collectorNames } from "../agent/collectors/registry.js";
import { AdminService } from "../gen/spectra/v1/admin_service_pb.js";
import { CollectorHealth } from "../gen/spectra/v1/metrics_pb.js";
import { startTestApp } from "../server/testing/app.js";
import { bearer, writeAgentKeyFile } from "../server/testing/credentials.js";

const AGENT = join(import.meta.dirname, "..", "dist", "agent", "main.js");
const HOST = "e2e-all";

/** The envelope types each collector sends. */
const TYPES: Record<string, string[]> = {
  cpu: ["cpu"],
  memory: ["memory"],
  disk: ["disk"],
  disk_io: ["disk_io"],
  network: ["network"],
  system: ["system"],
  processes: ["process_list"],
  services: ["service_list"],
  temperature: ["temperature"],
  wifi: ["wifi"],
  containers: ["container_list"],
  applications: ["application_list"],
  raspberrypi: ["throttle", "clock", "voltage", "gpu"],
  update_status: ["update_status"],
};
// Slow or heavy sources keep their default interval: they run once at start.
const KEEP_DEFAULT = new Set(["applications", "update_status", "containers"]);

const work = mkdtempSync(join(tmpdir(), "spectra-all-"));
let agent: ChildProcess | undefined;
let app: Awaited<ReturnType<typeof startTestApp>> | undefined;
afterAll(async () => {
  agent?.kill("SIGKILL");
  await app?.close(500);
  app?.removeDataDir();
  rmSync(work, { recursive: true, force: true });
});

describe("every collector end to end", () => {
  it("knows the envelope types of every registered collector", () => {
    expect([...collectorNames].sort()).toEqual(Object.keys(TYPES).sort());
  });

  it("stores each collector's envelopes or reports its source absent", async () => {
    app = await startTestApp();
    const config = join(work, "agent.yaml");
    const lines = collectorNames.map((c) =>
      KEEP_DEFAULT.has(c) ? `  ${c}: { enabled: true, timeout: 60s }` : `  ${c}: { enabled: true, interval: 2s }`,
    );
    writeFileSync(config, `collectors:\n${lines.join("\n")}\n`);
    writeAgentKeyFile(join(work, "agent"), await app.agentKey(HOST));
    agent = spawn(
      process.execPath,
      [AGENT, "--server", app.baseUrl, "--hostname", HOST, "--data-dir", join(work, "agent"), "--config", config],
      { stdio: "ignore", env: { PATH: process.env["PATH"] ?? "" } },
    );
    const admin = createClient(AdminService, createConnectTransport({ baseUrl: app.baseUrl, httpVersion: "2", interceptors: [bearer(app.adminToken)] }));
    const pending = new Set<string>(collectorNames);
    const verdict = new Map<string, string>();
    const deadline = Date.now() + 60_000;
    while (pending.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1_000));
      const stored = new Set((await app.services.tsdb.latest(HOST)).map((l) => l.type));
      const me = (await admin.listAgents({})).agents.find((a) => a.host?.hostname === HOST);
      for (const name of [...pending]) {
        const status = me?.collectorStatus.find((s) => s.name === name);
        if (TYPES[name]!.some((t) => stored.has(t))) verdict.set(name, "stored");
        else if (status?.health === CollectorHealth.NO_DATA) verdict.set(name, "no data on this host");
        else continue;
        pending.delete(name);
      }
    }
    const me = (await admin.listAgents({})).agents.find((a) => a.host?.hostname === HOST);
    const errors = Object.fromEntries(
      (me?.collectorStatus ?? []).filter((s) => pending.has(s.name)).map((s) => [s.name, `${CollectorHealth[s.health]}: ${s.error}`]),
    );
    expect(errors, "collectors with neither data nor a NO_DATA status").toEqual({});
    expect([...pending]).toEqual([]);
    for (const core of ["cpu", "memory", "disk", "disk_io", "network", "system", "processes", "applications"]) {
      expect(verdict.get(core), core).toBe("stored");
    }
    console.log(Object.fromEntries(verdict));
  }, 90_000);
});
