/**
 * Fleet scale (issue 8): N simulated agents against one real server, at the default intervals in real time, with an
 * admin triggering a diagnostic every 100 ms. Results and method: docs/benchmarks.md, "Fleet scale (issue 8)".
 *
 *   npm run bench:fleet -- [--agents 100,1000,5000] [--legacy-share 0.1] [--warmup 40] [--seconds 60]
 *        [--trigger-ms 100] [--workers 1] [--generator-nice 0] [--templates 100] [--store postgres] [--drain 50]
 *        [--enroll-concurrency 32] [--enroll-timeout 900] [--profile] [--profile-dir DIR]
 *        [--server-node-flags "..."] [--server-args "..."] [--quiet-wait 120] [--out results.json] [--keep]
 *        [--heap-snapshot DIR] [--server-env "NAME=value …"] [--server path/to/server/main.js]
 *
 * For each N: a fresh SQLite data dir (or, with `--store postgres`, a fresh PostgreSQL database on 127.0.0.1), an
 * auto-approving enrollment token and an admin token made with the server's CLI, and the compiled server
 * (`node dist/server/main.js --listen 127.0.0.1:0 …`) as a child process with default settings. The simulated agents
 * run in worker threads of this process (lib/fleet-agent.ts; one by default): each enrolls and registers with its
 * own key, then opens its own HTTP/2 connection (the agent's transport), holds CommandPoll open and sends one batch
 * per 5 s tick on StreamMetrics in 30 s windows as the agent's sender does; `--legacy-share` of them are the original
 * Go agent instead (gzipped JSON POST /api/v1/metrics every 5 s and the command long poll, on their own
 * HTTP/1.1 connection). Agents start spread evenly over the first 5 s tick.
 *
 * `--generator-nice N` runs the simulator's worker threads at niceness N (Linux: per thread; the server keeps its
 * priority). On a machine too small for the server and the fleet together, the server then gets the CPU it needs and
 * the simulated agents run late instead: compare "samples/s sent" with the fleet's nominal rate.
 *
 * Rate limits: the server's defaults (--rate-limit 50/s, --rate-burst 500) are per agent key, per admin token, and
 * per source address only for requests without a credential. Every simulated agent, the legacy senders included,
 * sends its own key, and the trigger loop (10/s) uses one admin token, so the defaults apply unchanged although the
 * whole fleet comes from 127.0.0.1.
 *
 * Measured over a fixed window after the warm-up (the first windows of 30 s must have closed): server CPU (all
 * threads, /proc/<pid>/stat) and RSS / peak RSS, acknowledged samples/s, acknowledgement latency (batch sent →
 * acknowledged; the agent's streams half-close every 30 s, so this is mostly the window: also shown is half-close →
 * response, the server's part), command delivery latency (trigger call start → the agent has the command on its
 * CommandPoll stream) with delivered / lost / duplicated counts, errors of any kind, and the generator's CPU.
 * The server's memory split (V8 heap used and committed, external, other native, file-backed) comes from
 * lib/memory-probe.ts, loaded into the server with --import; `--heap-snapshot DIR` also has the server write a heap
 * snapshot there at the end of the window (after the figures are taken: it stops the server for seconds).
 * Loopback only; every phase is bounded in time; a server that dies or stalls ends that N with what was measured.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { AdminService } from "../gen/spectra/v1/admin_service_pb.js";
import type { FleetInit, FleetInitReport, FleetRun, FleetRunReport } from "./lib/fleet-agent.js";
import { ErrorTally, inWindow, latencyStats, mergeErrors, summarizeDelivery, type Delivery, type ErrorSummary, type LatencyStats, type Trigger } from "./lib/fleet-report.js";
import { summarizeProfile, type ProfileSummary } from "./lib/cpuprofile.js";
import { createBenchDatabase, type BenchDatabase } from "./lib/pg.js";
import type { ServerMemory } from "./lib/memory-probe.js";
import {
  argNumber,
  argValue,
  cpuSeconds,
  fmt,
  hasFlag,
  memoryMiB,
  onInterrupt,
  root,
  sleep,
  startChild,
  stopChild,
  systemBusySeconds,
  waitForLine,
  waitQuiet,
  type Child,
} from "./lib/proc.js";

const opts = {
  agents: (argValue("agents") ?? "100,1000,5000").split(",").map((s) => Number(s.trim())),
  legacyShare: argNumber("legacy-share", 0.1),
  warmup: argNumber("warmup", 40),
  seconds: argNumber("seconds", 60),
  triggerMs: argNumber("trigger-ms", 100),
  workers: argNumber("workers", 1),
  generatorNice: argNumber("generator-nice", 0),
  templates: argNumber("templates", 100),
  drain: argNumber("drain", 50),
  enrollConcurrency: argNumber("enroll-concurrency", 32),
  enrollTimeout: argNumber("enroll-timeout", 900),
  quietWait: argNumber("quiet-wait", 120),
  store: argValue("store"),
  profile: hasFlag("profile"),
  profileDir: argValue("profile-dir"),
  serverNodeFlags: (argValue("server-node-flags") ?? "").split(/\s+/).filter(Boolean),
  serverArgs: (argValue("server-args") ?? "").split(/\s+/).filter(Boolean),
  out: argValue("out"),
  keep: hasFlag("keep"),
  heapSnapshot: argValue("heap-snapshot"),
  /** Extra environment of the server process (e.g. MALLOC_ARENA_MAX=2), for comparisons. */
  serverEnv: Object.fromEntries(
    (argValue("server-env") ?? "")
      .split(/\s+/)
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  ),
};
/** The compiled server; `--server` runs another build (e.g. an older commit's) under the same fleet. */
const SERVER = argValue("server") ?? join(root, "dist", "server", "main.js");
const TICK_MS = 5_000;
const WINDOW_MS = 30_000;
const WINDOW_BATCHES = 50;
const SERIES_PER_AGENT = 124;
const now = (): number => performance.timeOrigin + performance.now();

function log(msg: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

interface Result {
  agents: number;
  /** RSS of the server when it was ready, before any agent. */
  idleMiB: number;
  connectAgents: number;
  legacyAgents: number;
  enrollFailures: number;
  enrollS: number;
  windowS: number;
  serverCpuPct: number;
  genCpuPct: number;
  otherCpuPct: number;
  rssMiB: number;
  peakMiB: number;
  maxRssInWindowMiB: number;
  rssTimeline: Array<[s: number, mib: number]>;
  /** The server's memory split at the end of the window (lib/memory-probe.ts), bytes. */
  memory?: ServerMemory;
  /**
   * Over the window (the probe's figures, read every second): the least V8 heap in use (≈ what survives a full GC),
   * the most heap committed, and the most external memory.
   */
  memoryWindow?: { heapUsedMin: number; heapTotalMax: number; externalMax: number };
  heapSnapshot?: string;
  samplesPerSec: number;
  /** Samples of the batches the simulated agents made on their ticks within the window (their actual pace). */
  madeSamplesPerSec: number;
  legacySamplesPerSec: number;
  batchesPerSec: number;
  expectedSamplesPerSec: number;
  ack: LatencyStats;
  close: LatencyStats;
  legacy: LatencyStats;
  trigger: LatencyStats;
  delivery: Omit<Delivery, "latencies"> & LatencyStats;
  counters: Omit<FleetRunReport, "ackAt" | "ackMs" | "ackSamples" | "closeAt" | "closeMs" | "legacyAt" | "legacyMs" | "legacySamples" | "arrivals" | "madeAt" | "madeSamples" | "errors">;
  errors: ErrorSummary;
  serverExit?: string;
  stop?: { how: string; ms: number };
  profile?: ProfileSummary;
  notes: string[];
}

function cliToken(args: string[], re: RegExp): string {
  const out = execFileSync(process.execPath, [SERVER, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  const m = re.exec(out);
  if (!m) throw new Error(`no token in: ${out}`);
  return m[0];
}

class FleetWorker {
  readonly worker = new Worker(join(import.meta.dirname, "lib", "fleet-agent.js"));
  private call<T>(msg: unknown, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`generator worker: no answer after ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      const onMsg = (m: { ok: boolean; error?: string; report: T }) => {
        cleanup();
        if (m.ok) resolve(m.report);
        else reject(new Error(`generator: ${m.error}`));
      };
      const onErr = (e: Error) => {
        cleanup();
        reject(e);
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.worker.off("message", onMsg);
        this.worker.off("error", onErr);
      };
      this.worker.on("message", onMsg);
      this.worker.on("error", onErr);
      this.worker.postMessage(msg);
    });
  }
  init(init: FleetInit): Promise<FleetInitReport> {
    return this.call({ cmd: "init", init }, opts.enrollTimeout * 1000 + 120_000);
  }
  run(run: FleetRun): Promise<FleetRunReport> {
    return this.call({ cmd: "run", run }, run.stopAtMs - Date.now() + run.drainMs + 60_000);
  }
  abort(): void {
    this.worker.postMessage({ cmd: "abort" });
  }
  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

async function runOne(n: number, dir: string): Promise<Result> {
  const notes: string[] = [];
  const attempt = `n${n}-${Date.now().toString(36)}`;
  const dataDir = join(dir, attempt);
  mkdirSync(dataDir, { recursive: true });
  let db: BenchDatabase | undefined;
  let storeArgs: string[];
  if (opts.store === "postgres") {
    db = await createBenchDatabase("spectra_fleet");
    storeArgs = ["--store", db.url];
  } else if (opts.store) {
    storeArgs = ["--store", opts.store];
  } else {
    storeArgs = ["--data-dir", dataDir];
  }
  const enrollToken = cliToken(["enroll-token", "create", "--name", "bench-fleet", "--auto-approve", "--multi-use", "--ttl", "6h", ...storeArgs], /spe_\S+/);
  const adminToken = cliToken(["token", "create", "--name", "bench-fleet-admin", "--role", "admin", ...storeArgs], /spt_\S+/);
  const profDir = opts.profile ? (opts.profileDir ? join(opts.profileDir, attempt) : join(dir, `prof-${attempt}`)) : undefined;
  if (profDir) mkdirSync(profDir, { recursive: true });
  const memoryFile = join(dir, `memory-${attempt}.json`);
  const snapDir = opts.heapSnapshot ? join(opts.heapSnapshot, attempt) : undefined;
  if (snapDir) mkdirSync(snapDir, { recursive: true });
  const nodeFlags = [
    ...opts.serverNodeFlags,
    `--import=${pathToFileURL(join(import.meta.dirname, "lib", "memory-probe.js")).href}`,
    ...(profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []),
    ...(snapDir ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${snapDir}`] : []),
  ];
  const server: Child = startChild(
    process.execPath,
    [...nodeFlags, SERVER, "--listen", "127.0.0.1:0", ...storeArgs, ...opts.serverArgs],
    join(dir, `server-${attempt}.log`),
    { ...process.env, ...opts.serverEnv, SPECTRA_BENCH_MEMORY_OUT: memoryFile },
  );
  const workers: FleetWorker[] = [];
  let adminSession: Http2SessionManager | undefined;
  let exited: string | undefined;
  void server.exited.then((how) => (exited = how));
  try {
    const url = (await waitForLine(server, /"url":"(http:\/\/127\.0\.0\.1:\d+)"/, 60_000))[1]!;
    const idleMiB = memoryMiB(server.pid).rss;
    log(`N=${n}: server pid ${server.pid} at ${url}${db ? ` on database ${db.name}` : ""}, RSS ${fmt(idleMiB)} MiB; enrolling`);
    for (let w = 0; w < Math.max(1, opts.workers); w++) workers.push(new FleetWorker());
    const t0e = Date.now();
    const runStartMs = Date.now();
    const inits = await Promise.all(
      workers.map((fw, w) =>
        fw.init({
          url,
          agents: n,
          workers: workers.length,
          worker: w,
          legacyShare: opts.legacyShare,
          templates: opts.templates,
          enrollToken,
          runTag: attempt,
          runStartMs,
          reportIntervalMs: TICK_MS,
          enrollConcurrency: Math.max(1, Math.round(opts.enrollConcurrency / workers.length)),
          enrollDeadlineMs: Date.now() + opts.enrollTimeout * 1000,
          nice: opts.generatorNice,
        }),
      ),
    );
    const enrollS = (Date.now() - t0e) / 1000;
    const connectHosts = inits.flatMap((i) => i.connectHosts);
    const legacyAgents = inits.reduce((s, i) => s + i.legacyAgents, 0);
    const enrollFailures = inits.reduce((s, i) => s + i.enrollFailures, 0);
    log(`N=${n}: ${connectHosts.length} Connect agents and ${legacyAgents} legacy senders enrolled in ${fmt(enrollS, 1)} s (${enrollFailures} failed)`);
    if (connectHosts.length === 0) throw new Error(`no agent could enroll: ${JSON.stringify(mergeErrors(inits.map((i) => i.errors)).byKind)}`);
    if (exited) throw new Error(`the server exited during enrollment (${exited})`);
    // The sim time of the first batches trails the wall clock by up to one tick (the agents' phases are 0–4 s).
    const startAtMs = Date.now() + 2_000;
    const t0 = startAtMs + opts.warmup * 1000;
    const t1 = t0 + opts.seconds * 1000;
    // commands triggered at the end of the window get a few seconds to arrive before the agents stop
    const stopAtMs = t1 + 5_000;
    const run: FleetRun = { startAtMs, stopAtMs, drainMs: opts.drain * 1000, tickMs: TICK_MS, windowMs: WINDOW_MS, windowBatches: WINDOW_BATCHES };
    const pending = Promise.allSettled(workers.map((fw) => fw.run(run)));

    // server RSS every second, and the progress
    const rssTimeline: Array<[number, number]> = [];
    let maxRssInWindow = 0;
    let memoryWindow: Result["memoryWindow"];
    const sampler = setInterval(() => {
      if (exited) return;
      try {
        const s = Math.round((Date.now() - startAtMs) / 1000);
        const m = memoryMiB(server.pid);
        if (s % 10 === 0) {
          rssTimeline.push([s, Math.round(m.rss)]);
          log(`  N=${n}: ${s} s of ${opts.warmup + opts.seconds} s${Date.now() < t0 ? " (warm-up)" : ""}; server RSS ${fmt(m.rss)} MiB`);
        }
        if (Date.now() >= t0 && Date.now() < t1) {
          maxRssInWindow = Math.max(maxRssInWindow, m.rss);
          try {
            const p = JSON.parse(readFileSync(memoryFile, "utf8")) as ServerMemory;
            memoryWindow = {
              heapUsedMin: Math.min(memoryWindow?.heapUsedMin ?? Infinity, p.heapUsed),
              heapTotalMax: Math.max(memoryWindow?.heapTotalMax ?? 0, p.heapTotal),
              externalMax: Math.max(memoryWindow?.externalMax ?? 0, p.external),
            };
          } catch {
            // not written yet, or being replaced
          }
        }
      } catch {
        // the server is gone; noticed below
      }
    }, 1_000);

    // the trigger loop: every triggerMs an admin asks a random Connect agent for its mounts
    adminSession = new Http2SessionManager(url, { pingIntervalMs: 30_000, pingTimeoutMs: 30_000 });
    const admin = createClient(AdminService, createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, sessionManager: adminSession }));
    const triggers: Trigger[] = [];
    const triggerMs: number[] = [];
    const mainErrors = new ErrorTally();
    let inFlight = 0;
    let skipped = 0;
    const calls: Array<Promise<void>> = [];
    const triggerLoop = async () => {
      await sleep(t0 - Date.now());
      for (let k = 0; ; k++) {
        const at = t0 + k * opts.triggerMs;
        if (at >= t1 || exited) break;
        await sleep(at - Date.now());
        if (inFlight >= 200) {
          skipped++;
          continue;
        }
        const hostname = connectHosts[Math.floor(Math.random() * connectHosts.length)]!;
        const t = { id: undefined as string | undefined, hostname, at: now() };
        triggers.push(t);
        inFlight++;
        calls.push(
          admin
            .triggerListMounts({ hostname }, { timeoutMs: 10_000, headers: { authorization: `Bearer ${adminToken}` } })
            .then((res) => {
              t.id = res.command?.command?.id;
              triggerMs.push(now() - t.at);
              if (!t.id) throw new Error("the trigger answered without a command id");
            })
            .catch((err: unknown) => mainErrors.add("trigger (AdminService.TriggerListMounts)", err))
            .finally(() => inFlight--),
        );
      }
    };
    const triggering = triggerLoop();

    await sleep(t0 - Date.now());
    let c0 = 0;
    let g0 = 0;
    let s0 = 0;
    let w0 = 0;
    let measured = false;
    if (!exited) {
      c0 = cpuSeconds(server.pid);
      g0 = cpuSeconds(process.pid);
      s0 = systemBusySeconds();
      w0 = performance.now();
      // wait for the end of the window, or the server's death
      while (Date.now() < t1 && !exited) await sleep(Math.min(500, t1 - Date.now()));
    }
    let serverCpuPct = Number.NaN;
    let genCpuPct = Number.NaN;
    let otherCpuPct = Number.NaN;
    let mem = { rss: Number.NaN, peak: Number.NaN };
    let memory: ServerMemory | undefined;
    if (!exited) {
      const c1 = cpuSeconds(server.pid);
      const g1 = cpuSeconds(process.pid);
      const s1 = systemBusySeconds();
      const secs = (performance.now() - w0) / 1000;
      mem = memoryMiB(server.pid);
      try {
        memory = JSON.parse(readFileSync(memoryFile, "utf8")) as ServerMemory;
      } catch {
        notes.push("no memory split from the server (lib/memory-probe.ts)");
      }
      serverCpuPct = ((c1 - c0) / secs) * 100;
      genCpuPct = ((g1 - g0) / secs) * 100;
      otherCpuPct = ((s1 - s0 - (c1 - c0) - (g1 - g0)) / secs) * 100;
      measured = true;
    }
    let heapSnapshot: string | undefined;
    if (snapDir && !exited) heapSnapshot = await takeHeapSnapshot(server, snapDir, notes);
    if (exited) {
      notes.push(`the server exited during the run (${exited}); last lines of its log: ${server.tail.slice(-5).join(" | ")}`);
      for (const fw of workers) fw.abort();
    }
    await triggering;
    await Promise.race([Promise.allSettled(calls), sleep(15_000)]);
    clearInterval(sampler);
    log(`N=${n}: window over; the agents stop in 5 s and drain (≤ ${opts.drain} s)`);
    const settled = await pending;
    const reports: FleetRunReport[] = [];
    for (const s of settled) {
      if (s.status === "fulfilled") reports.push(s.value);
      else notes.push(`a generator worker failed: ${(s.reason as Error).message}`);
    }
    const cat = <K extends "ackAt" | "ackMs" | "ackSamples" | "closeAt" | "closeMs" | "legacyAt" | "legacyMs" | "legacySamples" | "madeAt" | "madeSamples">(k: K) => reports.flatMap((r) => r[k]);
    const sum = (k: keyof Result["counters"]) => reports.reduce((s, r) => s + (r[k] as number), 0);
    const ackSamples = inWindow(cat("ackAt"), cat("ackSamples"), t0, t1);
    const legacySamples = inWindow(cat("legacyAt"), cat("legacySamples"), t0, t1);
    const delivery = summarizeDelivery(triggers, reports.flatMap((r) => r.arrivals));
    if (skipped > 0) notes.push(`${skipped} triggers skipped: 200 trigger calls were still waiting for the server`);
    const errors = mergeErrors([...inits.map((i) => i.errors), ...reports.map((r) => r.errors), mainErrors.summary()]);
    // per worker, errors accumulate over init and run: the run report already holds the init ones
    const runErrors = reports.length === workers.length ? mergeErrors([...reports.map((r) => r.errors), mainErrors.summary()]) : errors;
    const counters = {
      sentBatches: sum("sentBatches"),
      resentBatches: sum("resentBatches"),
      rejectedBatches: sum("rejectedBatches"),
      duplicateBatches: sum("duplicateBatches"),
      unackedAtEnd: sum("unackedAtEnd"),
      streams: sum("streams"),
      pollConnects: sum("pollConnects"),
      resultsDelivered: sum("resultsDelivered"),
      legacyPosts: sum("legacyPosts"),
      legacyPolls: sum("legacyPolls"),
      connectionsOpened: sum("connectionsOpened"),
    };
    const windowS = measured ? opts.seconds : Number.NaN;
    const result: Result = {
      agents: n,
      idleMiB,
      connectAgents: connectHosts.length,
      legacyAgents,
      enrollFailures,
      enrollS,
      windowS,
      serverCpuPct,
      genCpuPct,
      otherCpuPct,
      rssMiB: mem.rss,
      peakMiB: mem.peak,
      maxRssInWindowMiB: maxRssInWindow,
      rssTimeline,
      ...(memory ? { memory } : {}),
      ...(memoryWindow ? { memoryWindow } : {}),
      ...(heapSnapshot ? { heapSnapshot } : {}),
      samplesPerSec: (ackSamples.reduce((a, b) => a + b, 0) + legacySamples.reduce((a, b) => a + b, 0)) / opts.seconds,
      madeSamplesPerSec: inWindow(cat("madeAt"), cat("madeSamples"), t0, t1).reduce((a, b) => a + b, 0) / opts.seconds,
      legacySamplesPerSec: legacySamples.reduce((a, b) => a + b, 0) / opts.seconds,
      batchesPerSec: (ackSamples.length + legacySamples.length) / opts.seconds,
      // 12.3 samples/s per agent at the default intervals (fleet.ts: 1,062,504 per day)
      expectedSamplesPerSec: ((connectHosts.length + legacyAgents) * 1_062_504) / 86_400,
      ack: latencyStats(inWindow(cat("ackAt"), cat("ackMs"), t0, t1)),
      close: latencyStats(inWindow(cat("closeAt"), cat("closeMs"), t0, t1)),
      legacy: latencyStats(inWindow(cat("legacyAt"), cat("legacyMs"), t0, t1)),
      trigger: latencyStats(triggerMs),
      delivery: { ...delivery, ...latencyStats(delivery.latencies) },
      counters,
      errors: runErrors,
      notes,
    };
    if (exited) result.serverExit = exited;
    for (const fw of workers) await fw.close();
    workers.length = 0;
    adminSession.abort();
    adminSession = undefined;
    log(`N=${n}: stopping the server (SIGTERM)`);
    const stop = await stopChild(server, 180_000);
    result.stop = { how: stop.how, ms: stop.ms };
    if (profDir) {
      const f = readdirSync(profDir).filter((x) => x.endsWith(".cpuprofile"));
      if (f.length > 0) result.profile = summarizeProfile(join(profDir, f[0]!), [], 20);
    }
    return result;
  } finally {
    for (const fw of workers) {
      fw.abort();
      await fw.close();
    }
    adminSession?.abort();
    await stopChild(server, 30_000);
    if (db) await db.drop().catch(() => undefined);
  }
}

/** SIGUSR2 to a server started with --heapsnapshot-signal; waits (≤ 180 s) until the snapshot file stops growing. */
async function takeHeapSnapshot(server: Child, snapDir: string, notes: string[]): Promise<string | undefined> {
  log("  heap snapshot of the server (SIGUSR2)");
  server.proc.kill("SIGUSR2");
  const deadline = Date.now() + 180_000;
  let last = -1;
  while (Date.now() < deadline) {
    await sleep(2_000);
    const f = readdirSync(snapDir).find((x) => x.endsWith(".heapsnapshot"));
    if (!f) continue;
    const path = join(snapDir, f);
    const size = existsSync(path) ? statSync(path).size : 0;
    // V8 writes the snapshot in one go on the main thread: a size that held for 2 s is the whole file
    if (size > 0 && size === last) return path;
    last = size;
  }
  notes.push("the heap snapshot did not finish within 180 s");
  return undefined;
}

function ms(x: number): string {
  if (!Number.isFinite(x)) return "–";
  return x < 10 ? fmt(x, 1) : fmt(x);
}

function report(r: Result): string {
  const lines: string[] = [];
  const d = r.delivery;
  lines.push(`#### N = ${fmt(r.agents)} (${fmt(r.connectAgents)} Connect agents, ${fmt(r.legacyAgents)} legacy REST senders)`);
  lines.push("");
  lines.push("| measure | value |");
  lines.push("|---|---:|");
  lines.push(`| enrolled and registered (Enroll + Register, ${opts.enrollConcurrency} at a time) | ${fmt(r.enrollS, 1)} s${r.enrollFailures ? `, ${fmt(r.enrollFailures)} failed` : ""} |`);
  lines.push(`| server CPU (all threads, % of one core) | ${fmt(r.serverCpuPct)} % |`);
  lines.push(`| server RSS at the end of the window (peak of the process) | ${fmt(r.rssMiB)} MiB (${fmt(r.peakMiB)} MiB) |`);
  const grown = r.rssMiB - r.idleMiB;
  lines.push(`| server RSS above the idle server's (${fmt(r.idleMiB)} MiB), per agent / per series | ${fmt((grown * 1024) / r.agents)} KiB / ${fmt((grown * 1024) / (r.agents * SERIES_PER_AGENT), 1)} KiB |`);
  if (r.memory) {
    const m = r.memory;
    const mib = (b: number) => fmt(b / 2 ** 20);
    const native = m.anonymous - m.heapTotal - m.external;
    lines.push(
      `| server memory split: V8 heap used / committed · external (ArrayBuffers) · other native · file-backed | ${mib(m.heapUsed)} / ${mib(m.heapTotal)} · ${mib(m.external)} (${mib(m.arrayBuffers)}) · ${mib(native)} · ${mib(m.file)} MiB |`,
    );
    const w = r.memoryWindow;
    if (w) lines.push(`| over the window: least V8 heap in use (≈ live after a full GC) / most committed / most external | ${mib(w.heapUsedMin)} / ${mib(w.heapTotalMax)} / ${mib(w.externalMax)} MiB |`);
  }
  lines.push(`| samples/s stored (acknowledged; legacy 202s included) | ${fmt(r.samplesPerSec)} (of ${fmt(r.expectedSamplesPerSec)} per second at the default intervals; made by the simulated agents in the window ${fmt(r.madeSamplesPerSec)}; legacy ${fmt(r.legacySamplesPerSec)}) |`);
  lines.push(`| batches/s acknowledged | ${fmt(r.batchesPerSec)} |`);
  lines.push(`| ack latency, batch sent → acknowledged (30 s windows) p50 / p99 / max | ${ms(r.ack.p50)} / ${ms(r.ack.p99)} / ${ms(r.ack.max)} ms (${fmt(r.ack.n)} batches) |`);
  lines.push(`| stream half-close → response p50 / p99 / max | ${ms(r.close.p50)} / ${ms(r.close.p99)} / ${ms(r.close.max)} ms (${fmt(r.close.n)} streams) |`);
  lines.push(`| legacy POST /api/v1/metrics → 202 p50 / p99 / max | ${ms(r.legacy.p50)} / ${ms(r.legacy.p99)} / ${ms(r.legacy.max)} ms (${fmt(r.legacy.n)}) |`);
  lines.push(`| command delivery, trigger → agent has it p50 / p99 / max | **${ms(d.p50)} / ${ms(d.p99)}** / ${ms(d.max)} ms |`);
  lines.push(`| triggers: sent / delivered / lost / duplicated / failed calls | ${fmt(d.triggered)} / ${fmt(d.delivered)} / ${fmt(d.lost)} / ${fmt(d.duplicates)} / ${fmt(d.failedTriggers)} |`);
  lines.push(`| trigger call (TriggerListMounts) p50 / p99 | ${ms(r.trigger.p50)} / ${ms(r.trigger.p99)} ms |`);
  lines.push(`| command results delivered (whole run) | ${fmt(r.counters.resultsDelivered)} |`);
  lines.push(`| errors (whole run, all kinds) | ${fmt(r.errors.total)} |`);
  lines.push(`| generator CPU (this process, all threads) / other processes | ${fmt(r.genCpuPct)} % / ${fmt(r.otherCpuPct)} % |`);
  lines.push(
    `| batches sent / re-sent / not acknowledged at the end (spooled or in flight) / duplicates / rejected | ${fmt(r.counters.sentBatches)} / ${fmt(r.counters.resentBatches)} / ${fmt(r.counters.unackedAtEnd)} / ${fmt(r.counters.duplicateBatches)} / ${fmt(r.counters.rejectedBatches)} |`,
  );
  lines.push(`| server stop (SIGTERM) | ${r.stop ? `${fmt(r.stop.ms / 1000, 1)} s (${r.stop.how})` : "–"} |`);
  lines.push("");
  lines.push(`Server RSS over the run (s: MiB): ${r.rssTimeline.map(([s, m]) => `${s}: ${fmt(m)}`).join(", ")}.`);
  for (const [kind, k] of Object.entries(r.errors.byKind)) {
    lines.push(`- ${kind}: ${fmt(k.count)} — ${k.first.map(([m, c]) => `"${m}" ×${c}`).join("; ")}`);
  }
  for (const note of r.notes) lines.push(`- ${note}`);
  if (r.heapSnapshot) lines.push(`- heap snapshot of the server at the end of the window: ${r.heapSnapshot}`);
  if (r.profile) {
    lines.push("");
    lines.push(`Server CPU profile (main thread, ${fmt(r.profile.totalMs / 1000, 1)} s, idle ${fmt((r.profile.idleMs / r.profile.totalMs) * 100)} %, GC ${fmt(r.profile.gcMs / 1000, 1)} s); self time, top files:`);
    for (const f of r.profile.files.slice(0, 12)) lines.push(`- ${f.name}: ${fmt(f.share * 100, 1)} %`);
    lines.push("Top functions:");
    for (const f of r.profile.functions.slice(0, 12)) lines.push(`- ${f.name}: ${fmt(f.share * 100, 1)} %`);
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "spectra-fleet-"));
  const unhook = onInterrupt(() => {
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  });
  log(
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${fmt(totalmem() / 1024 ** 3)} GiB, Linux ${release()}, Node ${process.version}; ` +
      `agents ${opts.agents.join(", ")}, legacy share ${opts.legacyShare}, warm-up ${opts.warmup} s, window ${opts.seconds} s, trigger every ${opts.triggerMs} ms; temp ${dir}`,
  );
  const results: Result[] = [];
  try {
    for (const n of opts.agents) {
      await waitQuiet(`N=${n}`, opts.quietWait, log);
      const started = new Date().toISOString();
      try {
        const r = await runOne(n, dir);
        results.push(r);
        process.stdout.write(`\n${report(r)}\n\n(${started} – ${new Date().toISOString()})\n\n`);
      } catch (err) {
        log(`N=${n}: FAILED: ${(err as Error).stack ?? String(err)}`);
      }
      if (opts.out) writeFileSync(opts.out, JSON.stringify(results, null, 1));
    }
  } finally {
    unhook();
    if (opts.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

await main();
