import { realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";

/**
 * V8 flags the agent sets for itself, measured in docs/benchmarks.md ("Agent footprint"). They are set from inside
 * the process so that `node dist/agent/spectra-agent.mjs`, `node dist/agent/main.js` and the `spectra-agent` bin
 * all get them without NODE_OPTIONS or command-line flags.
 *
 * - `--no-opt`: the agent runs a few hundred microseconds of JavaScript every few seconds; TurboFan's background
 *   compilations cost more CPU than the optimized code saved, and its compiler's code and memory added RSS. The
 *   interpreter and the baseline compiler stay on.
 * - `--semi-space-growth-factor=1`: the young generation stays at its initial size instead of doubling while the
 *   agent starts (module evaluation allocates a lot that survives), which lowered the peak RSS by ~2 MB. Steady
 *   state allocates little, so the extra scavenges are cheap.
 *
 * This module must be the first import of the entry point: ES modules evaluate in import order, so everything else
 * (protobuf-es, connect, the collectors) is compiled and run with the flags in effect. Set later (after the other
 * imports), TurboFan had already compiled start-up code and touched ~4 MB more of the node binary and heap.
 */
export const AGENT_V8_FLAGS: readonly string[] = ["--no-opt", "--semi-space-growth-factor=1"];

/**
 * True when the process runs the agent itself: the entry script is the bundle (this very file, once bundled) or
 * the compiled `main.js` next to this module. Tests and other programs that import agent modules keep V8's
 * defaults.
 */
export function isAgentProcess(entry: string | undefined = process.argv[1]): boolean {
  if (!entry) return false;
  let real: string;
  try {
    real = realpathSync(entry);
  } catch {
    return false;
  }
  const here = fileURLToPath(import.meta.url);
  return real === here || real === join(dirname(here), "main.js");
}

if (isAgentProcess()) for (const flag of AGENT_V8_FLAGS) setFlagsFromString(flag);
