/**
 * Memory the time-series head holds per series: live JavaScript heap and external (ArrayBuffer) bytes after a full
 * GC, with `--hosts` simulated agents' payload (bench/lib/fleet.ts, 139 series per host with the per-core and
 * per-device ones) appended through the real ingest service into a real SQLite store, before and after a head flush.
 *
 *   npm run bench:head-memory -- [--hosts 1000] [--ticks 20]
 *
 * Runs in this process (no HTTP), with --expose-gc (the npm script passes it). The figures are live data, not RSS:
 * what the server keeps per series, without the heap growth between collections that RSS also shows.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../common/logger.js";
import { createIngestService } from "../server/ingest/ingest-service.js";
import { openSqliteStore } from "../server/store/sqlite/sqlite-store.js";
import { TsdbEngine } from "../server/tsdb/engine.js";
import { SimAgent } from "./lib/fleet.js";
import { argNumber, fmt } from "./lib/proc.js";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error("run with node --expose-gc (npm run bench:head-memory does)");
  process.exit(2);
}
const hosts = argNumber("hosts", 1000);
const ticks = argNumber("ticks", 20);
const dir = mkdtempSync(join(tmpdir(), "spectra-head-memory-"));
try {
  const store = openSqliteStore(join(dir, "spectra.db"));
  const tsdb = TsdbEngine.fresh(store, silentLogger());
  const ingest = createIngestService({ store, tsdb, logger: silentLogger(), clock: Date.now });
  const agents = Array.from({ length: hosts }, (_, i) => new SimAgent(i, Date.now() - 3_600_000));
  const measure = () => {
    gc();
    gc();
    const m = process.memoryUsage();
    return { heap: m.heapUsed, external: m.external };
  };
  const base = measure();
  for (let k = 0; k < ticks; k++) {
    await Promise.all(
      agents.map((a) => {
        const b = a.nextBatch(0);
        return ingest.ingest({ hostname: b.hostname, sessionId: b.sessionId, sequence: b.sequence, envelopes: b.envelopes, collectorStatus: b.collectorStatus });
      }),
    );
  }
  const before = measure();
  await tsdb.flush();
  const after = measure();
  const n = tsdb.size;
  const per = (m: { heap: number; external: number }) =>
    `heap ${fmt((m.heap - base.heap) / n)} B + external ${fmt((m.external - base.external) / n)} B = ${fmt((m.heap + m.external - base.heap - base.external) / n)} B per series`;
  console.log(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${fmt(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}.`);
  console.log(`${hosts} hosts × ${ticks} ticks of 5 s: ${n} series in the head.`);
  console.log(`before the flush (chunks and latest envelopes since the last one held): ${per(before)}`);
  console.log(`after the flush: ${per(after)}`);
  await store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
