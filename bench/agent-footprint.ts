/**
 * Footprint of the real agent at default intervals, as a whole process, next to Debian's prometheus-node-exporter
 * with the equivalent collectors (cpu, meminfo, loadavg, diskstats, filesystem, netdev) scraped every 5 s, both
 * measured in the same run on the same machine.
 *
 *   npm run bench:footprint -- [--seconds 120] [--warmup 10] [--stall-seconds 60] [--all-collectors] [--agent path]
 *                              [--plain]
 *
 * The agent is the package's `spectra-agent` bin (the bundle dist/agent/spectra-agent.cjs), started as the bin
 * starts it: with the environment and node flags of its `#!/usr/bin/env -S …` line (agent/v8-flags.ts
 * AGENT_LAUNCH), by this node. `--plain` starts it as `node <file>` without them (the way it ran before that line
 * existed), to compare; `--agent` runs another build instead, e.g. `--agent dist/agent/main.js` (the unbundled tsc
 * output, which has no launch line).
 *
 * The agent runs the core set (cpu, memory, disk, disk_io, network, system: the collectors node_exporter is run
 * with) at their default intervals; `--all-collectors` runs every collector enabled by default instead, for
 * information (the issue's targets are for the core set).
 *
 * Phase 1 (both processes, --seconds long, after --warmup): CPU time from /proc/<pid>/task/<tid>/schedstat
 * (nanoseconds, all threads; the agent's main thread also on its own, with its wake-ups from voluntary context
 * switches), RSS and peak RSS (VmHWM), private (anonymous) memory, child processes of the agent sampled every
 * second. Phase 2 (agent only, with --debug): the event-loop delay histogram from /debug/vars, kept separate
 * because measuring it costs a timer. Loopback only; every loop is bounded by time.
 *
 * The server accepts enrolled agents only: the bench creates an auto-approved enrollment token in the server's
 * database first and gives it to both agents (SPECTRA_ENROLL_TOKEN). The report ends with a delivery check (batches
 * the server acknowledged, warnings the agent logged): figures of an agent that could not deliver are meaningless.
 * Prints a markdown report for docs/benchmarks.md.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { get } from "node:http";
import { createServer } from "node:net";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join, relative, resolve } from "node:path";
import { agentCommand, threadsCpuNs } from "./lib/proc.js";

const root = join(import.meta.dirname, "..", "..");
const NODE_EXPORTER = "/usr/bin/prometheus-node-exporter";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const seconds = arg("seconds", 120);
const warmup = arg("warmup", 10);
const stallSeconds = arg("stall-seconds", 60);
const allCollectors = process.argv.includes("--all-collectors");
const plain = process.argv.includes("--plain");
function argText(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
/** The agent as installed: package.json's `bin.spectra-agent`, unless --agent names another file. */
function agentPath(): string {
  const given = argText("agent");
  if (given) return resolve(given);
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin: Record<string, string> };
  return join(root, pkg.bin["spectra-agent"]!);
}
/** The collectors node_exporter runs with here (cpu+loadavg, meminfo, filesystem, diskstats, netdev), plus system. */
const CORE = "cpu,memory,disk,disk_io,network,system";
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

/** On-CPU nanoseconds of one thread (the main thread's tid is the pid). */
function threadCpuNs(pid: number, tid: number): number {
  return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
}

/** Voluntary context switches of one thread: each is a sleep, so each is followed by a wake-up. */
function wakeups(pid: number, tid: number): number {
  const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
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

/** argv: warm-up seconds, window seconds. Prints {p50, p99, max} in ms like the agent's /debug/vars. */
const CONTROL_SCRIPT = `
const { monitorEventLoopDelay } = require("node:perf_hooks");
const [warm, win] = process.argv.slice(1).map(Number);
const h = monitorEventLoopDelay({ resolution: 10 });
h.enable();
const ms = (ns) => Math.max(0, Math.round((ns - 10e6) / 1e4) / 100);
setTimeout(() => {
  h.reset();
  setTimeout(() => {
    process.stdout.write(JSON.stringify({ p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) }));
  }, win * 1000);
}, warm * 1000);
`;

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

function start(file: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(file, args, { stdio: ["ignore", "ignore", "inherit"], ...(env ? { env } : {}) });
  child.on("error", (err) => {
    console.error(`cannot start ${file}: ${err.message}`);
    process.exit(1);
  });
  return child;
}

/**
 * The server accepts agents with a key only; an agent gets one by enrolling. Creates a multi-use, auto-approved
 * enrollment token in the server's database before it starts (empty for a server without enrollment).
 */
function enrollmentToken(serverJs: string, dataDir: string): string {
  const r = spawnSync(process.execPath, [serverJs, "enroll-token", "create", "--auto-approve", "--multi-use", "--data-dir", dataDir], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return r.status === 0 ? (/^spe_\S+/m.exec(r.stdout)?.[0] ?? "") : "";
}

/** Counts the agent's warnings and errors on stderr (a rejected credential would make every figure meaningless). */
function watchStderr(child: ChildProcess, problems: string[]): void {
  let rest = "";
  child.stderr?.on("data", (d: Buffer) => {
    const lines = (rest + d.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      process.stderr.write(`${line}\n`);
      if (/"level":(40|50|60)/.test(line)) problems.push(line);
    }
  });
}

async function main(): Promise<void> {
  const serverJs = join(root, "dist", "server", "main.js");
  const agentJs = agentPath();
  if (!existsSync(agentJs)) throw new Error(`${relative(root, agentJs)} is missing: run \`npm run build\``);
  const haveExporter = existsSync(NODE_EXPORTER);
  const dir = mkdtempSync(join(tmpdir(), "spectra-footprint-"));
  const procs: ChildProcess[] = [];
  try {
    const serverPort = await freePort();
    const token = enrollmentToken(serverJs, join(dir, "server"));
    const agentEnv = { ...process.env, ...(token ? { SPECTRA_ENROLL_TOKEN: token } : {}) };
    const server = start(process.execPath, [serverJs, "--listen", `127.0.0.1:${serverPort}`, "--data-dir", join(dir, "server"), "--log-level", "warn"]);
    procs.push(server);
    await sleep(1_000);
    const agentArgs = ["--server", `http://127.0.0.1:${serverPort}`, "--log-level", "warn", ...(allCollectors ? [] : ["--collectors", CORE])];
    // Each agent its own host name: the server holds a second enrollment of a known host for an admin's approval.
    const measured = agentCommand(agentJs, [...agentArgs, "--hostname", "footprint", "--data-dir", join(dir, "agent")], plain);
    const agent = spawn(measured.cmd, measured.args, { stdio: ["ignore", "ignore", "pipe"], env: { ...measured.env, ...agentEnv } });
    procs.push(agent);
    const agentProblems: string[] = [];
    watchStderr(agent, agentProblems);

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
    const a0 = threadsCpuNs(agent.pid!);
    const m0 = threadCpuNs(agent.pid!, agent.pid!);
    const w0 = wakeups(agent.pid!, agent.pid!);
    const e0 = exporter ? threadsCpuNs(exporter.pid!) : 0;
    let maxChildren = 0;
    let childSamples = 0;
    const t0 = Date.now();
    // RSS once a minute, to show a slow growth over long windows.
    const rssTrend: string[] = [];
    while (Date.now() - t0 < seconds * 1_000) {
      await sleep(1_000);
      maxChildren = Math.max(maxChildren, children(agent.pid!));
      childSamples++;
      if (childSamples % 60 === 0) {
        const m = status(agent.pid!);
        rssTrend.push(`${Math.round((Date.now() - t0) / 60_000 + warmup / 60)} min ${(m["VmRSS"] ?? NaN).toFixed(1)}`);
      }
    }
    const elapsedS = (Date.now() - t0) / 1_000;
    const agentCpuMs = (threadsCpuNs(agent.pid!) - a0) / 1e6;
    const mainCpuMs = (threadCpuNs(agent.pid!, agent.pid!) - m0) / 1e6;
    const mainWakeups = wakeups(agent.pid!, agent.pid!) - w0;
    const exporterCpuMs = exporter ? (threadsCpuNs(exporter.pid!) - e0) / 1e6 : NaN;
    const agentMem = status(agent.pid!);
    const exporterMem = exporter ? status(exporter.pid!) : {};
    if (scraper) clearInterval(scraper);
    agent.kill("SIGTERM");
    exporter?.kill("SIGTERM");

    // Phase 2: event-loop delay, with the debug endpoint on.
    const debugPort = await freePort();
    const second = agentCommand(agentJs, [...agentArgs, "--hostname", "footprint-debug", "--data-dir", join(dir, "agent2"), "--debug", "--debug-port", String(debugPort)], plain);
    const agent2 = start(second.cmd, second.args, { ...second.env, ...agentEnv });
    procs.push(agent2);
    // Control: an idle Node process measuring its own event-loop delay the same way over the same window. Its
    // stalls are the machine's (scheduling, the VM), not anyone's code.
    const control = spawn(process.execPath, ["-e", CONTROL_SCRIPT, String(warmup), String(stallSeconds)], { stdio: ["ignore", "pipe", "inherit"] });
    procs.push(control);
    let controlOut = "";
    control.stdout?.on("data", (d: Buffer) => (controlOut += d.toString()));
    const controlDone = new Promise<void>((resolve) => control.on("exit", () => resolve()));
    console.error(`measuring event-loop delay: ${warmup} s from start, then ${stallSeconds} s ...`);
    type Vars = { eventLoopDelayMs: { p50: number; p99: number; max: number }; agent?: { sender?: { ackedBatches?: number } } };
    await sleep(warmup * 1_000);
    // Start-up (module loading, first runs, V8's memory-reducing full GCs a few seconds in) reported on its own.
    const startup = JSON.parse(await httpGet(`http://127.0.0.1:${debugPort}/debug/vars?reset=1`)) as Vars;
    await sleep(stallSeconds * 1_000);
    const vars = JSON.parse(await httpGet(`http://127.0.0.1:${debugPort}/debug/vars`)) as Vars;
    await Promise.race([controlDone, sleep(5_000)]);
    const idle = (controlOut ? JSON.parse(controlOut) : { p50: NaN, p99: NaN, max: NaN }) as Vars["eventLoopDelayMs"];

    const per5s = (ms: number) => (ms / elapsedS) * 5;
    const perHour = (ms: number) => (ms / elapsedS) * 3600;
    const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : "n/a");
    const lines = [
      `Date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC.`,
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}.`,
      `Agent: \`${[...Object.entries(measured.env).filter(([k]) => process.env[k] !== measured.env[k]).map(([k, v]) => `${k}=${v}`), "node", ...measured.args.slice(0, measured.args.indexOf(agentJs)), relative(root, agentJs)].join(" ")}\`${plain ? " (--plain: without the bin's launch line)" : ""}; collectors: ${allCollectors ? "every collector enabled by default" : CORE}, default intervals.`,
      `Window: ${fmt(elapsedS, 0)} s after ${warmup} s warm-up; node_exporter scraped every 5 s (${scrapes} scrapes, ${scrapeBytes} bytes each).`,
      "",
      "| process | CPU ms per 5 s | CPU s per hour | RSS MB | peak RSS MB | private (anon) MB |",
      "|---|---|---|---|---|---|",
      `| spectra-agent | ${fmt(per5s(agentCpuMs), 2)} | ${fmt(perHour(agentCpuMs) / 1000, 2)} | ${fmt(agentMem["VmRSS"] ?? NaN)} | ${fmt(agentMem["VmHWM"] ?? NaN)} | ${fmt(agentMem["RssAnon"] ?? NaN)} |`,
      exporter
        ? `| prometheus-node-exporter | ${fmt(per5s(exporterCpuMs), 2)} | ${fmt(perHour(exporterCpuMs) / 1000, 2)} | ${fmt(exporterMem["VmRSS"] ?? NaN)} | ${fmt(exporterMem["VmHWM"] ?? NaN)} | ${fmt(exporterMem["RssAnon"] ?? NaN)} |`
        : "| prometheus-node-exporter | not installed (apt-get install prometheus-node-exporter) | | | | |",
      "",
      `- CPU ratio spectra-agent / node_exporter: **${fmt(agentCpuMs / exporterCpuMs, 2)}** (goal < 1).`,
      `- Agent main thread: ${fmt(per5s(mainCpuMs), 2)} ms CPU per 5 s, ${fmt(per5s(mainWakeups), 1)} wake-ups per 5 s; ` +
        `other threads (V8 compiler and GC helpers, libuv thread pool doing the spool's writes): ${fmt(per5s(agentCpuMs - mainCpuMs), 2)} ms per 5 s.`,
      `- Agent child processes (max of ${childSamples} samples, one per second): ${maxChildren}.`,
      `- Agent RSS MB once a minute (time since start): ${rssTrend.join(", ")}.`,
      `- Agent event-loop delay (with --debug, 10 ms resolution): steady state over ${stallSeconds} s after ${warmup} s: ` +
        `p50 ${vars.eventLoopDelayMs.p50} ms, p99 ${vars.eventLoopDelayMs.p99} ms, **max ${vars.eventLoopDelayMs.max} ms**; ` +
        `first ${warmup} s (start-up): p99 ${startup.eventLoopDelayMs.p99} ms, max ${startup.eventLoopDelayMs.max} ms. ` +
        `Control, an idle Node process measured the same way over the same window: p50 ${idle.p50} ms, p99 ${idle.p99} ms, max ${idle.max} ms.`,
      `- Delivery check: ${token ? "agents enrolled with an auto-approved token; " : ""}the phase-2 agent's batches acknowledged by the server: ` +
        `${vars.agent?.sender?.ackedBatches ?? "n/a"}; warnings and errors logged by the measured agent: ${agentProblems.length}.`,
    ];
    if (!(Number(vars.agent?.sender?.ackedBatches) > 0) || agentProblems.length > 0) {
      lines.push("", "**The agent did not deliver its batches cleanly: these figures do not describe normal operation.**");
      for (const p of agentProblems.slice(0, 5)) lines.push(`    ${p.slice(0, 300)}`);
    }
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
