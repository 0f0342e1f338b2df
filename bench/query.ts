/**
 * History query latency (issue 6, "Performance") on a store holding at least 7 days of 1,000 hosts, SQLite and
 * PostgreSQL.
 *
 *   npm run bench:query -- [--quick] [--targets sqlite,postgres] [--hosts 1000] [--raw-days 7] [--rollup-days 30]
 *        [--runs 200] [--workers 2] [--keep] [--sqlite-file <query.db kept by --keep>] [--quiet-wait 180]
 *
 * Build: not through HTTP. Worker threads compute each host's rows with the server's codec and rollup code
 * (lib/query-store.ts: the chunk and rollup rows, watermarks and rollup horizon the engine's flushes write for the
 * same samples), and the main thread stores them through the Store API (ensureSeries + one commitFlush per host),
 * into a fresh SQLite file in a temp dir or a fresh PostgreSQL database.
 *
 * Queries: the store is closed and opened again, a TsdbEngine opened on it (loads the series, no background jobs)
 * and createHistoryService over both, as the server does. Each query runs `runs` times (after 5 warm-up runs) for a
 * host drawn at random each time; wall time per call (performance.now) gives median, p99 and max:
 *   (a) cpu.usage of one host, last 24 h at 1-minute steps (avg)     goal < 20 ms
 *   (b) cpu.usage of one host, last 30 days, automatic step (avg)    goal < 50 ms
 *   (c) latest cpu.usage of every host (1,000 series)                goal < 100 ms
 * The OS page cache is warm (the store was just written); the engine's own caches are whatever it keeps.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { statfsSync } from "node:fs";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { createLogger } from "../common/logger.js";
import { createHistoryService, type HistoryService } from "../server/history/history-service.js";
import { openPostgresStore } from "../server/store/postgres/postgres-store.js";
import { openSqliteStore } from "../server/store/sqlite/sqlite-store.js";
import type { ChunkRow, RollupRow, Store } from "../server/store/store.js";
import { TsdbEngine } from "../server/tsdb/engine.js";
import { createBenchDatabase, databaseSizes, postgresProblem, type BenchDatabase } from "./lib/pg.js";
import { PerformanceObserver } from "node:perf_hooks";
import { argNumber, argValue, cpuSeconds, fmt, hasFlag, median, onInterrupt, percentile, systemBusySeconds, waitQuiet } from "./lib/proc.js";
import { DAY, HOUR, hostName, QUERY_SERIES, type BuildSpec, type HostRows } from "./lib/query-store.js";
import { prng } from "../common/prng.js";
import { openReadOnly, sqliteSpace } from "./lib/sqlite-size.js";

const quick = hasFlag("quick");
const opts = {
  hosts: argNumber("hosts", quick ? 100 : 1_000),
  rawDays: argNumber("raw-days", 7),
  rollupDays: argNumber("rollup-days", 30),
  runs: argNumber("runs", quick ? 50 : 200),
  workers: argNumber("workers", 2),
  keep: hasFlag("keep"),
  /** Query an SQLite store built by an earlier run (with --keep) instead of building one. */
  sqliteFile: argValue("sqlite-file"),
  targets: (argValue("targets") ?? "sqlite,postgres").split(",").map((s) => s.trim()),
};
const logger = createLogger({ name: "bench-query", level: "warn" });

function log(msg: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

interface BuildResult {
  ms: number;
  samples: number;
  chunks: number;
  rollups1m: number;
  rollups1h: number;
  series: number;
}

/** Builds the store: workers compute hosts' rows, the main thread commits them (at most 2 hosts queued per worker). */
async function build(store: Store, spec: BuildSpec, label: string): Promise<BuildResult> {
  const t0 = performance.now();
  const workers = Array.from({ length: Math.max(1, opts.workers) }, () => new Worker(join(import.meta.dirname, "lib", "query-build-worker.js")));
  const res: BuildResult = { ms: 0, samples: 0, chunks: 0, rollups1m: 0, rollups1h: 0, series: 0 };
  try {
    let next = 0;
    const ready: HostRows[] = [];
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    let inFlight = 0;
    const ask = (w: Worker) => {
      if (next >= spec.hosts) return;
      const host = next++;
      inFlight++;
      w.postMessage({ spec, host });
    };
    for (const w of workers) {
      w.on("message", (m: { ok: boolean; rows?: HostRows; error?: string }) => {
        inFlight--;
        if (!m.ok) failure = new Error(`build worker: ${m.error}`);
        else ready.push(m.rows!);
        ask(w);
        wake?.();
      });
      w.on("error", (e) => {
        failure = e;
        wake?.();
      });
      ask(w);
      ask(w);
    }
    let done = 0;
    let lastLog = performance.now();
    while (done < spec.hosts) {
      if (failure) throw failure;
      const rows = ready.shift();
      if (!rows) {
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
        continue;
      }
      await commitHost(store, spec, rows, res);
      done++;
      if (performance.now() - lastLog > 5_000 || done === spec.hosts) {
        lastLog = performance.now();
        const el = (performance.now() - t0) / 1000;
        log(`${label}: ${done}/${spec.hosts} hosts, ${fmt(res.samples / 1e6, 1)} M samples, ${fmt(el, 0)} s (≈ ${fmt((el / done) * (spec.hosts - done), 0)} s left)`);
      }
    }
    if (inFlight > 0) throw new Error("workers still busy after the last host");
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  res.ms = performance.now() - t0;
  return res;
}

async function commitHost(store: Store, spec: BuildSpec, r: HostRows, res: BuildResult): Promise<void> {
  const hostname = hostName(r.host);
  const ids = await store.ensureSeries(QUERY_SERIES.map((s) => ({ hostname, metric: s.metric, labels: s.labels })));
  const data = r.data;
  const chunks: ChunkRow[] = [];
  for (let i = 0; i < r.chunks.length; i += 6) {
    const c = r.chunks;
    chunks.push({ seriesId: ids[c[i]!]!, minT: c[i + 1]!, maxT: c[i + 2]!, count: c[i + 3]!, data: data.subarray(c[i + 4]!, c[i + 4]! + c[i + 5]!) });
  }
  const rollups: RollupRow[] = [];
  for (let i = 0; i < r.rollups.length; i += 5) {
    const x = r.rollups;
    const tier = x[i] === 0 ? "1m" : "1h";
    rollups.push({ tier, seriesId: ids[x[i + 1]!]!, windowStart: x[i + 2]!, data: data.subarray(x[i + 3]!, x[i + 3]! + x[i + 4]!) });
    if (tier === "1m") res.rollups1m++;
    else res.rollups1h++;
  }
  const horizon = Math.floor((spec.nowMs - 120_000) / HOUR) * HOUR;
  await store.commitFlush({
    chunks,
    rollups,
    flushed: ids.map((seriesId, i) => ({ seriesId, walId: 0, lastT: r.last[i * 2]!, lastV: r.last[i * 2 + 1]! })),
    meta: { rollup_horizon: String(horizon) },
  });
  res.samples += r.samples;
  res.chunks += chunks.length;
  res.series += ids.length;
}

interface QueryStats {
  name: string;
  goalMs: number;
  medianMs: number;
  p99Ms: number;
  maxMs: number;
  firstMs: number;
  detail: string;
  /** GC pauses and the machine's other load during the timed runs. */
  noise: string;
}

async function timeQuery(name: string, goalMs: number, fn: (rnd: () => number) => Promise<string>): Promise<QueryStats> {
  const rnd = prng(42);
  const t = performance.now();
  let detail = await fn(rnd);
  const firstMs = performance.now() - t;
  for (let i = 0; i < 5; i++) await fn(rnd);
  const times: number[] = [];
  const gcs: Array<{ start: number; duration: number }> = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, duration: e.duration });
  });
  obs.observe({ entryTypes: ["gc"] });
  const spans: Array<[number, number]> = [];
  const own0 = cpuSeconds(process.pid);
  const sys0 = systemBusySeconds();
  const w0 = performance.now();
  for (let i = 0; i < opts.runs; i++) {
    const s = performance.now();
    detail = await fn(rnd);
    const e = performance.now();
    times.push(e - s);
    spans.push([s, e]);
  }
  const wall = (performance.now() - w0) / 1000;
  const other = Math.max(0, ((systemBusySeconds() - sys0 - (cpuSeconds(process.pid) - own0)) / wall) * 100);
  await new Promise((r) => setTimeout(r, 50)); // gc entries arrive asynchronously
  obs.disconnect();
  // runs above the 95th percentile that overlapped a garbage collection
  const p95 = percentile(times, 95);
  let slowWithGc = 0;
  let slow = 0;
  spans.forEach(([s, e], i) => {
    if (times[i]! <= p95) return;
    slow++;
    if (gcs.some((g) => g.start < e && g.start + g.duration > s)) slowWithGc++;
  });
  const gcMs = gcs.reduce((a, g) => a + g.duration, 0);
  return {
    name,
    goalMs,
    medianMs: median(times),
    p99Ms: percentile(times, 99),
    maxMs: Math.max(...times),
    firstMs,
    detail,
    noise: `GC ${fmt(gcMs, 0)} ms in ${gcs.length} pauses (max ${fmt(Math.max(0, ...gcs.map((g) => g.duration)), 1)} ms); ${slowWithGc} of the ${slow} runs above p95 overlapped a GC; other processes ${fmt(other)} % CPU (PostgreSQL's server included)`,
  };
}

async function runQueries(history: HistoryService, nowMs: number, hosts: number): Promise<QueryStats[]> {
  const host = (rnd: () => number) => hostName(Math.floor(rnd() * hosts));
  const out: QueryStats[] = [];
  out.push(
    await timeQuery("(a) one series, 24 h at 1-minute steps", 20, async (rnd) => {
      const r = await history.queryRange({ metric: "cpu.usage", hostname: host(rnd), matchers: [], startMs: nowMs - DAY, endMs: nowMs, stepMs: 60_000, aggregation: "avg" });
      return `tier ${r.tier}, step ${r.stepMs / 1000} s, ${r.series.length} series, ${r.series[0]?.times.length ?? 0} points`;
    }),
  );
  out.push(
    await timeQuery("(b) one series, 30 days, automatic step", 50, async (rnd) => {
      const r = await history.queryRange({ metric: "cpu.usage", hostname: host(rnd), matchers: [], startMs: nowMs - 30 * DAY, endMs: nowMs, aggregation: "avg" });
      return `tier ${r.tier}, step ${r.stepMs / 3_600_000} h, ${r.series.length} series, ${r.series[0]?.times.length ?? 0} points`;
    }),
  );
  out.push(
    await timeQuery("(c) one metric across all hosts, latest", 100, async () => {
      const r = history.latest({ metric: "cpu.usage", matchers: [] });
      return `${r.length} series`;
    }),
  );
  return out;
}

interface TargetResult {
  label: string;
  build: BuildResult;
  sizeBytes: number;
  sizeNote: string;
  openMs: number;
  queries: QueryStats[];
}

async function runTarget(kind: "sqlite" | "postgres", dir: string, spec: BuildSpec): Promise<TargetResult> {
  let db: BenchDatabase | undefined;
  const sqlitePath = opts.sqliteFile ?? join(dir, "query.db");
  const open = async (): Promise<Store> => (kind === "sqlite" ? openSqliteStore(sqlitePath) : openPostgresStore(db!.url, { instanceId: "bench-query", logger }));
  try {
    let baseline = 0;
    if (kind === "postgres") {
      db = await createBenchDatabase("spectra_bench_query");
      baseline = (await databaseSizes(db.url, db.name)).total;
      log(`postgres: database ${db.name}`);
    }
    let store = await open();
    let buildRes: BuildResult;
    if (kind === "sqlite" && opts.sqliteFile) {
      await store.close();
      const db = openReadOnly(sqlitePath);
      try {
        const n = (sql: string) => Number((db.prepare(sql).get() as { n: number }).n);
        buildRes = {
          ms: Number.NaN,
          samples: n("SELECT sum(count) AS n FROM chunks"),
          chunks: n("SELECT count(*) AS n FROM chunks"),
          rollups1m: n("SELECT count(*) AS n FROM rollups WHERE tier = '1m'"),
          rollups1h: n("SELECT count(*) AS n FROM rollups WHERE tier = '1h'"),
          series: n("SELECT count(*) AS n FROM series"),
        };
      } finally {
        db.close();
      }
      log(`sqlite: using ${sqlitePath} (built earlier)`);
    } else {
      buildRes = await build(store, spec, kind);
      await store.close();
    }
    let sizeBytes: number;
    let sizeNote: string;
    if (kind === "sqlite") {
      const f = sqlitePath;
      sizeBytes = statSync(f).size + (existsSync(`${f}-wal`) ? statSync(`${f}-wal`).size : 0);
      const db = openReadOnly(f);
      try {
        const space = sqliteSpace(db);
        sizeNote = `file + -wal; ${space.tables.slice(0, 4).map((t) => `${t.name} ${fmt(t.bytes / 1e6)} MB`).join(", ")}`;
      } finally {
        db.close();
      }
    } else {
      const s = await databaseSizes(db!.url, db!.name);
      sizeBytes = s.total - baseline;
      sizeNote = `pg_database_size minus the empty database (${fmt(baseline / 1e6, 1)} MB); ${s.tables.slice(0, 4).map((t) => `${t.name} ${fmt(t.bytes / 1e6)} MB`).join(", ")}`;
    }
    log(`${kind}: built in ${fmt(buildRes.ms / 1000, 1)} s, ${fmt(sizeBytes / 1e9, 2)} GB`);
    store = await open();
    try {
      const t = performance.now();
      const tsdb = await TsdbEngine.open(store, logger, {}, false);
      const openMs = performance.now() - t;
      const history = createHistoryService({ store, tsdb, clock: Date.now });
      await waitQuiet(`${kind} queries`, argNumber("quiet-wait", 180), log);
      log(`${kind}: engine opened in ${fmt(openMs)} ms (${tsdb.size} series); querying, ${opts.runs} runs each`);
      const queries = await runQueries(history, Date.now(), spec.hosts);
      return { label: kind === "sqlite" ? "SQLite" : "PostgreSQL 15", build: buildRes, sizeBytes, sizeNote, openMs, queries };
    } finally {
      await store.close();
    }
  } finally {
    if (db) await db.drop().catch((e: unknown) => log(`could not drop ${db!.name}: ${(e as Error).message}`));
  }
}

function print(results: TargetResult[], spec: BuildSpec): void {
  const lines: string[] = [""];
  const b = results[0]?.build;
  if (b) {
    lines.push(
      `Store: ${spec.hosts} hosts × ${QUERY_SERIES.length} series (${QUERY_SERIES.map((s) => `${s.metric}${s.labels ? `{${s.labels}}` : ""} every ${s.intervalMs / 1000} s`).join(", ")}); raw samples from ${new Date(Math.floor((spec.nowMs - spec.rawDays * DAY) / DAY) * DAY).toISOString().slice(0, 10)} 00:00 UTC to now (${fmt(b.samples / 1e6, 1)} M samples in ${fmt(b.chunks)} chunks), 1-minute rollups for the same period (${fmt(b.rollups1m)} rows), 1-hour rollups for ${spec.rollupDays} days (${fmt(b.rollups1h)} rows).`,
    );
  }
  lines.push("");
  lines.push("| store | build | size | bytes per raw sample (whole store) | engine open |");
  lines.push("|---|---:|---:|---:|---:|");
  for (const r of results) lines.push(`| ${r.label} | ${fmt(r.build.ms / 1000, 1)} s | ${fmt(r.sizeBytes / 1e9, 2)} GB | ${fmt(r.sizeBytes / r.build.samples, 2)} | ${fmt(r.openMs)} ms |`);
  for (const r of results) lines.push(`- ${r.label} size: ${r.sizeNote}.`);
  lines.push("");
  lines.push(`| query | store | median ms | p99 ms | max ms | first call ms | goal | met | answer |`);
  lines.push("|---|---|---:|---:|---:|---:|---:|:-:|---|");
  for (let i = 0; i < (results[0]?.queries.length ?? 0); i++) {
    for (const r of results) {
      const q = r.queries[i]!;
      lines.push(`| ${q.name} | ${r.label} | ${fmt(q.medianMs, 2)} | ${fmt(q.p99Ms, 2)} | ${fmt(q.maxMs, 2)} | ${fmt(q.firstMs, 1)} | < ${q.goalMs} | ${q.p99Ms < q.goalMs ? "yes" : q.medianMs < q.goalMs ? "median only" : "NO"} | ${q.detail} |`);
    }
  }
  lines.push("");
  for (const r of results) for (const q of r.queries) lines.push(`- ${q.name}, ${r.label}: ${q.noise}.`);
  lines.push("");
  lines.push(`${opts.runs} timed runs per query after 5 warm-up runs, a random host per run; "first call" is the first query of its kind after the engine opened.`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function main(): Promise<void> {
  const targets = [...opts.targets];
  if (targets.includes("postgres")) {
    const problem = await postgresProblem();
    if (problem) {
      log(`PostgreSQL not usable (${problem}): skipping it`);
      targets.splice(targets.indexOf("postgres"), 1);
    }
  }
  const fs = statfsSync(tmpdir());
  const freeGB = (fs.bavail * fs.bsize) / 1e9;
  const needGB = (opts.hosts / 1000) * (opts.rawDays / 7) * 3.6;
  log(`machine: ${cpus().length} × ${cpus()[0]?.model.trim()}, ${fmt(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}`);
  log(`${opts.hosts} hosts, ${opts.rawDays} days raw, ${opts.rollupDays} days of 1-hour rollups; ${tmpdir()} has ${fmt(freeGB, 1)} GB free, the SQLite store needs about ${fmt(needGB, 1)} GB`);
  if (!opts.sqliteFile && freeGB < needGB * 1.3) throw new Error(`not enough free space in ${tmpdir()} (set TMPDIR elsewhere or pass --hosts smaller)`);
  const dir = mkdtempSync(join(tmpdir(), "spectra-bench-query-"));
  if (!opts.keep) onInterrupt(() => rmSync(dir, { recursive: true, force: true }));
  const spec: BuildSpec = { hosts: opts.hosts, rawDays: opts.rawDays, rollupDays: opts.rollupDays, nowMs: Date.now() };
  const results: TargetResult[] = [];
  try {
    for (const t of targets) {
      if (t !== "sqlite" && t !== "postgres") throw new Error(`unknown target ${t} (sqlite, postgres)`);
      results.push(await runTarget(t, dir, spec));
      if (t === "sqlite" && !opts.keep && !opts.sqliteFile) rmSync(join(dir, "query.db"), { force: true });
    }
    print(results, spec);
  } finally {
    if (opts.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:query failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
