/**
 * Footprint of the real agent at default intervals, as a whole process, next to Debian's prometheus-node-exporter
 * with the equivalent collectors (cpu, meminfo, loadavg, diskstats, filesystem, netdev) scraped every 5 s, both
 * measured in the same run on the same machine.
 *
 *   npm run bench:footprint -- [--seconds 120] [--warmup 10] [--stall-seconds 60]
 *
 * Phase 1 (both processes, --seconds long, after --warmup): CPU time from /proc/<pid>/task/<tid>/schedstat
 * (nanoseconds, all threads), RSS and peak RSS (VmHWM), private (anonymous) memory, child processes of the agent
 * sampled every second. Phase 2 (agent only, with --debug): the event-loop delay histogram from /debug/vars, kept
 * separate because measuring it costs a timer. Loopback only; every loop is bounded by time.
 * Prints a markdown report for docs/benchmarks.md.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { get } from "node:http";
import { createServer } from "node:net";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..");
const NODE_EXPORTER = "/usr/bin/prometheus-node-exporter";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const seconds = arg("seconds", 120);
const warmup = arg("warmup", 10);
const stallSeconds = arg("stall-seconds", 60);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

/** On-CPU nanoseconds of every thread of a process. */
function cpuNs(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // a thread that ended between readdir and read
    }
  }
  return total;
}

function status(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const m = /^(VmRSS|VmHWM|RssAnon|RssFile):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]!] = Number(m[2]) / 1024;
  }
  return out;
}

function children(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      n += readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).length;
    } catch {
      // thread gone
    }
  }
  return n;
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: 5_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
  });
}

function start(file: string, args: string[]): ChildProcess {
  const child = spawn(file, args, { stdio: ["ignore", "ignore", "inherit"] });
  child.on("error", (err) => {
    console.error(`cannot start ${file}: ${err.message}`);
    process.exit(1);
  });
  return child;
}

async function main(): Promise<void> {
  const serverJs = join(root, "dist", "server", "main.js");
  const agentJs = join(root, "dist", "agent", "main.js");
  if (!existsSync(agentJs)) throw new Error("dist/ is missing: run `npm run build`");
  const haveExporter = existsSync(NODE_EXPORTER);
  const dir = mkdtempSync(join(tmpdir(), "spectra-footprint-"));
  const procs: ChildProcess[] = [];
  try {
    const serverPort = await freePort();
    const server = start(process.execPath, [serverJs, "--listen", `127.0.0.1:${serverPort}`, "--data-dir", join(dir, "server"), "--log-level", "warn"]);
    procs.push(server);
    await sleep(1_000);
    const agentArgs = ["--server", `http://127.0.0.1:${serverPort}`, "--hostname", "footprint", "--log-level", "warn"];
    const agent = start(process.execPath, [agentJs, ...agentArgs, "--data-dir", join(dir, "agent")]);
    procs.push(agent);

    let exporter: ChildProcess | undefined;
    let exporterUrl = "";
    if (haveExporter) {
      const p = await freePort();
      exporterUrl = `http://127.0.0.1:${p}/metrics`;
      exporter = start(NODE_EXPORTER, [
        "--log.level=warn",
        `--web.listen-address=127.0.0.1:${p}`,
        "--collector.disable-defaults",
        "--collector.cpu",
        "--collector.meminfo",
        "--collector.loadavg",
        "--collector.diskstats",
        "--collector.filesystem",
        "--collector.netdev",
      ]);
      procs.push(exporter);
    }
    // Scrape every 5 s from this process for the whole run, as Prometheus would.
    let scrapes = 0;
    let scrapeBytes = 0;
    const scraper = exporter
      ? setInterval(() => {
          httpGet(exporterUrl).then(
            (b) => {
              scrapes++;
              scrapeBytes = b.length;
            },
            (err: Error) => console.error(`scrape failed: ${err.message}`),
          );
        }, 5_000)
      : undefined;

    console.error(`warming up ${warmup} s, then measuring ${seconds} s ...`);
    await sleep(warmup * 1_000);
    const a0 = cpuNs(agent.pid!);
    const e0 = exporter ? cpuNs(exporter.pid!) : 0;
    let maxChildren = 0;
    let childSamples = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < seconds * 1_000) {
      await sleep(1_000);
      maxChildren = Math.max(maxChildren, children(agent.pid!));
      childSamples++;
    }
    const elapsedS = (Date.now() - t0) / 1_000;
    const agentCpuMs = (cpuNs(agent.pid!) - a0) / 1e6;
    const exporterCpuMs = exporter ? (cpuNs(exporter.pid!) - e0) / 1e6 : NaN;
    const agentMem = status(agent.pid!);
    const exporterMem = exporter ? status(exporter.pid!) : {};
    if (scraper) clearInterval(scraper);
    agent.kill("SIGTERM");
    exporter?.kill("SIGTERM");

    // Phase 2: event-loop delay, with the debug endpoint on.
    const debugPort = await freePort();
    const agent2 = start(process.execPath, [agentJs, ...agentArgs, "--data-dir", join(dir, "agent2"), "--debug", "--debug-port", String(debugPort)]);
    procs.push(agent2);
    console.error(`measuring event-loop delay for ${stallSeconds} s ...`);
    await sleep(stallSeconds * 1_000);
    const vars = JSON.parse(await httpGet(`http://127.0.0.1:${debugPort}/debug/vars`)) as {
      eventLoopDelayMs: { p50: number; p99: number; max: number };
    };

    const per5s = (ms: number) => (ms / elapsedS) * 5;
    const perHour = (ms: number) => (ms / elapsedS) * 3600;
    const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : "n/a");
    const lines = [
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}.`,
      `Window: ${fmt(elapsedS, 0)} s after ${warmup} s warm-up; default intervals; node_exporter scraped every 5 s (${scrapes} scrapes, ${scrapeBytes} bytes each).`,
      "",
      "| process | CPU ms per 5 s | CPU s per hour | RSS MB | peak RSS MB | private (anon) MB |",
      "|---|---|---|---|---|---|",
      `| spectra-agent | ${fmt(per5s(agentCpuMs), 2)} | ${fmt(perHour(agentCpuMs) / 1000, 2)} | ${fmt(agentMem["VmRSS"] ?? NaN)} | ${fmt(agentMem["VmHWM"] ?? NaN)} | ${fmt(agentMem["RssAnon"] ?? NaN)} |`,
      exporter
        ? `| prometheus-node-exporter | ${fmt(per5s(exporterCpuMs), 2)} | ${fmt(perHour(exporterCpuMs) / 1000, 2)} | ${fmt(exporterMem["VmRSS"] ?? NaN)} | ${fmt(exporterMem["VmHWM"] ?? NaN)} | ${fmt(exporterMem["RssAnon"] ?? NaN)} |`
        : "| prometheus-node-exporter | not installed (apt-get install prometheus-node-exporter) | | | | |",
      "",
      `- CPU ratio spectra-agent / node_exporter: **${fmt(agentCpuMs / exporterCpuMs, 2)}** (goal < 1).`,
      `- Agent child processes (max of ${childSamples} samples, one per second): ${maxChildren}.`,
      `- Agent event-loop delay over ${stallSeconds} s (with --debug): p50 ${vars.eventLoopDelayMs.p50} ms, p99 ${vars.eventLoopDelayMs.p99} ms, max ${vars.eventLoopDelayMs.max} ms.`,
    ];
    console.log(lines.join("\n"));
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    await sleep(300);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
