import { setFlagsFromString } from "node:v8";

/**
 * An opt-in bound on V8's heap growth for the server, applied at start (so `node dist/server/main.js`, the
 * `spectra-server` bin and `npm start` all honour it): `SPECTRA_HEAP_GROWING_PERCENT=30` sets
 * `--heap-growing-percent=30`, so after each full GC the old generation may grow to 1.3× what survived instead of
 * V8's dynamic factor (up to 4×; 1.8–2.4× measured under the fleet bench). Measured (docs/benchmarks.md, "Fleet
 * scale (issue 8)"): at 1,000 agents the committed heap 589 → 442 MiB and the RSS ~150 MiB lower, for ~10 % more
 * server CPU; under the ingest bench's full load 14 % fewer samples/s for 28 % more CPU (more full GCs). So it is
 * not the default: it is for memory-bound hosts with many agents and modest ingest rates. Environment rather than a
 * command-line flag of the server because V8 flags must be set before the rest of the server loads (this module is
 * the first import of server/main.ts), and NODE_OPTIONS does not accept this V8 flag. A `--heap-growing-percent`
 * on the node command line wins.
 */
export const HEAP_GROWING_ENV = "SPECTRA_HEAP_GROWING_PERCENT";

function flagName(f: string): string {
  return f.replace(/^--/, "").split("=")[0]!.replaceAll("_", "-");
}

/** The V8 flags to set for this environment and node command line (none by default). */
export function serverV8Flags(
  env: NodeJS.ProcessEnv = process.env,
  execArgv: readonly string[] = process.execArgv,
  warn: (msg: string) => void = (msg) => process.stderr.write(`spectra-server: ${msg}\n`),
): string[] {
  const raw = env[HEAP_GROWING_ENV];
  if (raw === undefined || raw.trim() === "") return [];
  const pct = Number(raw);
  if (!Number.isInteger(pct) || pct <= 0 || pct > 1000) {
    warn(`ignoring ${HEAP_GROWING_ENV}=${raw} (a whole number of percent, 1-1000)`);
    return [];
  }
  const given = new Set(execArgv.filter((a) => a.startsWith("--")).map(flagName));
  return given.has("heap-growing-percent") ? [] : [`--heap-growing-percent=${pct}`];
}

for (const f of serverV8Flags()) setFlagsFromString(f);
