// The bundled agent (dist/agent/spectra-agent.cjs, the package's `spectra-agent` bin, built by `npm run build`) as a
// real process against a real AgentService on 127.0.0.1: it starts, registers, streams batches through connect
// with the bundle's own Headers class (agent/transport/light-headers.ts), answers --help and stops cleanly.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CollectorHealth } from "../gen/spectra/v1/metrics_pb.js";
import { startRecordingAgentService } from "./testing/agent-service.js";

const root = join(import.meta.dirname, "..");
const BUNDLE = join(root, "dist", "agent", "spectra-agent.cjs");


async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let dir: string;
beforeEach(() => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\``);
  dir = mkdtempSync(join(tmpdir(), "spectra-bundle-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("the bundled agent (dist/agent/spectra-agent.cjs)", () => {
  it("is the package's spectra-agent bin and is plain ASCII", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin: Record<string, string> };
    expect(join(root, pkg.bin["spectra-agent"]!)).toBe(BUNDLE);
    // A non-ASCII character would make V8 hold the whole source as a two-byte string (scripts/build-agent.mjs).
    expect(readFileSync(BUNDLE).every((b) => b < 0x80)).toBe(true);
  });

  it("prints --help and exits 0", () => {
    const r = spawnSync(process.execPath, [BUNDLE, "--help"], { encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("Usage: spectra-agent");
  });

  it("loads the code outside the core set from its second file (spectra-agent-lazy.cjs) when it is needed", () => {
    const lazy = join(root, "dist", "agent", "spectra-agent-lazy.cjs");
    expect(readFileSync(lazy).every((b) => b < 0x80)).toBe(true);
    const once = (file: string): { status: number | null; types: string[]; stderr: string } => {
      const r = spawnSync(process.execPath, [file, "--once", "--collectors", "cpu,processes,temperature", "--data-dir", join(dir, "once")], {
        encoding: "utf8",
        timeout: 30_000,
      });
      return { status: r.status, types: (JSON.parse(r.stdout || "[]") as { type: string }[]).map((e) => e.type), stderr: r.stderr };
    };
    const both = once(BUNDLE);
    expect(both.status).toBe(0);
    expect(both.types).toEqual(expect.arrayContaining(["cpu", "process_list"]));
    expect(both.stderr).not.toContain("could not be loaded");
    // The main file alone runs the core set; processes and temperature (not in it) need the second file.
    const alone = join(dir, "alone", "spectra-agent.cjs");
    mkdirSync(join(dir, "alone"));
    copyFileSync(BUNDLE, alone);
    const mainOnly = once(alone);
    expect(mainOnly.types).toContain("cpu");
    expect(mainOnly.types).not.toContain("process_list");
    expect(mainOnly.stderr).toContain('"collector":"processes"');
    expect(mainOnly.stderr).toContain("could not be loaded");
  });

  it("registers, streams batches with statuses and stops cleanly on SIGTERM", async () => {
    const server = await startRecordingAgentService();
    const config = join(dir, "agent.yaml");
    writeFileSync(config, "collectors:\n  cpu: { interval: 500ms }\n  memory: { interval: 500ms }\n");
    let stderr = "";
    const agent = spawn(
      process.execPath,
      [BUNDLE, "--server", server.url, "--hostname", "bundle-e2e", "--data-dir", join(dir, "agent"), "--config", config, "--collectors", "cpu,memory", "--log-level", "info"],
      { stdio: ["ignore", "ignore", "pipe"], env: { PATH: process.env["PATH"] ?? "" } },
    );
    agent.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => agent.on("exit", (code) => resolve(code)));
    try {
      await until(() => server.hosts.length > 0, 20_000, "registration");
      expect(server.hosts[0]).toMatchObject({ hostname: "bundle-e2e", os: "linux" });
      // The version is found from the bundle's location (package.json two levels up).
      expect(server.hosts[0]!.agentVersion).toBe(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version);
      expect(server.headers[0]?.["content-type"]).toBe("application/proto");
      await until(() => server.batches.some((b) => b.envelopes.some((e) => e.type === "cpu")), 30_000, "a cpu batch");
      const first = server.batches[0]!;
      expect(first.hostname).toBe("bundle-e2e");
      const health = Object.fromEntries(first.collectorStatus.map((s) => [s.name, s.health]));
      expect(health["memory"]).toBe(CollectorHealth.OK);
      expect(health["disk"]).toBe(CollectorHealth.DISABLED);
      agent.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(stderr).toContain('"msg":"agent stopped"');
      expect(stderr).not.toContain("    at ");
    } finally {
      if (agent.exitCode === null) agent.kill("SIGKILL");
      await server.close();
    }
  }, 60_000);
});
