/**
 * Cost of flattening envelopes into series samples (server/tsdb/flatten), the hot path of metric ingest.
 *
 *   npm run build && node dist/bench/flatten.js [--rounds 15] [--batches 4000]
 *
 * One batch is 50 envelopes cycling through a realistic tick of one Linux host with Docker: cpu (8 cores),
 * memory, 3 disk, 3 disk_io, 3 network, system, temperature, process_list (15 processes), container_list
 * (5 containers). The batch goes through toBinary/fromBinary first, so the messages look like what ingest
 * decodes. Prints µs per batch (median and best of the rounds) and samples per second on one core.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { cpus, release } from "node:os";
import { MetricBatchSchema, MetricEnvelopeSchema, type MetricEnvelope } from "../gen/spectra/v1/metrics_pb.js";
import { flattenEnvelope, type SeriesGroup } from "../server/tsdb/flatten/flatten.js";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const rounds = arg("rounds", 15);
const batchesPerRound = arg("batches", 4000);
const BATCH_SIZE = 50;

type Init = NonNullable<Parameters<typeof create<typeof MetricEnvelopeSchema>>[1]>;

/** One tick of a host: 15 envelopes. */
function tick(t: number): Init[] {
  const j = (x: number) => x * (1 + ((t * 7919) % 13) / 100); // values move a little between ticks
  const big = (x: number) => BigInt(Math.round(j(x)));
  const env: Init[] = [
    { type: "cpu", payload: { case: "cpu", value: { usage: j(36.9), cores: [3.75, 69.3, 12.1, 5.5, 44.0, 1.2, 0.8, 9.9].map(j), load1m: 0.78, load5m: 0.49, load15m: 0.23, iowait: 0.1, steal: 0 } } },
    { type: "memory", payload: { case: "memory", value: { ramTotal: 25276514304n, ramUsed: big(640475136), ramAvailable: big(24636039168), ramUsedPct: j(2.53), swapTotal: 0n, swapUsed: 0n, swapPct: 0 } } },
  ];
  for (const [dev, mnt] of [["/dev/vda1", "/"], ["/dev/vdb1", "/home"], ["/dev/vda15", "/boot/efi"]] as const)
    env.push({ type: "disk", payload: { case: "disk", value: { device: dev, mountpoint: mnt, filesystem: "ext4", diskType: "ssd", diskTotal: 270553174016n, diskUsed: big(24000069632), diskAvailable: big(84944224256), diskUsedPct: j(22.0), inodesTotal: 16777216n, inodesUsed: big(418148), inodesPct: j(2.49) } } });
  for (const dev of ["vda", "vdb", "nvme0n1"])
    env.push({ type: "disk_io", payload: { case: "diskIo", value: { device: dev, readBytes: j(418948.2), writeBytes: j(93099.6), readOps: j(44.8), writeOps: j(2.15), readTimeMs: 52, writeTimeMs: 1, ioInProgress: 0n, readLatencyMs: j(0.356), writeLatencyMs: j(0.143) } } });
  for (const iface of ["eth0", "docker0", "veth1a2b3c"])
    env.push({ type: "network", payload: { case: "network", value: { interface: iface, macAddress: "02:fc:00:00:00:01", mtu: 1500, speed: 10000n, rxBytes: j(120345), rxPackets: j(310), rxErrors: 0, rxDrops: 0, txBytes: j(80211), txPackets: j(250), txErrors: 0, txDrops: 0 } } });
  env.push({ type: "system", payload: { case: "system", value: { uptime: BigInt(403 + t * 15), processes: 88, users: 1, bootTime: 1795783182n } } });
  env.push({ type: "temperature", payload: { case: "temperature", value: { sensor: "coretemp_package_id_0", temperature: j(48), maxTemp: 100, critTemp: 100, chip: "coretemp", label: "Package id 0" } } });
  env.push({
    type: "process_list",
    payload: {
      case: "processList",
      value: {
        processes: Array.from({ length: 15 }, (_, i) => ({ pid: 1000 + i, name: `proc${i}`, cpuPercent: j(i), memPercent: j(0.3), memRss: big(72122368), status: "waiting", threadsTotal: 11, threadsRunning: 1, threadsWaiting: 10, state: "S", threadsByState: { R: 1, S: 10 } })),
        totalProcesses: 89,
        totalThreads: 152,
        processesByState: { S: 51, I: 37, R: 1 },
        threadsByState: { S: 140, I: 10, R: 2 },
      },
    },
  });
  env.push({
    type: "container_list",
    payload: {
      case: "containerList",
      value: {
        containers: ["web", "db", "cache", "worker", "proxy"].map((name, i) => ({ id: `c0ffee${i}`, name, image: `${name}:latest`, state: "running", source: "docker", kind: "container", cpuPercent: j(3.2 * i), memoryBytes: big(52428800 * (i + 1)), memoryLimit: 1073741824n, netRxBytes: big(1e6), netTxBytes: big(5e5), restarts: 0, health: "healthy", uptimeSeconds: BigInt(3600 + t), netRxRate: j(1200), netTxRate: j(800) })),
      },
    },
  });
  return env;
}

function makeBatch(seed: number): MetricEnvelope[] {
  const inits: Init[] = [];
  for (let t = seed; inits.length < BATCH_SIZE; t++) inits.push(...tick(t));
  const batch = create(MetricBatchSchema, { hostname: "bench", envelopes: inits.slice(0, BATCH_SIZE).map((i) => create(MetricEnvelopeSchema, i)) });
  return fromBinary(MetricBatchSchema, toBinary(MetricBatchSchema, batch)).envelopes;
}

function main(): void {
  const batches = Array.from({ length: 16 }, (_, i) => makeBatch(i * 4));
  const out: SeriesGroup[] = [];
  let samples = 0;
  let groups = 0;
  for (const env of batches[0]!) flattenEnvelope(env, out);
  for (const g of out) for (const v of g.values) if (!Number.isNaN(v)) samples++;
  groups = out.length;

  let sink = 0;
  const run = (n: number): number => {
    const t0 = process.hrtime.bigint();
    for (let b = 0; b < n; b++) {
      out.length = 0;
      const envs = batches[b & 15]!;
      for (let i = 0; i < envs.length; i++) flattenEnvelope(envs[i]!, out);
      sink += out.length;
    }
    return Number(process.hrtime.bigint() - t0) / 1000 / n; // µs per batch
  };
  run(batchesPerRound); // warm-up (JIT)
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) times.push(run(batchesPerRound));
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  const best = times[0]!;
  console.log(
    [
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, Linux ${release()}, Node ${process.version}; ${rounds} rounds × ${batchesPerRound} batches after a warm-up round.`,
      `Batch: ${BATCH_SIZE} envelopes → ${groups} groups, ${samples} samples.`,
      "",
      "| µs per batch (median) | µs per batch (best) | µs per envelope | samples/s (one core) |",
      "|---:|---:|---:|---:|",
      `| ${median.toFixed(1)} | ${best.toFixed(1)} | ${(median / BATCH_SIZE).toFixed(3)} | ${(samples / median).toFixed(1)} M |`,
    ].join("\n"),
  );
  if (sink < 0) console.log(sink);
}

main();
