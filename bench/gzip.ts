/**
 * CPU per message of Connect's gzip as the agent and the server use it: connect-node's `compressionGzip` (zlib's
 * asynchronous API: a zlib stream per message, the work on libuv's thread pool) against the project's
 * common/gzip.ts (small messages in place, synchronously), on the batches the fleet's simulated agents send
 * (bench/lib/fleet.ts: a live 5 s tick of an agent with the default collectors, and a 100-envelope spool batch).
 *
 *   npm run bench:gzip [-- --messages 2000 --rounds 5]
 *
 * For each message size, implementation and concurrency (1 message at a time, as one agent sends; 50 in flight, as
 * a server receiving from many agents): `messages` compressions and then as many decompressions, CPU of the whole
 * process (all threads, the thread pool's included) from `process.cpuUsage()` and of the main thread alone (what
 * holds up the event loop; `/proc/thread-self/schedstat`, Linux), per message; the median of `rounds`
 * passes after a warm-up pass. Prints a markdown table with the ratio of the two implementations in the same run.
 */
import { cpus, release } from "node:os";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { compressionGzip } from "@connectrpc/connect-node";
import type { Compression } from "@connectrpc/connect/protocol";
import { gzip } from "../common/gzip.js";
import { encodeBatchMessage, SimAgent } from "./lib/fleet.js";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const MESSAGES = arg("messages", 2000);
const ROUNDS = arg("rounds", 5);

/** Live ticks (one 5 s tick each) of a simulated agent: the messages that are 1 KiB or more, as the agent gzips. */
function liveTicks(): Uint8Array[] {
  const a = new SimAgent(0, Date.UTC(2026, 0, 1));
  const out: Uint8Array[] = [];
  for (let t = 0; t < 120; t++) {
    const bytes = encodeBatchMessage(a.nextBatch(0));
    if (bytes.byteLength >= 1024) out.push(bytes);
  }
  return out;
}

/** 100-envelope batches (what a spool replay sends). */
function spoolBatches(): Uint8Array[] {
  const a = new SimAgent(1, Date.UTC(2026, 0, 1));
  return Array.from({ length: 8 }, () => encodeBatchMessage(a.nextBatch(100)));
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** CPU time of this (the main) thread in µs, from the scheduler's nanosecond account (Linux). */
function mainUs(): number {
  return Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[0]) / 1000;
}

/** CPU µs per message (all threads, main thread) for compress and decompress, `inFlight` messages at a time. */
async function pass(c: Compression, msgs: Uint8Array[], zipped: Uint8Array[], inFlight: number): Promise<number[]> {
  let t = cpuUs();
  let m = mainUs();
  for (let i = 0; i < MESSAGES; i += inFlight) {
    await Promise.all(Array.from({ length: Math.min(inFlight, MESSAGES - i) }, (_, k) => c.compress(msgs[(i + k) % msgs.length]!)));
  }
  const comp = (cpuUs() - t) / MESSAGES;
  const compMain = (mainUs() - m) / MESSAGES;
  t = cpuUs();
  m = mainUs();
  for (let i = 0; i < MESSAGES; i += inFlight) {
    await Promise.all(Array.from({ length: Math.min(inFlight, MESSAGES - i) }, (_, k) => c.decompress(zipped[(i + k) % zipped.length]!, 1 << 24)));
  }
  return [comp, compMain, (cpuUs() - t) / MESSAGES, (mainUs() - m) / MESSAGES];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const sets: Array<[string, Uint8Array[]]> = [
    ["live tick", liveTicks()],
    ["spool batch (100 envelopes)", spoolBatches()],
  ];
  const impls: Array<[string, Compression]> = [
    ["connect-node compressionGzip", compressionGzip],
    ["common/gzip.ts", gzip],
  ];
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model.trim()}, Linux ${release()}, Node ${process.version}`);
  console.log(`${MESSAGES} messages per pass, median of ${ROUNDS} passes after a warm-up; CPU of all threads per message\n`);
  console.log("| messages | mean size (B) | in flight | implementation | gzip µs (main thread) | gunzip µs (main thread) | gzip × | gunzip × | main thread: gzip × | gunzip × |");
  console.log("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
  for (const [label, msgs] of sets) {
    const zipped = msgs.map((m) => new Uint8Array(gzipSync(m)));
    const mean = Math.round(msgs.reduce((s, m) => s + m.byteLength, 0) / msgs.length);
    for (const inFlight of [1, 50]) {
      const rows: Array<[string, number[]]> = [];
      for (const [name, c] of impls) {
        await pass(c, msgs, zipped, inFlight);
        const runs: number[][] = [[], [], [], []];
        for (let r = 0; r < ROUNDS; r++) (await pass(c, msgs, zipped, inFlight)).forEach((v, i) => runs[i]!.push(v));
        rows.push([name, runs.map(median)]);
      }
      const base = rows[0]![1];
      for (const [name, [comp, compMain, dec, decMain]] of rows) {
        const ratio = (i: number, v: number) => (v / base[i]!).toFixed(2);
        console.log(
          `| ${label} | ${mean} | ${inFlight} | ${name} | ${comp!.toFixed(1)} (${compMain!.toFixed(1)}) | ${dec!.toFixed(1)} (${decMain!.toFixed(1)}) | ` +
            `${ratio(0, comp!)} | ${ratio(2, dec!)} | ${ratio(1, compMain!)} | ${ratio(3, decMain!)} |`,
        );
      }
    }
  }
}

await main();
