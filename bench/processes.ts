/**
 * Time per run of the `processes` collector against the real /proc, on this host as it is and with 1,000 extra
 * processes spawned for the run (`sleep 60` children: bounded in count and lifetime, killed at the end).
 *
 *   npm run bench:processes -- [--children 1000] [--runs 20] [--gap-ms 1000]
 *
 * Runs are spaced (default 1 s apart), as the agent spaces them (every 15 s). Prints a markdown table for
 * docs/benchmarks.md: median and p90 wall time per run and the process count seen.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { cpus, release, totalmem } from "node:os";
import { silentLogger } from "../common/logger.js";
import processes from "../agent/collectors/processes/index.js";
import { NO_DATA } from "../agent/collectors/types.js";
import { createHostAccess } from "../agent/host/index.js";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const childrenWanted = arg("children", 1000);
const runs = arg("runs", 20);
const gapMs = arg("gap-ms", 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function measure(label: string): Promise<string> {
  const c = await processes.create({ host: createHostAccess(), logger: silentLogger(), options: {} });
  await c.collect(new AbortController().signal); // baseline run (CPU % needs two readings)
  const times: number[] = [];
  let seen = 0;
  for (let i = 0; i < runs; i++) {
    await sleep(gapMs);
    const t0 = performance.now();
    const out = await c.collect(new AbortController().signal);
    times.push(performance.now() - t0);
    if (out !== NO_DATA && out[0]?.case === "processList") seen = out[0].value.totalProcesses;
  }
  await c.close?.();
  return `| ${label} | ${seen} | ${pct(times, 50).toFixed(2)} | ${pct(times, 90).toFixed(2)} |`;
}

async function main(): Promise<void> {
  const rows = [await measure("this host as it is")];
  const children: ChildProcess[] = [];
  try {
    for (let i = 0; i < childrenWanted; i++) {
      const child = spawn("sleep", ["60"], { stdio: "ignore" });
      child.on("error", () => {});
      children.push(child);
    }
    await sleep(500);
    rows.push(await measure(`with ${childrenWanted} extra processes`));
  } finally {
    for (const ch of children) ch.kill("SIGKILL");
  }
  console.log(
    [
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}; ${runs} runs ${gapMs} ms apart after a baseline run.`,
      "",
      "| case | processes seen | median ms per run | p90 ms per run |",
      "|---|---|---|---|",
      ...rows,
    ].join("\n"),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
