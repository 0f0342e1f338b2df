// The spectra-server executable (compiled dist/server/main.js): --help, bad settings, and a graceful stop on
// SIGTERM with an agent's command stream open and a metric write acknowledged just before.
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import Database from "better-sqlite3";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AgentService, HostInfoSchema } from "../gen/spectra/v1/agent_service_pb.js";
import { AdminService } from "../gen/spectra/v1/admin_service_pb.js";
import { MetricBatchSchema } from "../gen/spectra/v1/metrics_pb.js";
import { openSqliteStore } from "../server/store/sqlite/sqlite-store.js";
import { bearer, createTestAgentKey } from "../server/testing/credentials.js";
import { connect as tlsConnect } from "node:tls";
import { createHash } from "node:crypto";

const SERVER = join(import.meta.dirname, "..", "dist", "server", "main.js");
const dir = mkdtempSync(join(tmpdir(), "spectra-cli-"));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the compiled server on a random port; resolves once it listens, with its URL and its stderr so far. */
async function startServer(args: string[]): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const child = spawn(process.execPath, [SERVER, "--listen", "127.0.0.1:0", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { PATH: process.env["PATH"] ?? "" },
  });
  children.push(child);
  let log = "";
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no listening line in: ${log}`)), 15_000);
    child.stderr!.on("data", (d: Buffer) => {
      log += d.toString();
      const m = /"url":"(https?:\/\/[^"]+)"/.exec(log);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    child.once("exit", (code) => reject(new Error(`server exited (${code}): ${log}`)));
  });
  return { child, url, log: () => log };
}

async function stopServer(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.kill("SIGTERM");
  return exited;
}

/** Runs a token subcommand of the compiled server. */
function cli(args: string[]) {
  const r = spawnSync(process.execPath, [SERVER, ...args], { encoding: "utf8", timeout: 15_000, env: { PATH: process.env["PATH"] ?? "" } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("spectra-server executable", () => {
  it("prints help and refuses bad settings without a stack trace", () => {
    expect(existsSync(SERVER), "run `npm run build` (npm test does)").toBe(true);
    const help = spawnSync(process.execPath, [SERVER, "--help"], { encoding: "utf8", timeout: 10_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("--listen");
    expect(help.stdout).toContain("SPECTRA_DATA_DIR");
    expect(help.stdout).toContain("spectra-server token create --name <name> --role viewer|operator|admin");
    expect(help.stdout).toContain("--legacy-allow");
    expect(help.stdout).toContain("--tls-self-signed");
    const bad = spawnSync(process.execPath, [SERVER, "--long-poll", "forever"], { encoding: "utf8", timeout: 10_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('spectra-server: long-poll: "forever" is not a duration (e.g. 30s, 5m, 1h)\nRun spectra-server --help for the flags.\n');
  });

  it("stops gracefully on SIGTERM: streams end, acknowledged writes are on disk, exit code 0", async () => {
    const dataDir = join(dir, "data");
    // The agent's key, made in the database before the server starts.
    const store = openSqliteStore(join(dataDir, "spectra.db"));
    const key = await createTestAgentKey(store, "web-01");
    await store.close();
    const { child, url, log } = await startServer(["--data-dir", dataDir]);
    const agent = createClient(AgentService, createConnectTransport({ baseUrl: url, httpVersion: "2", interceptors: [bearer(key)] }));
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
    expect(log()).toContain("spectra server stopped");
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

describe("admin tokens from the command line", () => {
  it("prints the first admin token once, on the first start only", async () => {
    const dataDir = join(dir, "bootstrap");
    const first = await startServer(["--data-dir", dataDir]);
    const printed = first.log().match(/^spectra-server: (spt_[0-9a-f]{16}_[A-Za-z0-9_-]{43})$/m);
    expect(printed, first.log()).not.toBeNull();
    expect(first.log()).toContain('name "initial-admin", role admin');
    // Printed as plain lines, never in the JSON log.
    expect(first.log().split("\n").filter((l) => l.startsWith("{") && l.includes(printed![1]!))).toEqual([]);
    const admin = createClient(AdminService, createConnectTransport({ baseUrl: first.url, httpVersion: "2", interceptors: [bearer(printed![1]!)] }));
    expect((await admin.listAgents({})).agents).toEqual([]);
    expect(await stopServer(first.child)).toBe(0);
    const second = await startServer(["--data-dir", dataDir]);
    expect(second.log()).not.toMatch(/spt_/);
    const admin2 = createClient(AdminService, createConnectTransport({ baseUrl: second.url, httpVersion: "2", interceptors: [bearer(printed![1]!)] }));
    expect((await admin2.listAgents({})).agents).toEqual([]);
    expect(await stopServer(second.child)).toBe(0);
  });

  it("creates, lists and revokes tokens on the configured store", () => {
    const store = ["--store", join(dir, "cli", "db.sqlite")];
    const created = cli(["token", "create", "--name", "ci", "--role", "viewer", ...store]);
    expect(created.code, created.err).toBe(0);
    expect(created.out).toMatch(/^spt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/);
    expect(created.err).toMatch(/^created admin token "ci" \(role viewer, id [0-9a-f]{16}\); store it now, it is not shown again\n$/);
    expect(cli(["token", "create", "--name", "ci", "--role", "admin", ...store])).toMatchObject({ code: 1, err: 'spectra-server token: an admin token named "ci" already exists\n' });
    expect(cli(["token", "create", "--name", "x", "--role", "root", ...store]).code).toBe(2);
    expect(cli(["token", "create", "--role", "admin", ...store]).code).toBe(2);
    expect(cli(["token", "create", "--name", "ops", "--role", "operator", ...store]).code).toBe(0);
    const list = cli(["token", "list", ...store]);
    expect(list.code).toBe(0);
    const rows = list.out.trim().split("\n");
    expect(rows[0]).toMatch(/^ID +NAME +ROLE +CREATED +LAST USED +STATUS$/);
    expect(rows.slice(1).map((r) => r.split(/ +/).slice(1, 3))).toEqual([["ci", "viewer"], ["ops", "operator"]]);
    expect(list.out).not.toContain(created.out.trim());
    expect(cli(["token", "revoke", "ci", ...store])).toMatchObject({ code: 0 });
    expect(cli(["token", "list", ...store]).out).toMatch(/ci +viewer .* revoked /);
    expect(cli(["token", "revoke", "nobody", ...store]).code).toBe(1);
    expect(cli(["token", "frobnicate", ...store]).code).toBe(2);
    // Enrollment tokens too (npm start gives its local agent one).
    const enroll = cli(["enroll-token", "create", "--name", "lab", "--auto-approve", "--ttl", "1h", "--label", "site=lab", ...store]);
    expect(enroll.code, enroll.err).toBe(0);
    expect(enroll.out).toMatch(/^spe_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/);
    expect(cli(["enroll-token", "list", ...store]).out).toMatch(/lab +single +auto +0 +\S+ +active +site=lab/);
  });

  it("serves TLS with a self-signed certificate made once, and prints the fingerprint agents pin", async () => {
    const dataDir = join(dir, "tls");
    const first = await startServer(["--data-dir", dataDir, "--tls-self-signed"]);
    expect(first.url).toMatch(/^https:/);
    const m = /agents pin it with --server-fingerprint (sha256:[0-9a-f]{64})\n/.exec(first.log());
    expect(m, first.log()).not.toBeNull();
    const port = Number(new URL(first.url).port);
    // The certificate the server presents is the one the fingerprint names.
    const seen = await new Promise<string>((resolve, reject) => {
      const sock = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false, ALPNProtocols: ["h2"] }, () => {
        const der = sock.getPeerCertificate().raw;
        sock.end();
        resolve(`sha256:${createHash("sha256").update(der).digest("hex")}`);
      });
      sock.on("error", reject);
    });
    expect(seen).toBe(m![1]);
    expect(await stopServer(first.child)).toBe(0);
    const second = await startServer(["--data-dir", dataDir, "--tls-self-signed"]);
    expect(second.log()).toContain(`--server-fingerprint ${m![1]}`);
    expect(second.log()).not.toContain("(made now)");
    expect(await stopServer(second.child)).toBe(0);
    expect(cli(["--tls-self-signed", "--tls-cert", "a", "--tls-key", "b"]).code).toBe(2);
  });
});
