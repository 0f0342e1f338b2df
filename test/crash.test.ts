// Crash safety of the time-series store: the compiled server is killed with SIGKILL while several agents push
// batches as fast as it acknowledges them (and after at least one head flush, so chunks, rollups and the WAL are
// all in play). On restart the store opens, every acknowledged batch's samples are there exactly once, and the
// database passes SQLite's integrity check.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import Database from "better-sqlite3";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/spectra/v1/agent_service_pb.js";
import { MetricBatchSchema, MetricEnvelopeSchema } from "../gen/spectra/v1/metrics_pb.js";
import { startTestApp } from "../server/testing/app.js";
import { bearer, createTestAgentKey } from "../server/testing/credentials.js";
import { openSqliteStore } from "../server/store/sqlite/sqlite-store.js";

const SERVER = join(import.meta.dirname, "..", "dist", "server", "main.js");
const dir = mkdtempSync(join(tmpdir(), "spectra-crash-"));
let child: ChildProcess | undefined;
afterAll(() => {
  child?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

function startServer(dataDir: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [SERVER, "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--flush-interval", "300ms"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no listening line in: ${log}`)), 30_000);
    proc.stderr!.on("data", (d: Buffer) => {
      log += d.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(log);
      if (m) {
        clearTimeout(t);
        resolve({ proc, url: m[1]! });
      }
    });
  });
}

const T0 = Date.UTC(2026, 10, 27, 8, 0, 0);
const HOSTS = 6;

describe("crash safety", () => {
  it("keeps every acknowledged batch, once, when the server is killed during heavy ingest", async () => {
    const dataDir = join(dir, "data");
    // Each host's key, made in the database before the server starts.
    const store = openSqliteStore(join(dataDir, "spectra.db"));
    const keys = new Map<string, string>();
    for (let h = 0; h < HOSTS; h++) keys.set(`crash-${h}`, await createTestAgentKey(store, `crash-${h}`));
    await store.close();
    const server = await startServer(dataDir);
    child = server.proc;
    const acked = new Map<string, number[]>(); // host → sequence numbers acknowledged
    let stop = false;
    const pushers = Array.from({ length: HOSTS }, async (_, h) => {
      const hostname = `crash-${h}`;
      const agent = createClient(
        AgentService,
        createConnectTransport({ baseUrl: server.url, httpVersion: "2", interceptors: [bearer(keys.get(hostname)!)] }),
      );
      const list: number[] = [];
      acked.set(hostname, list);
      for (let seq = 1; !stop && seq <= 100_000; seq++) {
        // each batch: 20 ticks of cpu + disk; cpu.usage's value is the sequence (to check which batch a sample is from)
        const envelopes = [];
        for (let i = 0; i < 20; i++) {
          const t = timestampFromMs(T0 + (seq * 20 + i) * 1_000);
          envelopes.push(create(MetricEnvelopeSchema, { timestamp: t, payload: { case: "cpu", value: { usage: seq, cores: [1, 2] } } }));
          envelopes.push(
            create(MetricEnvelopeSchema, { timestamp: t, payload: { case: "disk", value: { mountpoint: "/", diskUsedPct: i } } }),
          );
        }
        try {
          const r = await agent.pushMetrics({
            batch: create(MetricBatchSchema, { hostname, sessionId: "s", sequence: BigInt(seq), envelopes }),
          });
          if (r.storedEnvelopes === envelopes.length) list.push(seq);
        } catch {
          return; // the server died under us: this batch was not acknowledged
        }
      }
    });
    // let it run through several flushes, then kill it without warning
    await new Promise((r) => setTimeout(r, 2_500));
    server.proc.kill("SIGKILL");
    await new Promise((r) => server.proc.once("exit", r));
    stop = true;
    await Promise.all(pushers);
    const total = [...acked.values()].reduce((a, l) => a + l.length, 0);
    expect(total).toBeGreaterThan(HOSTS * 5);

    const db = new Database(join(dataDir, "spectra.db"));
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    const chunksBefore = (db.prepare("SELECT count(*) AS n FROM chunks").get() as { n: number }).n;
    db.close();
    expect(chunksBefore).toBeGreaterThan(0); // some flushes happened before the kill

    const app = await startTestApp({ dataDir });
    try {
      for (const [hostname, seqs] of acked) {
        const [usage] = app.services.tsdb.select({ hostname, metric: "cpu.usage" });
        const got = await app.services.tsdb.samples(usage!, 0, Number.MAX_SAFE_INTEGER);
        // no sample twice
        expect(new Set(got.t).size, hostname).toBe(got.t.length);
        // every acknowledged batch complete: its 20 samples, value = sequence
        const bySeq = new Map<number, number>();
        for (const v of got.v) bySeq.set(v, (bySeq.get(v) ?? 0) + 1);
        for (const seq of seqs) expect(bySeq.get(seq), `${hostname} batch ${seq}`).toBe(20);
        // a batch is all or nothing: anything stored beyond the acknowledged ones is a whole batch too
        for (const [seq, n] of bySeq) expect(n, `${hostname} batch ${seq}`).toBe(20);
        const [pct] = app.services.tsdb.select({ hostname, metric: "disk.disk_used_pct" });
        expect((await app.services.tsdb.samples(pct!, 0, Number.MAX_SAFE_INTEGER)).t.length).toBe(got.t.length);
      }
    } finally {
      await app.close();
    }
  }, 60_000);
});
