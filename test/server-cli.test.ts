// The spectra-server executable (compiled dist/server/main.js): --help, bad settings, and a graceful stop on
// SIGTERM with an agent's command stream open and a metric write acknowledged just before.
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import Database from "better-sqlite3";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AgentService, HostInfoSchema } from "../gen/spectra/v1/agent_service_pb.js";
import { MetricBatchSchema } from "../gen/spectra/v1/metrics_pb.js";

const SERVER = join(import.meta.dirname, "..", "dist", "server", "main.js");
const dir = mkdtempSync(join(tmpdir(), "spectra-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("spectra-server executable", () => {
  it("prints help and refuses bad settings without a stack trace", () => {
    expect(existsSync(SERVER), "run `npm run build` (npm test does)").toBe(true);
    const help = spawnSync(process.execPath, [SERVER, "--help"], { encoding: "utf8", timeout: 10_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("--listen");
    expect(help.stdout).toContain("SPECTRA_DATA_DIR");
    const bad = spawnSync(process.execPath, [SERVER, "--long-poll", "forever"], { encoding: "utf8", timeout: 10_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('spectra-server: long-poll: "forever" is not a duration (e.g. 30s, 5m, 1h)\nRun spectra-server --help for the flags.\n');
  });

  it("stops gracefully on SIGTERM: streams end, acknowledged writes are on disk, exit code 0", async () => {
    const dataDir = join(dir, "data");
    const child = spawn(process.execPath, [SERVER, "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no listening line in: ${log}`)), 10_000);
      child.stderr!.on("data", (d: Buffer) => {
        log += d.toString();
        const m = /"url":"(http:\/\/[^"]+)"/.exec(log);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
    });
    const agent = createClient(AgentService, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
    await agent.register({ host: create(HostInfoSchema, { hostname: "web-01" }) });
    const res = await agent.pushMetrics({
      batch: create(MetricBatchSchema, {
        hostname: "web-01",
        sessionId: "s",
        sequence: 1n,
        envelopes: [{ payload: { case: "system", value: { uptime: 5n } } }],
      }),
    });
    expect(res.storedEnvelopes).toBe(1);
    const stream = (async () => {
      try {
        for await (const _ of agent.commandPoll({ hostname: "web-01" })) {
          // no command is queued in this test
        }
        return "ended";
      } catch (err) {
        return `error: ${(err as Error).message}`;
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(await stream).toMatch(/^(ended|error: .*)$/);
    expect(log).toContain("spectra server stopped");
    const db = new Database(join(dataDir, "spectra.db"), { readonly: true });
    // the graceful stop flushed the head: the sample is in a chunk, the series has it as its latest, the WAL is empty
    expect((db.prepare("SELECT count(*) AS n FROM chunks").get() as { n: number }).n).toBe(4); // uptime, processes, users, boot_time
    expect(db.prepare("SELECT last_v FROM series WHERE hostname = 'web-01' AND metric = 'system.uptime'").get()).toEqual({
      last_v: 5,
    });
    expect((db.prepare("SELECT count(*) AS n FROM wal").get() as { n: number }).n).toBe(0);
    db.close();
  });
});
