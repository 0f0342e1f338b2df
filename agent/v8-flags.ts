import { realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/**
 * How the agent's process is set up for a small footprint, measured in docs/benchmarks.md ("Agent footprint").
 * Three parts:
 *
 * 1. V8 flags the agent sets for itself at run time ({@link AGENT_V8_FLAGS}), so that every way of starting it
 *    gets them, `node dist/agent/spectra-agent.cjs` included.
 * 2. The launch line ({@link AGENT_LAUNCH}): settings that only a command line or the environment can give,
 *    because Node, V8 or glibc read them before any JavaScript runs. scripts/build-agent.mjs writes them into the
 *    bundle's first line, `#!/usr/bin/env -S <env> node <flags>`, so the `spectra-agent` bin (npm links it as is;
 *    on Windows npm's shim reads the same line) starts with them; `npm start` reads that line back
 *    ({@link launchFromShebang}) and starts the agent the same way, and so do the footprint bench and gate.
 * 3. A bound on old-generation growth ({@link startHeapBound}): a full GC when the heap has grown by a set amount
 *    since the last one, instead of V8's first steady-state full GC many MB later.
 */

/**
 * - `--no-opt`: the agent runs a few hundred microseconds of JavaScript every few seconds; TurboFan's background
 *   compilations cost more CPU than the optimized code saved, and its compiler's code and memory added RSS.
 * - `--semi-space-growth-factor=1`: the young generation stays at its initial size instead of doubling while the
 *   agent starts (module evaluation allocates a lot that survives), which lowered the peak RSS by ~2 MB. Steady
 *   state allocates little, so the extra scavenges are cheap.
 *
 * This module must be the first import of the entry point: ES modules evaluate in import order, so everything else
 * (protobuf-es, connect, the collectors) is compiled and run with the flags in effect. Set later (after the other
 * imports), TurboFan had already compiled start-up code and touched ~4 MB more of the node binary and heap.
 */
export const AGENT_V8_FLAGS: readonly string[] = ["--no-opt", "--semi-space-growth-factor=1"];

/** Environment variables and node flags the agent is started with (see {@link AGENT_LAUNCH}). */
export interface AgentLaunch {
  env: Readonly<Record<string, string>>;
  nodeFlags: readonly string[];
}

/**
 * What the bundle's first line starts the agent with. Each was measured on its own and together (12 s runs against
 * an unreachable server and the footprint bench, docs/benchmarks.md):
 *
 * - `--max-semi-space-size=1`: the young generation never grows past 1 MB per semi-space.
 * - `--v8-pool-size=1`: one V8 background thread instead of one per core (three fewer threads on this machine).
 * - `--no-sparkplug`: no baseline compiler; the interpreter runs everything (with `--no-opt` above, no machine code
 *   is generated for JavaScript at all). Less code on the heap and less of the node binary touched.
 * - `--optimize-for-size`: V8's memory-saving heuristics (smaller heap growth steps, denser objects).
 * - `--expose-gc`: `gc` for the heap bound below (a global of the agent's context; nothing else in it calls it).
 * - Not `--lite-mode` / `--jitless` (−1 MB more): they disable WebAssembly, and dockerode's dependency ssh2 runs
 *   WebAssembly when it loads, which then kills the process on any host where the containers collector finds Docker.
 * - glibc's malloc: one arena (`MALLOC_ARENA_MAX=1`: the few threads that allocate share it), blocks of 8 KiB
 *   and more in their own mappings (`MALLOC_MMAP_THRESHOLD_`: V8's parser and compiler zones, freed after start-up,
 *   go back to the system instead of staying as holes in the heap), and free memory at the top of the heap
 *   returned at once (`MALLOC_TRIM_THRESHOLD_=0`, `MALLOC_TOP_PAD_=0`). Read by glibc before main(); other C
 *   libraries ignore them. Removed from the agent's own environment at start (see below), so that commands the
 *   agent runs do not inherit them.
 */
export const AGENT_LAUNCH: AgentLaunch = {
  env: { MALLOC_ARENA_MAX: "1", MALLOC_MMAP_THRESHOLD_: "8192", MALLOC_TRIM_THRESHOLD_: "0", MALLOC_TOP_PAD_: "0" },
  nodeFlags: ["--max-semi-space-size=1", "--v8-pool-size=1", "--no-sparkplug", "--optimize-for-size", "--expose-gc"],
};

/** The bundle's first line: `#!/usr/bin/env -S VAR=value … node --flag …` (coreutils env ≥ 8.30, BSD env). */
export function agentShebang(launch: AgentLaunch = AGENT_LAUNCH): string {
  const env = Object.entries(launch.env).map(([k, v]) => `${k}=${v}`);
  const line = `#!/usr/bin/env -S ${[...env, "node", ...launch.nodeFlags].join(" ")}`;
  // Linux reads at most 255 bytes of a #! line (BINPRM_BUF_SIZE); the rest would be cut off silently.
  if (line.length > 255) throw new Error(`the #! line is ${line.length} bytes, over Linux's 255: ${line}`);
  return line;
}

/**
 * The environment and node flags of a script's `#!` line, to start it with `process.execPath` as its bin would be
 * started (by `npm start`, the footprint bench and gate). A line without `env -S` or without `node` gives neither.
 */
export function launchFromShebang(firstLine: string): AgentLaunch {
  const m = /^#!\s*\S*env\s+-S\s+(.*)$/.exec(firstLine.trim());
  if (!m) return { env: {}, nodeFlags: [] };
  const words = m[1]!.trim().split(/\s+/);
  const at = words.indexOf("node");
  if (at < 0) return { env: {}, nodeFlags: [] };
  const env: Record<string, string> = {};
  for (const w of words.slice(0, at)) {
    const eq = w.indexOf("=");
    if (eq > 0) env[w.slice(0, eq)] = w.slice(eq + 1);
  }
  return { env, nodeFlags: words.slice(at + 1) };
}

/** The launch line's environment as given to this process, to remove once glibc has read it. */
export function launchEnvToStrip(env: Readonly<Record<string, string | undefined>>, launch: AgentLaunch = AGENT_LAUNCH): string[] {
  return Object.entries(launch.env)
    .filter(([k, v]) => env[k] === v)
    .map(([k]) => k);
}

/** When {@link startHeapBound} forces a full GC. */
export interface HeapBoundOptions {
  /** How often the heap size is looked at. */
  checkEveryMs: number;
  /** Growth of the old space's used bytes over the baseline that triggers a full GC. */
  maxGrowthBytes: number;
}

/**
 * Measured (docs/benchmarks.md, "Over longer runs"): in steady state the agent does a scavenge every ~30 s and no
 * full GC for tens of minutes; objects living one stream window are promoted and the old generation grows by
 * ~0.15 MB a minute until V8's next full GC, several MB later. A full GC of this heap costs ~8–12 ms of CPU on the
 * reference VM; at that growth rate one runs every ~7 minutes (about 0.1 ms per 5 s) and the growth stays
 * within 1 MiB.
 */
export const HEAP_BOUND: HeapBoundOptions = { checkEveryMs: 60_000, maxGrowthBytes: 1024 * 1024 };

/**
 * The decision of one check: collect when the heap grew by more than `maxGrowthBytes` over the baseline, its size
 * after the last forced GC (or at the first check, which only takes the baseline: V8's own memory reducer does the
 * full GCs after start-up).
 */
export function shouldCollect(usedBytes: number, baseline: number | undefined, maxGrowthBytes: number): boolean {
  return baseline !== undefined && usedBytes - baseline > maxGrowthBytes;
}

/** What {@link startHeapBound} needs from the runtime (injectable for tests). */
export interface HeapBoundDeps {
  /** Used bytes of the old space (the young generation's fill level would make the measure jump). */
  usedHeapBytes(): number;
  fullGc(): void;
  setInterval(fn: () => void, ms: number): { unref(): unknown };
}

/** Starts the heap bound: an unref'd timer, so it never keeps a finished process alive. Returns its counters. */
export function startHeapBound(deps: HeapBoundDeps, opts: HeapBoundOptions = HEAP_BOUND): { fullGcs: () => number } {
  let baseline: number | undefined;
  let count = 0;
  deps
    .setInterval(() => {
      const used = deps.usedHeapBytes();
      if (baseline === undefined) baseline = used;
      if (!shouldCollect(used, baseline, opts.maxGrowthBytes)) return;
      deps.fullGc();
      count++;
      baseline = deps.usedHeapBytes();
    }, opts.checkEveryMs)
    .unref();
  return { fullGcs: () => count };
}

/**
 * True when the process runs the agent itself: the entry script is the bundle (this very file, once bundled) or
 * the compiled `main.js` next to this module. Tests and other programs that import agent modules keep V8's
 * defaults.
 */
export function isAgentProcess(entry: string | undefined = process.argv[1]): boolean {
  // (Not a file when scripts/build-agent.mjs imports this module from memory to read the launch line.)
  if (!entry || !import.meta.url.startsWith("file:")) return false;
  let real: string;
  try {
    real = realpathSync(entry);
  } catch {
    return false;
  }
  const here = fileURLToPath(import.meta.url);
  return real === here || real === join(dirname(here), "main.js");
}

const agentProcess = isAgentProcess();

/**
 * One full GC right after the agent has started (modules evaluated, collectors loaded, connections opened), in the
 * agent's own process only and only with the launch line's `--expose-gc`. Start-up leaves ~1–2 MiB of garbage in
 * the old generation and both semi-spaces in use; V8's memory reducer collects it only some seconds later, while
 * enrollment, registration and the first batches allocate on top of it, and that sum was the agent's peak RSS.
 * Collected here, the peak is lower (docs/benchmarks.md, "Agent footprint", 2026-11-28: −0.6 to −0.8 MiB peak
 * against a real server); it costs ~10 ms of CPU once.
 */
export function collectStartupGarbage(): void {
  if (agentProcess) (globalThis as { gc?: () => void }).gc?.();
}

if (agentProcess) {
  for (const flag of AGENT_V8_FLAGS) setFlagsFromString(flag);
  for (const k of launchEnvToStrip(process.env)) delete process.env[k];
  // `gc` comes from the launch line's --expose-gc (getting it at run time, through a new context, costs ~1 MB).
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    const oldSpaceUsed = (): number => getHeapSpaceStatistics().find((s) => s.space_name === "old_space")?.space_used_size ?? 0;
    startHeapBound({ usedHeapBytes: oldSpaceUsed, fullGc: gc, setInterval });
  }
}
