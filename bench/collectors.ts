/**
 * Latency of one collector run against the REAL host (/proc, /sys, statfs), the way the agent runs them: spaced
 * out in time (default 200 ms apart, interleaved between collectors), never back to back, so caches and the CPU
 * are as cold as they are every 5 s in production. Prints a markdown table of median and p90 per run in µs (disk
 * also per mount) against the targets of the issue, and each median's excess over the floor of the same run.
 *
 * Why the floor matters: on a VM the first system call after an idle period is much slower than the next ones
 * (the vCPU's caches and TLB are cold, and wake-up and exit costs land on that call), so spaced runs include a
 * fixed cost that is this machine's, not the collector's. "floor" measures it: the cheapest possible collector,
 * one pread of /proc/loadavg into a kept buffer, spaced the same way. "above floor" is what the collector itself
 * adds; `--gap-ms 0` (back to back, warm) shows the same from the other side.
 *
 * Run: `npm run bench:collectors -- [options]` (builds dist/ first; plain Node 20, no tsx).
 * Options: --runs 50, --gap-ms 200 (0 = back to back, for warm numbers), --warmup 5, --only cpu,disk.
 */
import { cpus, release, totalmem } from "node:os";
import { silentLogger } from "../common/logger.js";
import { collectorRegistry, type CollectorName } from "../agent/collectors/registry.js";
import { NO_DATA, type Collector } from "../agent/collectors/types.js";
import { createHostAccess } from "../agent/host/index.js";
import { ProcFile } from "../agent/host/proc-file.js";

/** Targets from the issue, µs per run (disk: per mount). */
const TARGET_US: Partial<Record<CollectorName, number>> = {
  cpu: 30,
  memory: 40,
  disk: 50,
  disk_io: 40,
  network: 40,
  system: 200,
};

interface Args {
  runs: number;
  gapMs: number;
  warmup: number;
  only: CollectorName[] | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { runs: 50, gapMs: 200, warmup: 5, only: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === "--runs" && v) (args.runs = Number(v)), i++;
    else if (a === "--gap-ms" && v) (args.gapMs = Number(v)), i++;
    else if (a === "--warmup" && v) (args.warmup = Number(v)), i++;
    else if (a === "--only" && v) (args.only = v.split(",") as CollectorName[]), i++;
    else throw new Error(`unknown argument ${a ?? ""}`);
  }
  return args;
}

/** Waits `ms`; 0 means back to back (one event-loop turn), for warm numbers to compare with. */
const sleep = (ms: number): Promise<void> =>
  new Promise((r) => (ms > 0 ? setTimeout(r, ms) : setImmediate(r)));

/**
 * The floor of this machine: the cheapest possible "collector" (one pread of /proc/loadavg into a kept buffer),
 * measured the same way. On a VM the first system call after an idle period is much slower than the next ones.
 */
function floorCollector(): Collector {
  const f = new ProcFile("/proc/loadavg", 256);
  return {
    async collect() {
      f.read();
      return [];
    },
    close: () => f.close(),
  };
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

interface Series {
  name: CollectorName | "floor";
  collector: Collector;
  samplesUs: number[];
  items: number;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const host = createHostAccess();
  const names = (args.only ?? (Object.keys(collectorRegistry) as CollectorName[])).filter((n) => n in TARGET_US);
  const series: Series[] = [{ name: "floor", collector: floorCollector(), samplesUs: [], items: 0 }];
  for (const name of names) {
    const def = (await collectorRegistry[name]()).default;
    const collector = await def.create({ host, logger: silentLogger(), options: {} });
    series.push({ name, collector, samplesUs: [], items: 0 });
  }
  const signal = new AbortController().signal;
  const slot = args.gapMs / Math.max(1, series.length);

  for (let round = 0; round < args.warmup + args.runs; round++) {
    for (const s of series) {
      await sleep(slot);
      const t0 = process.hrtime.bigint();
      const out = await s.collector.collect(signal);
      const us = Number(process.hrtime.bigint() - t0) / 1000;
      if (round >= args.warmup) {
        s.samplesUs.push(us);
        s.items = out === NO_DATA ? 0 : out.length;
      }
    }
  }
  for (const s of series) await s.collector.close?.();

  const floorSeries = series.find((x) => x.name === "floor");
  const floorMed = floorSeries ? quantile([...floorSeries.samplesUs].sort((a, b) => a - b), 0.5) : Number.NaN;
  const lines = [
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${host.platform} ${release()}, ` +
      `Node ${process.version}; ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC.`,
    `Collector latency: ${args.runs} runs each, ` +
      `${args.gapMs > 0 ? `${args.gapMs} ms apart` : "back to back"} (after ${args.warmup} warm-up runs), µs per run. ` +
      `"floor" is one pread of /proc/loadavg measured the same way; "above floor" is the median minus the floor's ` +
      `median (disk: per mount), the part that is the collector's own work rather than this machine's wake-up cost.`,
    "",
    "| collector | items | median µs | p90 µs | per item (median / p90) | above floor µs | × floor | target µs | within |",
    "|---|---:|---:|---:|---:|---:|---:|---:|:-:|",
  ];
  for (const s of series) {
    const sorted = [...s.samplesUs].sort((a, b) => a - b);
    const med = quantile(sorted, 0.5);
    const p90 = quantile(sorted, 0.9);
    const perItem = s.name === "disk" && s.items > 0;
    const compared = perItem ? med / s.items : med;
    const target = s.name === "floor" ? undefined : TARGET_US[s.name];
    const above = s.name === "floor" ? "–" : ((med - floorMed) / (perItem ? s.items : 1)).toFixed(1);
    lines.push(
      `| ${s.name} | ${s.items} | ${med.toFixed(1)} | ${p90.toFixed(1)} | ` +
        `${perItem ? `${(med / s.items).toFixed(1)} / ${(p90 / s.items).toFixed(1)} per mount` : "–"} | ` +
        `${above} | ${(med / floorMed).toFixed(1)} | ` +
        (target === undefined
          ? "– | – |"
          : `${target}${s.name === "disk" ? " per mount" : ""} | ${compared <= target ? "yes" : "NO"} |`),
    );
  }
  process.stdout.write(lines.join("\n") + "\n");
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${String(err)}\n`);
  process.exitCode = 1;
});
