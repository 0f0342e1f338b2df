/**
 * The load generator of bench/ingest.ts, run as a worker thread (the server runs in its own process; the bench's
 * main thread only measures). It builds the pre-encoded pool once (pool.ts), then per run drives N simulated
 * agents over K connections until told to stop, and reports when each acknowledged batch was acknowledged.
 *
 * Spectra: K HTTP/2 connections (one connect-node transport and Http2SessionManager each), agent j on connection
 * j mod K. Each agent sends its batches on AgentService.StreamMetrics (Connect protocol, binary) as the agent's
 * sender does: a stream carries up to `windowBatches` batches, is half-closed, and the response's acked_sequences
 * say which batches are stored; then the next stream opens. Samples count only when acknowledged.
 * VictoriaMetrics: the same agents and samples, each batch one POST to the import API over K keep-alive HTTP/1.1
 * connections (VictoriaMetrics does not speak h2c); a 204 acknowledges the batch.
 */
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { gzip } from "../../common/gzip.js";
import { createClient } from "@connectrpc/connect";
import { Agent as HttpAgent, request } from "node:http";
import { setMaxListeners } from "node:events";
import { parentPort } from "node:worker_threads";
import { AgentService } from "../../gen/spectra/v1/agent_service_pb.js";
import { enrollAll } from "./enroll.js";
import { buildPool, poolAgents, type PoolAgent, type PoolOptions } from "./pool.js";

/** Creates the simulated agents of a run; for Spectra also enrolls (and registers) each one, as the agent does. */
export interface PrepareRequest {
  target: "spectra" | "vm";
  /** Spectra: server base URL; VictoriaMetrics: the import URL. */
  url: string;
  agents: number;
  /** Sim time of the first samples. */
  runStartMs: number;
  runTag: string;
  /** Spectra: an auto-approving, multi-use enrollment token (spe_…). */
  enrollToken?: string;
}

export interface RunRequest {
  target: "spectra" | "vm";
  url: string;
  connections: number;
  windowBatches: number;
  gzip: boolean;
  /** Stop sending at this wall time (ms); then drain for at most drainMs. */
  stopAtMs: number;
  drainMs: number;
}

/** Acknowledgements per 100 ms bucket of wall time (bucket = floor(ms / 100)). */
export interface RunReport {
  buckets: Array<[bucket: number, batches: number, samples: number, envelopes: number]>;
  sentBatches: number;
  ackedBatches: number;
  ackedSamples: number;
  rejectedBatches: number;
  duplicateBatches: number;
  failures: number;
  firstError: string | undefined;
  unackedAtEnd: number;
  /** Sim time reached by the agents (ms). */
  simEndMs: number;
}

type Msg = { cmd: "init"; pool: PoolOptions } | { cmd: "prepare"; prepare: PrepareRequest } | { cmd: "run"; run: RunRequest };

let templates: ReturnType<typeof buildPool>["templates"] | undefined;
let prepared: { agents: PoolAgent[]; keys: string[] } | undefined;

parentPort!.on("message", (msg: Msg) => {
  void (async () => {
    try {
      if (msg.cmd === "init") {
        const built = buildPool(msg.pool);
        templates = built.templates;
        parentPort!.postMessage({ ok: true, stats: built.stats });
      } else if (msg.cmd === "prepare") {
        if (!templates) throw new Error("init first");
        const t0 = performance.now();
        const p = msg.prepare;
        const agents = poolAgents(templates, p.agents, p.runStartMs, p.runTag);
        const keys = p.target === "spectra" && p.enrollToken ? ((await enrollAll(p.url, agents.map((a) => a.hostname), p.enrollToken)) as string[]) : [];
        prepared = { agents, keys };
        parentPort!.postMessage({ ok: true, ms: performance.now() - t0 });
      } else {
        if (!prepared) throw new Error("prepare first");
        const { agents, keys } = prepared;
        prepared = undefined;
        const report = msg.run.target === "spectra" ? await runSpectra(msg.run, agents, keys) : await runVm(msg.run, agents);
        parentPort!.postMessage({ ok: true, report });
      }
    } catch (err) {
      parentPort!.postMessage({ ok: false, error: (err as Error).stack ?? String(err) });
    }
  })();
});

/** Ends a run early when calls fail and nothing was acknowledged after 5 s (a setup problem, not a load). */
function failFast(tally: Tally, abort: AbortController): NodeJS.Timeout {
  const t0 = Date.now();
  return setInterval(() => {
    if (Date.now() - t0 > 5_000 && tally.ackedBatches === 0 && tally.failures > 0) abort.abort();
  }, 1_000);
}

class Tally {
  private readonly map = new Map<number, [number, number, number]>();
  sentBatches = 0;
  ackedBatches = 0;
  ackedSamples = 0;
  rejectedBatches = 0;
  duplicateBatches = 0;
  failures = 0;
  firstError: string | undefined;

  ack(samples: number, envelopes: number, at = Date.now()): void {
    const b = Math.floor(at / 100);
    let e = this.map.get(b);
    if (!e) this.map.set(b, (e = [0, 0, 0]));
    e[0]++;
    e[1] += samples;
    e[2] += envelopes;
    this.ackedBatches++;
    this.ackedSamples += samples;
  }

  fail(err: unknown): void {
    this.failures++;
    this.firstError ??= (err as Error).message ?? String(err);
  }

  report(unacked: number, agents: PoolAgent[]): RunReport {
    return {
      buckets: [...this.map].map(([b, [n, s, e]]) => [b, n, s, e]),
      sentBatches: this.sentBatches,
      ackedBatches: this.ackedBatches,
      ackedSamples: this.ackedSamples,
      rejectedBatches: this.rejectedBatches,
      duplicateBatches: this.duplicateBatches,
      failures: this.failures,
      firstError: this.firstError,
      unackedAtEnd: unacked,
      simEndMs: Math.max(...agents.map((a) => a.simTimeMs)),
    };
  }
}

/**
 * Waits for the agents' loops to end (they stop sending at run.stopAtMs and drain); past the drain allowance, or when
 * failFast gives up, aborts them and waits for them to wind down.
 */
async function runLoops(loops: Promise<unknown>[], run: RunRequest, tally: Tally, abort: AbortController): Promise<void> {
  const watchdog = failFast(tally, abort);
  const all = Promise.all(loops).finally(() => clearInterval(watchdog));
  const drained = await Promise.race([
    all.then(() => true),
    new Promise<false>((r) => setTimeout(() => r(false), Math.max(0, run.stopAtMs - Date.now()) + run.drainMs)),
  ]);
  if (!drained) {
    abort.abort();
    await all;
  }
}

async function runSpectra(run: RunRequest, agents: PoolAgent[], keys: string[]): Promise<RunReport> {
  const tally = new Tally();
  const managers = Array.from({ length: run.connections }, () => new Http2SessionManager(run.url, { pingIntervalMs: 30_000, pingTimeoutMs: 30_000 }));
  const clients = managers.map((sessionManager) =>
    createClient(
      AgentService,
      createConnectTransport({
        baseUrl: run.url,
        httpVersion: "2",
        useBinaryFormat: true,
        sessionManager,
        readMaxBytes: 16 * 1024 * 1024,
        writeMaxBytes: 16 * 1024 * 1024,
        ...(run.gzip ? { sendCompression: gzip, compressMinBytes: 1024, acceptCompression: [gzip] } : {}),
      }),
    ),
  );
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one listener per open stream
  let unacked = 0;
  // Agents start spread over 2 s and their streams carry 1 … 2W−1 batches (W on average), so that streams do not
  // all end together (acknowledgements would come in waves: every agent's stream ends once all have been served).
  const maxWindow = Math.max(1, 2 * run.windowBatches - 1);
  const loop = async (a: PoolAgent, i: number) => {
    const client = clients[i % clients.length]!;
    await new Promise((r) => setTimeout(r, (i / agents.length) * 2_000));
    let w = i % maxWindow;
    while (Date.now() < run.stopAtMs && !abort.signal.aborted) {
      const inFlight = new Map<bigint, { samples: number; envelopes: number }>();
      const window = (w++ % maxWindow) + 1;
      async function* requests() {
        for (let k = 0; k < window && Date.now() < run.stopAtMs; k++) {
          const r = a.nextRequest();
          inFlight.set(r.sequence, { samples: r.samples, envelopes: r.envelopes });
          tally.sentBatches++;
          yield r.req;
        }
      }
      try {
        const res = await client.streamMetrics(requests(), { signal: abort.signal, ...(keys[i] ? { headers: { authorization: `Bearer ${keys[i]}` } } : {}) });
        const at = Date.now();
        for (const seq of res.ackedSequences) {
          const x = inFlight.get(seq);
          if (x) {
            tally.ack(x.samples, x.envelopes, at);
            inFlight.delete(seq);
          }
        }
        tally.rejectedBatches += res.rejectedSequences.length;
        tally.duplicateBatches += res.duplicateBatches;
        if (res.rejectedSequences.length > 0) tally.fail(new Error(`rejected: ${res.rejectedReason}`));
        for (const seq of res.rejectedSequences) inFlight.delete(seq);
      } catch (err) {
        if (abort.signal.aborted) break;
        tally.fail(err);
        await new Promise((r) => setTimeout(r, 200));
      }
      unacked += inFlight.size;
    }
  };
  await runLoops(agents.map((a, i) => loop(a, i)), run, tally, abort);
  for (const m of managers) m.abort();
  return tally.report(unacked, agents);
}

async function runVm(run: RunRequest, agents: PoolAgent[]): Promise<RunReport> {
  const tally = new Tally();
  const agent = new HttpAgent({ keepAlive: true, maxSockets: run.connections });
  const url = new URL(run.url);
  const post = (body: Buffer, signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          method: "POST",
          agent,
          signal,
          headers: { "content-type": "application/octet-stream", "content-length": body.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (d: Buffer) => chunks.push(d));
          res.on("end", () => {
            if (res.statusCode === 204 || res.statusCode === 200) resolve();
            else reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString("utf8").slice(0, 300)}`));
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  const loop = async (a: PoolAgent) => {
    while (Date.now() < run.stopAtMs && !abort.signal.aborted) {
      const { body, samples } = a.nextVmBody();
      tally.sentBatches++;
      try {
        await post(body, abort.signal);
        tally.ack(samples, 0);
      } catch (err) {
        if (abort.signal.aborted) break;
        tally.fail(err);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  await runLoops(agents.map((a) => loop(a)), run, tally, abort);
  agent.destroy();
  return tally.report(0, agents);
}
