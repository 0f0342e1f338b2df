#!/usr/bin/env node
// First: sets the agent's V8 flags before anything else is compiled (see v8-flags.ts).
import { collectStartupGarbage } from "./v8-flags.js";
import { realpathSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { getHeapSnapshot } from "node:v8";
import { createLogger, type Logger } from "../common/logger.js";
import { collectOnce, envelopesToJson, startAgent, type AgentDeps, type RunningAgent } from "./agent.js";
import { ConfigError, DEFAULTS, ENV_VARS, FLAGS, loadConfig, type AgentConfig } from "./config.js";

/** The `--help` text: every flag and environment variable, the config file shape and the collector names. */
export function helpText(collectorNames: readonly string[]): string {
  const flagRows = Object.entries(FLAGS).map(([name, def]) => {
    const short = "short" in def ? `-${def.short}, ` : "    ";
    const arg = "arg" in def ? ` ${def.arg}` : "";
    return [`  ${short}--${name}${arg}`, def.help] as const;
  });
  const width = Math.max(...flagRows.map(([l]) => l.length), ...ENV_VARS.map(([n]) => n.length + 2)) + 2;
  const pad = (s: string): string => s.padEnd(width);
  return [
    "spectra-agent: collects this host's metrics and sends them to a Spectra server",
    "",
    "Usage: spectra-agent [flags]",
    "",
    "Flags (flags override environment variables, which override the config file):",
    ...flagRows.map(([l, h]) => `${pad(l)}${h}`),
    "",
    "Environment:",
    ...ENV_VARS.map(([n, h]) => `${pad(`  ${n}`)}${h}`),
    "",
    "Config file (YAML, --config):",
    `  server: ${DEFAULTS.server}`,
    "  hostname: web-01",
    `  data_dir: ${DEFAULTS.dataDir}`,
    "  log_level: info",
    "  proc_root: /proc          # sys_root, rootfs likewise",
    `  debug_port: ${DEFAULTS.debugPort}`,
    "  spool: { max_bytes: 100MiB, max_age: 7d }",
    "  collectors:",
    "    cpu: { enabled: true, interval: 5s, timeout: 5s }",
    "    disk: false",
    "  diagnostics:               # what the server may ask this agent to run",
    "    network_diag: false",
    "    disk_usage: { allowed_paths: [/var, /home] }",
    "    fetch_logs: { allowed_units: [nginx.service] }",
    "  enroll_token: <token>     # prefer a file only you can read, or SPECTRA_ENROLL_TOKEN",
    "  server_fingerprint: sha256:<64 hex digits>",
    "  Durations: 500ms, 5s, 1m, 1h, 7d or milliseconds. Sizes: 100MiB, 500MB, 1GiB or bytes.",
    "",
    "Credentials:",
    "  The agent sends its own key (<data-dir>/agent.key, mode 0600) with every call. Without that file it enrolls",
    "  with the enrollment token: it asks to join, waits until an admin approves it (batches stay in the spool),",
    "  then stores the key it is given and no longer needs the token (state of a pending enrollment:",
    "  <data-dir>/enrollment.json). A denied agent or a refused token is logged and retried hourly. A key the",
    "  server rotates is stored and used at once; a refused (revoked) key is kept and retried every few minutes.",
    "  With neither key nor token the agent connects without a credential. --server-fingerprint pins the",
    "  certificate of an https:// server (e.g. one started with --tls-self-signed, which prints it).",
    "",
    `Collectors: ${collectorNames.join(", ")}`,
    "",
    "Exit codes: 0 ok, 1 runtime failure, 2 bad settings.",
    "",
  ].join("\n");
}

/** Streams, environment and stop signal of one CLI run (injectable for tests). */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Readonly<Record<string, string | undefined>>;
  /** When set, the agent stops when it aborts instead of on SIGINT/SIGTERM. */
  shutdown?: AbortSignal;
  /** Extra dependencies for the agent (tests). */
  deps?: Partial<AgentDeps>;
  /** Called once the agent runs (tests). */
  onStarted?: (agent: RunningAgent) => void;
}

/**
 * Runs the CLI and resolves with the exit code: 0 ok, 1 runtime failure, 2 bad settings. Bad settings are printed
 * as one line naming the setting, never a stack trace.
 */
export async function runCli(argv: readonly string[], io: Partial<CliIo> = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const env = io.env ?? process.env;
  const registry = await import("./collectors/registry.js");
  const names = io.deps?.collectorNames ?? registry.collectorNames;

  let config: AgentConfig;
  try {
    config = loadConfig({ argv, env, knownCollectors: names });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    stderr.write(`spectra-agent: ${err.message}\n`);
    return err.exitCode;
  }
  if (config.help) {
    stdout.write(helpText(names));
    return 0;
  }

  const logger = createLogger({ name: "agent", level: config.logLevel, destination: stderr });
  const deps: AgentDeps = { ...io.deps, logger };

  if (config.once) {
    try {
      const result = await collectOnce(config, deps);
      for (const [collector, problem] of Object.entries(result.problems)) logger.warn({ collector, problem }, "collector gave no data");
      stdout.write(`${JSON.stringify(envelopesToJson(result.envelopes), null, 2)}\n`);
      return 0;
    } catch (err) {
      logger.error({ err: describe(err) }, "--once failed");
      return 1;
    }
  }

  let agent: RunningAgent;
  try {
    agent = await startAgent(config, deps);
  } catch (err) {
    logger.error({ err: describe(err) }, "agent could not start");
    return 1;
  }
  io.onStarted?.(agent);
  // Start-up's garbage collected now rather than seconds later, under the first batches (see v8-flags.ts).
  collectStartupGarbage();

  let debug: DebugServer | undefined;
  if (config.debug) {
    try {
      debug = await startDebugServer({ port: config.debugPort, logger, vars: () => agent.vars() });
      logger.info({ url: debug.url }, "debug endpoint listening (heap: /debug/heap, CPU: /debug/profile?seconds=N, /debug/vars)");
    } catch (err) {
      logger.error({ err: describe(err), port: config.debugPort }, "debug endpoint could not start; running without it");
    }
  }

  await waitForShutdown(io.shutdown, logger);
  await debug?.close();
  await agent.stop();
  return 0;
}

function waitForShutdown(signal: AbortSignal | undefined, logger: Logger): Promise<void> {
  if (signal) {
    return signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  }
  return new Promise((resolve) => {
    const onSignal = (name: NodeJS.Signals): void => {
      logger.info({ signal: name }, "shutting down");
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      // A second signal while shutting down means "now".
      process.once("SIGINT", () => process.exit(130));
      process.once("SIGTERM", () => process.exit(143));
      resolve();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

const LOOP_RESOLUTION_MS = 10;

/** Options for {@link startDebugServer}. */
export interface DebugServerOptions {
  /** 0 picks a free port. */
  port: number;
  logger: Logger;
  /** Agent counters for /debug/vars. */
  vars: () => unknown;
  /** Bound on /debug/profile?seconds=N; default 60. */
  maxProfileSeconds?: number;
}

/** The profiling endpoint of `--debug`. */
export interface DebugServer {
  /** http://127.0.0.1:<port> */
  url: string;
  close(): Promise<void>;
}

/**
 * Serves, on 127.0.0.1 only: `/debug/heap` (a V8 heap snapshot, for Chrome DevTools), `/debug/profile?seconds=N`
 * (a CPU profile of N seconds, default 30, at most 60, as .cpuprofile JSON) and `/debug/vars` (memory, resource
 * usage, event-loop delay since start or since the last `/debug/vars?reset=1`, agent counters). The Node equivalents of Go's pprof handlers; one capture at a time.
 */
export async function startDebugServer(opts: DebugServerOptions): Promise<DebugServer> {
  const log = opts.logger;
  const maxSeconds = opts.maxProfileSeconds ?? 60;
  // Imported here rather than at the top: only --debug needs them.
  const [{ createServer }, { monitorEventLoopDelay }] = await Promise.all([import("node:http"), import("node:perf_hooks")]);
  // Measuring event-loop delay costs a timer; it runs only while the debug endpoint is on.
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loopDelay.enable();
  let busy = false;

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      log.warn({ err: describe(err), url: req.url }, "debug request failed");
      if (!res.headersSent) sendText(res, 500, "internal error\n");
      else res.destroy();
    });
  });
  // Bounds on slow or idle clients (the endpoint is local, but a stuck client must not pin a capture).
  server.requestTimeout = (maxSeconds + 30) * 1000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (req.method !== "GET" && req.method !== "HEAD") return sendText(res, 405, "method not allowed\n");
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    switch (url.pathname) {
      case "/debug/vars": {
        // The histogram records the full timer interval; the delay is what exceeds the sampling resolution.
        const ms = (ns: number): number => Math.max(0, Math.round((ns - LOOP_RESOLUTION_MS * 1e6) / 1e4) / 100);
        const body = {
          pid: process.pid,
          uptimeSec: Math.round(process.uptime()),
          memoryUsage: process.memoryUsage(),
          resourceUsage: process.resourceUsage(),
          eventLoopDelayMs: {
            min: ms(loopDelay.min),
            mean: ms(loopDelay.mean),
            p50: ms(loopDelay.percentile(50)),
            p99: ms(loopDelay.percentile(99)),
            max: ms(loopDelay.max),
          },
          agent: opts.vars(),
        };
        // `?reset=1` starts a new measuring window for the event-loop delay (e.g. to leave start-up out).
        if (url.searchParams.get("reset") === "1") loopDelay.reset();
        const text = JSON.stringify(body, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2);
        res.writeHead(200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
        res.end(`${text}\n`);
        return;
      }
      case "/debug/heap": {
        if (busy) return sendText(res, 429, "another capture is running\n");
        busy = true;
        try {
          res.writeHead(200, {
            "content-type": "application/octet-stream",
            "content-disposition": `attachment; filename="spectra-agent-${stamp}.heapsnapshot"`,
            "cache-control": "no-store",
          });
          const snapshot = getHeapSnapshot();
          await new Promise<void>((resolve, reject) => {
            snapshot.on("error", reject);
            res.on("close", resolve);
            snapshot.pipe(res);
          });
        } finally {
          busy = false;
        }
        return;
      }
      case "/debug/profile": {
        const raw = url.searchParams.get("seconds");
        const seconds = raw === null ? 30 : Number(raw);
        if (!Number.isFinite(seconds) || seconds <= 0) return sendText(res, 400, "seconds must be a positive number\n");
        if (busy) return sendText(res, 429, "another capture is running\n");
        busy = true;
        try {
          const profile = await cpuProfile(Math.min(seconds, maxSeconds), req);
          res.writeHead(200, {
            "content-type": "application/json",
            "content-disposition": `attachment; filename="spectra-agent-${stamp}.cpuprofile"`,
            "cache-control": "no-store",
          });
          res.end(JSON.stringify(profile));
        } finally {
          busy = false;
        }
        return;
      }
      default:
        return sendText(res, 404, "not found: try /debug/heap, /debug/profile?seconds=30 or /debug/vars\n");
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // Loopback only: profiles and heap snapshots contain everything in memory.
    server.listen(opts.port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        loopDelay.disable();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Records a CPU profile for `seconds` (ends early when the client goes away). */
async function cpuProfile(seconds: number, req: IncomingMessage): Promise<unknown> {
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, seconds * 1000);
      req.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    const { profile } = await session.post("Profiler.stop");
    return profile;
  } finally {
    session.disconnect();
  }
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" });
  res.end(text);
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error && !err.message.includes(err.cause.message) ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}

/** True when this module is the process entry point (also through the npm bin symlink). */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // V8 flags (--no-opt, ...) are already set by the first import, ./v8-flags.js.
  process.on("unhandledRejection", (reason) => {
    // A bug, not an outage: log it and keep collecting rather than lose the spool's in-memory state.
    process.stderr.write(`spectra-agent: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
  });
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Everything is closed by now; do not let a stray handle keep a stopped agent alive.
      setTimeout(() => process.exit(code), 3_000).unref();
    },
    (err: unknown) => {
      process.stderr.write(`spectra-agent: ${describe(err)}\n`);
      process.exit(1);
    },
  );
}
