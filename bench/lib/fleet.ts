/**
 * A synthetic fleet for the storage benchmarks: simulated agents that produce the envelopes a real Linux server
 * with Docker sends (`spectra-agent --once` shows the mix), at the agent's default intervals, with values that move
 * between ticks the way the collectors' values do (CPU % and rates as ratios of counter deltas, sent rounded as the
 * collectors round them with common/round.ts: percentages, counts per second and latencies to two decimals, bytes per
 * second whole; load averages with two decimals, memory and disk in 4 KiB pages, temperatures in whole degrees,
 * constants that stay constant).
 *
 * One simulated host ("a typical server"): 4 cores, 2 mounts, 2 block devices, 2 network interfaces, 2 temperature
 * sensors, 4 containers, the top-15 process list, 25 services, update status and 300 installed applications.
 * Collectors and intervals as the agent's defaults: cpu, disk_io, network 5 s; memory, temperature 10 s; processes
 * 15 s; disk, services, containers 60 s; system 300 s; update_status and applications 1 h. All collectors share
 * the agent's tick grid (one random phase per agent), each timestamp 0–3 ms late like the agent's scheduler.
 *
 * Batching: envelopes go into batches of at most `batchEnvelopes` (the agent's batcher flushes at 100 envelopes or
 * after 5 s): a simulated agent runs faster than real time, so its batches fill up to the envelope cap; with
 * batchEnvelopes = 0 a batch is one 5 s tick (what a live agent sends every 5 s).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { fastToBinary } from "../../common/proto/fast-encode.js";
import { prng } from "../../common/prng.js";
import { roundBytesRate, roundPercent, roundRate } from "../../common/round.js";
import {
  CollectorHealth,
  CollectorStatusSchema,
  MetricBatchSchema,
  MetricEnvelopeSchema,
  ProcessInfoSchema,
  type CollectorStatus,
  type MetricEnvelope,
} from "../../gen/spectra/v1/metrics_pb.js";
import { flattenEnvelope, isSnapshotCase, type SeriesGroup } from "../../server/tsdb/flatten/flatten.js";
import { ChunkEncoder } from "../../server/tsdb/codec/chunk.js";
import { encodeRollupChunk } from "../../server/tsdb/codec/rollup-chunk.js";
import { aggregate, collapse, replaceBuckets, type Buckets } from "../../server/tsdb/rollup.js";

export const TICK_MS = 5_000;

/** Collector → interval in ticks of 5 s (the agent's default intervals). */
export const INTERVAL_TICKS: Record<string, number> = {
  cpu: 1,
  disk_io: 1,
  network: 1,
  memory: 2,
  temperature: 2,
  processes: 3,
  disk: 12,
  services: 12,
  containers: 12,
  system: 60,
  update_status: 720,
  applications: 720,
};


type EnvInit = MessageInitShape<typeof MetricEnvelopeSchema>;

const GiB = 1024 ** 3;
const PAGE = 4096;
const PROCESS_NAMES = ["postgres", "node", "nginx", "dockerd", "containerd", "systemd", "java", "python3", "redis-server", "sshd", "journald", "prometheus", "cron", "rsyslogd", "bash"];
const SERVICE_NAMES = ["ssh", "cron", "nginx", "docker", "containerd", "postgresql", "redis", "rsyslog", "systemd-journald", "systemd-logind", "systemd-udevd", "dbus", "getty@tty1", "networking", "systemd-timesyncd", "unattended-upgrades", "polkit", "snapd", "apparmor", "ufw", "fail2ban", "chrony", "atd", "spectra-agent", "node-app"];
const CONTAINERS = ["web", "db", "cache", "worker"];

/** A value that moves like a bounded random walk. */
class Walk {
  constructor(
    public v: number,
    private readonly lo: number,
    private readonly hi: number,
    private readonly step: number,
  ) {}
  next(rnd: () => number): number {
    this.v += (rnd() * 2 - 1) * this.step;
    if (this.v < this.lo) this.v = this.lo + (this.lo - this.v);
    if (this.v > this.hi) this.v = this.hi - (this.v - this.hi);
    return this.v;
  }
}

/** Rates as the collectors compute them: a counter delta divided by the measured elapsed seconds. */
function rate(delta: number, elapsedMs: number): number {
  return delta / (elapsedMs / 1000);
}

export interface SimBatch {
  hostname: string;
  sessionId: string;
  sequence: bigint;
  envelopes: MetricEnvelope[];
  collectorStatus: CollectorStatus[];
  /** Samples the server's flattening makes of these envelopes (NaN skipped, as the engine does). */
  samples: number;
}

/** Counts samples of envelopes with the server's flattening (what the engine appends). */
export function countSamples(envelopes: readonly MetricEnvelope[], groups: SeriesGroup[] = []): number {
  let n = 0;
  for (const env of envelopes) {
    groups.length = 0;
    flattenEnvelope(env, groups);
    for (const g of groups) for (const v of g.values) if (!Number.isNaN(v)) n++;
  }
  return n;
}

/** One simulated agent. */
export class SimAgent {
  readonly hostname: string;
  readonly sessionId: string;
  private sequence = 0n;
  private tick = 0;
  private readonly rnd: () => number;
  private readonly t0: number;
  private pending: MetricEnvelope[] = [];
  private readonly groups: SeriesGroup[] = [];
  // state
  private readonly cores = 4;
  private readonly coreWalks: Walk[];
  private readonly load = new Walk(0.8, 0, 6, 0.15);
  private readonly iowait = new Walk(0.4, 0, 5, 0.3);
  private readonly ramTotal: number;
  private ramUsedPages: Walk;
  private readonly swapTotal: number;
  private readonly disks: Array<{ device: string; mount: string; total: number; usedPages: number; inodesTotal: number; inodesUsed: number }>;
  private readonly io: Array<{ device: string; rd: Walk; wr: Walk; idleReads: boolean }>;
  private readonly nics: Array<{ name: string; mac: string; mtu: number; speed: bigint; rx: Walk; tx: Walk }>;
  private readonly temps: Array<{ sensor: string; chip: string; label: string; w: Walk }>;
  private readonly containers: Array<{ name: string; id: string; cpu: Walk; memPages: Walk; limit: bigint; rx: number; tx: number; rxRate: Walk; txRate: Walk }>;
  private readonly procs: Array<{ pid: number; name: string; cpu: Walk; rssPages: Walk; threads: number }>;
  private processes = new Walk(180, 120, 260, 3);
  private readonly bootTime: number;
  private readonly statuses: CollectorStatus[];

  constructor(index: number, startMs: number, seed = 1) {
    this.hostname = `bench-host-${String(index).padStart(5, "0")}`;
    this.sessionId = `bench-session-${index}-${seed}`;
    this.rnd = prng(seed * 7_919 + index * 104_729 + 17);
    const r = this.rnd;
    // one random phase per agent on the 5 s grid, as the agent's scheduler does
    this.t0 = startMs + Math.floor(r() * TICK_MS);
    this.coreWalks = Array.from({ length: this.cores }, () => new Walk(5 + r() * 40, 0, 100, 12));
    this.ramTotal = [8, 16, 32, 64][index % 4]! * GiB - 300 * 1024 * 1024;
    this.ramUsedPages = new Walk((this.ramTotal / PAGE) * (0.2 + r() * 0.5), (this.ramTotal / PAGE) * 0.1, (this.ramTotal / PAGE) * 0.95, 3_000);
    this.swapTotal = index % 3 === 0 ? 0 : 2 * GiB;
    this.disks = [
      { device: "/dev/nvme0n1p2", mount: "/", total: 250 * GiB, usedPages: Math.floor((40 + r() * 100) * GiB / PAGE), inodesTotal: 16_384_000, inodesUsed: 420_000 + Math.floor(r() * 400_000) },
      { device: "/dev/sdb1", mount: "/data", total: 2_000 * GiB, usedPages: Math.floor((200 + r() * 1_000) * GiB / PAGE), inodesTotal: 131_072_000, inodesUsed: 60_000 + Math.floor(r() * 100_000) },
    ];
    this.io = [
      { device: "nvme0n1", rd: new Walk(200, 0, 4_000, 300), wr: new Walk(400, 0, 6_000, 400), idleReads: false },
      { device: "sdb", rd: new Walk(40, 0, 2_000, 80), wr: new Walk(100, 0, 3_000, 120), idleReads: true },
    ];
    const mac = (n: number) => `02:42:ac:${(index >> 8) & 0xff}:${index & 0xff}:${n}`.replace(/:(\d)(?=:|$)/g, ":0$1");
    this.nics = [
      { name: "eth0", mac: mac(1), mtu: 1500, speed: 10_000n, rx: new Walk(200_000, 0, 5e7, 120_000), tx: new Walk(120_000, 0, 5e7, 90_000) },
      { name: "docker0", mac: mac(2), mtu: 1500, speed: -1n, rx: new Walk(20_000, 0, 5e6, 15_000), tx: new Walk(25_000, 0, 5e6, 18_000) },
    ];
    this.temps = [
      { sensor: "coretemp_package_id_0", chip: "coretemp", label: "Package id 0", w: new Walk(45 + r() * 10, 30, 90, 1.5) },
      { sensor: "nvme_composite", chip: "nvme", label: "Composite", w: new Walk(38 + r() * 6, 25, 80, 0.8) },
    ];
    this.containers = CONTAINERS.map((name, i) => ({
      name,
      id: `${(index * 16 + i).toString(16).padStart(12, "0")}`,
      cpu: new Walk(1 + r() * 20, 0, 100, 4),
      memPages: new Walk((50 + r() * 500) * 256, 10 * 256, 2048 * 256, 2_000),
      limit: i === 1 ? 4n * BigInt(GiB) : 0n,
      rx: Math.floor(r() * 1e9),
      tx: Math.floor(r() * 1e9),
      rxRate: new Walk(5_000 + r() * 50_000, 0, 5e6, 8_000),
      txRate: new Walk(3_000 + r() * 40_000, 0, 5e6, 6_000),
    }));
    this.procs = PROCESS_NAMES.map((name, i) => ({
      pid: 300 + i * 97 + (index % 50),
      name,
      cpu: new Walk(r() * 10, 0, 100, 2),
      rssPages: new Walk((10 + r() * 500) * 256, 256, 4096 * 256, 500),
      threads: 1 + Math.floor(r() * 40),
    }));
    this.bootTime = Math.floor((startMs - 3 * 86_400_000 - r() * 30 * 86_400_000) / 1000);
    this.statuses = Object.entries(INTERVAL_TICKS).map(([name, ticks]) =>
      create(CollectorStatusSchema, {
        name,
        health: CollectorHealth.OK,
        lastDurationUs: 20 + Math.floor(r() * 200),
        intervalMs: ticks * TICK_MS,
      }),
    );
  }

  /** Sim time of the next tick not yet generated. */
  get simTimeMs(): number {
    return this.t0 + this.tick * TICK_MS;
  }

  /**
   * The next batch: at most `maxEnvelopes` envelopes of consecutive ticks (0: exactly one tick). Sample counts come
   * from the server's own flattening of every envelope.
   */
  nextBatch(maxEnvelopes: number): SimBatch {
    if (maxEnvelopes <= 0) {
      this.pending.push(...this.collectTick());
    } else {
      while (this.pending.length < maxEnvelopes) this.pending.push(...this.collectTick());
    }
    return this.batchOf(maxEnvelopes <= 0 ? this.pending.splice(0) : this.pending.splice(0, maxEnvelopes));
  }

  /** A batch of the given envelopes (the next sequence number, collector status as of its last envelope). */
  batchOf(envelopes: MetricEnvelope[]): SimBatch {
    this.sequence++;
    const lastT = envelopes.length > 0 ? tsMs(envelopes[envelopes.length - 1]!) : this.simTimeMs;
    for (const s of this.statuses) s.lastSuccess = timestampFromMs(lastT);
    return {
      hostname: this.hostname,
      sessionId: this.sessionId,
      sequence: this.sequence,
      envelopes,
      collectorStatus: this.statuses,
      samples: countSamples(envelopes, this.groups),
    };
  }

  /** The envelopes of one tick (every collector due at it), in the agent's order. */
  collectTick(): MetricEnvelope[] {
    const n = this.tick++;
    const base = this.t0 + n * TICK_MS;
    const r = this.rnd;
    const at = () => base + Math.floor(r() * 4); // 0–3 ms late
    const out: MetricEnvelope[] = [];
    const push = (init: EnvInit) => {
      const e = create(MetricEnvelopeSchema, init);
      e.hostname = this.hostname;
      out.push(e);
    };
    const due = (c: string) => n % INTERVAL_TICKS[c]! === 0;
    const elapsed = () => TICK_MS + Math.floor(r() * 7) - 3; // the collectors' measured interval

    if (due("cpu")) {
      // usage = busy / total jiffies of the interval (whole jiffies, as /proc/stat gives), sent with two decimals
      const jiffies = 500;
      const cores = this.coreWalks.map((w) => {
        const tot = jiffies + Math.floor(r() * 5) - 2;
        return roundPercent((Math.round((w.next(r) / 100) * tot) / tot) * 100);
      });
      const tot = cores.length * jiffies;
      const usage = roundPercent((Math.round((cores.reduce((a, b) => a + b, 0) / cores.length / 100) * tot) / tot) * 100);
      const l1 = this.load.next(r);
      push({
        type: "cpu",
        timestamp: timestampFromMs(at()),
        payload: {
          case: "cpu",
          value: {
            usage,
            cores,
            load1m: Math.round(l1 * 100) / 100,
            load5m: Math.round(l1 * 90) / 100,
            load15m: Math.round(l1 * 80) / 100,
            iowait: roundPercent((Math.round((this.iowait.next(r) / 100) * tot) / tot) * 100),
            steal: 0,
          },
        },
      });
    }
    if (due("memory")) {
      const used = Math.round(this.ramUsedPages.next(r)) * PAGE;
      const avail = this.ramTotal - used - Math.floor(this.ramTotal * 0.05 / PAGE) * PAGE;
      const swapUsed = this.swapTotal > 0 ? 37 * 1024 * 1024 + (n % 97 === 0 ? PAGE : 0) : 0;
      push({
        type: "memory",
        timestamp: timestampFromMs(at()),
        payload: {
          case: "memory",
          value: {
            ramTotal: BigInt(this.ramTotal),
            ramUsed: BigInt(used),
            ramAvailable: BigInt(avail),
            ramUsedPct: roundPercent((used / this.ramTotal) * 100),
            swapTotal: BigInt(this.swapTotal),
            swapUsed: BigInt(swapUsed),
            swapPct: this.swapTotal > 0 ? roundPercent((swapUsed / this.swapTotal) * 100) : 0,
          },
        },
      });
    }
    if (due("disk")) {
      for (const d of this.disks) {
        d.usedPages += Math.floor(r() * 2_000) - 600;
        d.inodesUsed += Math.floor(r() * 40) - 15;
        const used = d.usedPages * PAGE;
        const avail = d.total - used - Math.floor(d.total * 0.05);
        push({
          type: "disk",
          timestamp: timestampFromMs(at()),
          payload: {
            case: "disk",
            value: {
              device: d.device,
              mountpoint: d.mount,
              filesystem: "ext4",
              diskType: "ssd",
              diskTotal: BigInt(d.total),
              diskUsed: BigInt(used),
              diskAvailable: BigInt(avail),
              diskUsedPct: roundPercent((used / (used + avail)) * 100),
              inodesTotal: BigInt(d.inodesTotal),
              inodesUsed: BigInt(d.inodesUsed),
              inodesPct: roundPercent((d.inodesUsed / d.inodesTotal) * 100),
            },
          },
        });
      }
    }
    if (due("disk_io")) {
      for (const d of this.io) {
        const ms = elapsed();
        const readOps = d.idleReads && r() < 0.7 ? 0 : Math.round(d.rd.next(r) / 10);
        const writeOps = Math.round(d.wr.next(r) / 10);
        const readTime = Math.round(readOps * (0.1 + r() * 0.4));
        const writeTime = Math.round(writeOps * (0.05 + r() * 0.3));
        push({
          type: "disk_io",
          timestamp: timestampFromMs(at()),
          payload: {
            case: "diskIo",
            value: {
              device: d.device,
              readBytes: roundBytesRate(rate(readOps * 8 * 512 * (1 + Math.floor(r() * 8)), ms)),
              writeBytes: roundBytesRate(rate(writeOps * 8 * 512 * (1 + Math.floor(r() * 16)), ms)),
              readOps: roundRate(rate(readOps, ms)),
              writeOps: roundRate(rate(writeOps, ms)),
              readTimeMs: readTime,
              writeTimeMs: writeTime,
              ioInProgress: r() < 0.9 ? 0n : 1n,
              readLatencyMs: readOps > 0 ? roundRate(readTime / readOps) : 0,
              writeLatencyMs: writeOps > 0 ? roundRate(writeTime / writeOps) : 0,
            },
          },
        });
      }
    }
    if (due("network")) {
      for (const nic of this.nics) {
        const ms = elapsed();
        const rxB = Math.round(nic.rx.next(r) * (ms / 1000));
        const txB = Math.round(nic.tx.next(r) * (ms / 1000));
        push({
          type: "network",
          timestamp: timestampFromMs(at()),
          payload: {
            case: "network",
            value: {
              interface: nic.name,
              macAddress: nic.mac,
              mtu: nic.mtu,
              speed: nic.speed,
              rxBytes: roundBytesRate(rate(rxB, ms)),
              rxPackets: roundRate(rate(Math.ceil(rxB / 900), ms)),
              rxErrors: 0,
              rxDrops: r() < 0.02 ? roundRate(rate(1, ms)) : 0,
              txBytes: roundBytesRate(rate(txB, ms)),
              txPackets: roundRate(rate(Math.ceil(txB / 1100), ms)),
              txErrors: 0,
              txDrops: 0,
            },
          },
        });
      }
    }
    if (due("system")) {
      const t = at();
      push({
        type: "system",
        timestamp: timestampFromMs(t),
        payload: {
          case: "system",
          value: {
            uptime: BigInt(Math.floor(t / 1000) - this.bootTime),
            processes: Math.round(this.processes.next(r)),
            users: n % 3 === 0 ? 1 : 0,
            bootTime: BigInt(this.bootTime),
          },
        },
      });
    }
    if (due("temperature")) {
      for (const s of this.temps) {
        push({
          type: "temperature",
          timestamp: timestampFromMs(at()),
          payload: { case: "temperature", value: { sensor: s.sensor, temperature: Math.round(s.w.next(r)), maxTemp: 100, critTemp: 105, chip: s.chip, label: s.label } },
        });
      }
    }
    if (due("processes")) {
      const procs = this.procs.map((p) => {
        const running = r() < 0.1 ? 1 : 0;
        return {
          pid: p.pid,
          name: p.name,
          cpuPercent: Math.round(p.cpu.next(r) * 10) / 10,
          memPercent: Math.round(((p.rssPages.next(r) * PAGE) / this.ramTotal) * 1000) / 10,
          memRss: BigInt(Math.round(p.rssPages.v) * PAGE),
          status: running ? "running" : "sleeping",
          threadsTotal: p.threads,
          threadsRunning: running,
          threadsWaiting: p.threads - running,
          state: running ? "R" : "S",
          threadsByState: (running ? { R: 1, S: p.threads - 1 } : { S: p.threads }) as Record<string, number>,
        };
      });
      const total = Math.round(this.processes.v);
      push({
        type: "process_list",
        timestamp: timestampFromMs(at()),
        payload: {
          case: "processList",
          value: {
            processes: procs.map((p) => create(ProcessInfoSchema, p)),
            totalProcesses: total,
            totalThreads: total * 3 + (n % 7),
            processesByState: { S: total - 40 - (n % 3), I: 38, R: 1 + (n % 3), Z: 1 },
            threadsByState: { S: total * 3 - 40, I: 38, R: 2 + (n % 3) },
          },
        },
      });
    }
    if (due("services")) {
      push({
        type: "service_list",
        timestamp: timestampFromMs(at()),
        payload: {
          case: "serviceList",
          value: {
            manager: "systemd",
            services: SERVICE_NAMES.map((name) => ({
              name: `${name}.service`,
              status: "active",
              subStatus: "running",
              loadState: "loaded",
              description: `The ${name} service`,
              enabled: "enabled",
            })),
          },
        },
      });
    }
    if (due("containers")) {
      push({
        type: "container_list",
        timestamp: timestampFromMs(at()),
        payload: {
          case: "containerList",
          value: {
            containers: this.containers.map((c) => {
              const rxRate = c.rxRate.next(r);
              const txRate = c.txRate.next(r);
              c.rx += Math.round(rxRate * 60);
              c.tx += Math.round(txRate * 60);
              return {
                id: c.id,
                name: c.name,
                image: `${c.name}:latest`,
                state: "running",
                source: "docker",
                kind: "container",
                cpuPercent: roundPercent(c.cpu.next(r)),
                memoryBytes: BigInt(Math.round(c.memPages.next(r)) * PAGE),
                ...(c.limit > 0n ? { memoryLimit: c.limit } : {}),
                netRxBytes: BigInt(c.rx),
                netTxBytes: BigInt(c.tx),
                restarts: 0,
                health: "healthy",
                uptimeSeconds: BigInt(86_400 + Math.floor((n * TICK_MS) / 1000)),
                netRxRate: roundBytesRate(rxRate),
                netTxRate: roundBytesRate(txRate),
              };
            }),
          },
        },
      });
    }
    if (due("update_status")) {
      const pending = 3 + (Math.floor(n / 720) % 5);
      push({
        type: "update_status",
        timestamp: timestampFromMs(at()),
        payload: {
          case: "updateStatus",
          value: {
            pendingCount: pending,
            securityCount: 1,
            rebootRequired: false,
            packageManager: "apt",
            packages: Array.from({ length: pending }, (_, i) => ({ name: `libpkg${i}`, version: `1.${i}.2-1`, security: i === 0 })),
          },
        },
      });
    }
    if (due("applications")) {
      push({
        type: "application_list",
        timestamp: timestampFromMs(at()),
        payload: {
          case: "applicationList",
          value: {
            applications: Array.from({ length: 300 }, (_, i) => ({
              name: `package-${i.toString(36)}`,
              version: `${1 + (i % 7)}.${i % 13}.${i % 5}-${1 + (i % 3)}`,
              source: "dpkg",
              arch: "amd64",
            })),
          },
        },
      });
    }
    return out;
  }
}

function tsMs(e: MetricEnvelope): number {
  const t = e.timestamp!;
  return Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
}

/** A MetricBatch (binary), encoded with the compiled encoder the server uses for its WAL. */
export function encodeBatchMessage(b: SimBatch): Uint8Array {
  return fastToBinary(
    MetricBatchSchema,
    create(MetricBatchSchema, {
      hostname: b.hostname,
      sessionId: b.sessionId,
      sequence: b.sequence,
      envelopes: b.envelopes,
      collectorStatus: b.collectorStatus,
    }),
  );
}

/** Samples per host per day at the default intervals (from one simulated day, counted with the server's flattening). */
export function samplesPerHostPerDay(): { samples: number; envelopes: number; seriesPerHost: number } {
  const a = new SimAgent(0, Date.UTC(2026, 0, 1));
  const groups: SeriesGroup[] = [];
  const series = new Set<string>();
  let samples = 0;
  let envelopes = 0;
  for (let i = 0; i < 86_400_000 / TICK_MS; i++) {
    const envs = a.collectTick();
    envelopes += envs.length;
    for (const e of envs) {
      groups.length = 0;
      flattenEnvelope(e, groups);
      for (const g of groups) {
        g.values.forEach((v, j) => {
          if (Number.isNaN(v)) return;
          samples++;
          series.add(`${g.key}\u0000${g.metrics[j]}`);
        });
      }
    }
  }
  return { samples, envelopes, seriesPerHost: series.size };
}

/**
 * One simulated host-day at the default intervals, encoded as the engine stores it: each series' samples in chunks
 * closed at 120 samples or at 2 h boundaries (HeadSeries' rules), with the server's codec. Gives the chunk payload
 * bytes and chunk count per host per day at steady state (every chunk full), and the snapshot envelopes per day.
 */
export function steadyStateHostDay(): {
  samples: number;
  chunks: number;
  payloadBytes: number;
  snapshotEnvelopes: number;
  series: number;
  /** 1-minute rollup windows (one per series and hour) and their encoded bytes; the day rows (one per series). */
  rollup1mRows: number;
  rollup1mBytes: number;
  rollup1hRows: number;
  rollup1hBytes: number;
} {
  const a = new SimAgent(1, Date.UTC(2026, 0, 1));
  const groups: SeriesGroup[] = [];
  const enc = new Map<string, ChunkEncoder>();
  let chunks = 0;
  let payloadBytes = 0;
  let samples = 0;
  let snapshotEnvelopes = 0;
  const rawBySeries = new Map<string, { t: number[]; v: number[] }>();
  const close = (e: ChunkEncoder) => {
    chunks++;
    payloadBytes += e.bytes().length;
  };
  for (let i = 0; i < 86_400_000 / TICK_MS; i++) {
    for (const e of a.collectTick()) {
      if (e.payload.case !== undefined && isSnapshotCase(e.payload.case)) snapshotEnvelopes++;
      const t = tsMs(e);
      groups.length = 0;
      flattenEnvelope(e, groups);
      for (const g of groups) {
        g.values.forEach((v, j) => {
          if (Number.isNaN(v)) return;
          const key = `${g.key}\u0000${g.metrics[j]}`;
          let c = enc.get(key);
          if (c && (c.count >= 120 || Math.floor(t / 7_200_000) !== Math.floor(c.minT / 7_200_000))) {
            close(c);
            c = undefined;
          }
          if (!c) enc.set(key, (c = new ChunkEncoder()));
          c.append(t, v);
          let raw = rawBySeries.get(key);
          if (!raw) rawBySeries.set(key, (raw = { t: [], v: [] }));
          raw.t.push(t);
          raw.v.push(v);
          samples++;
        });
      }
    }
  }
  for (const c of enc.values()) close(c);
  // rollups as TsdbEngine.computeRollups writes them: per hour the 1-minute buckets, per day the hours collapsed
  let rollup1mRows = 0;
  let rollup1mBytes = 0;
  let rollup1hRows = 0;
  let rollup1hBytes = 0;
  for (const raw of rawBySeries.values()) {
    const hours: Buckets[] = [];
    for (let h = 0; h < 24; h++) {
      const from = Date.UTC(2026, 0, 1) + h * 3_600_000;
      const idx = raw.t.map((x, i) => (x >= from && x < from + 3_600_000 ? i : -1)).filter((i) => i >= 0);
      if (idx.length === 0) continue;
      const minute = aggregate(idx.map((i) => raw.t[i]!), idx.map((i) => raw.v[i]!), 60_000);
      rollup1mRows++;
      rollup1mBytes += encodeRollupChunk(minute).length;
      hours.push(collapse(minute, 3_600_000));
    }
    let day: Buckets | undefined;
    for (const h of hours) day = day ? replaceBuckets(day, h) : h;
    if (day) {
      rollup1hRows++;
      rollup1hBytes += encodeRollupChunk(day).length;
    }
  }
  return { samples, chunks, payloadBytes, snapshotEnvelopes, series: enc.size, rollup1mRows, rollup1mBytes, rollup1hRows, rollup1hBytes };
}

// ---------------------------------------------------------------------------------------------------------------
// VictoriaMetrics: the same samples as JSON lines for /api/v1/import

/** Per simulated agent: the JSON prefix of each series (`{"metric":{…},"values":[`), built once. */
export class VmEncoder {
  private readonly prefixes = new Map<string, string>();
  private readonly groups: SeriesGroup[] = [];

  /**
   * The batch's samples as /api/v1/import JSON lines: one line per series with all its values and timestamps of
   * the batch (the format's intended use). Returns the body and the number of samples in it.
   */
  jsonLines(hostname: string, envelopes: readonly MetricEnvelope[]): { body: string; samples: number } {
    const bySeries = new Map<string, { v: number[]; t: number[] }>();
    let samples = 0;
    for (const env of envelopes) {
      const t = tsMs(env);
      this.groups.length = 0;
      flattenEnvelope(env, this.groups);
      for (const g of this.groups) {
        for (let i = 0; i < g.values.length; i++) {
          const v = g.values[i]!;
          if (Number.isNaN(v)) continue;
          const key = `${g.key}\u0000${g.metrics[i]}`;
          let s = bySeries.get(key);
          if (!s) {
            bySeries.set(key, (s = { v: [], t: [] }));
            if (!this.prefixes.has(key)) this.prefixes.set(key, vmPrefix(hostname, g.metrics[i]!, g.labels));
          }
          s.v.push(v);
          s.t.push(t);
          samples++;
        }
      }
    }
    let body = "";
    for (const [key, s] of bySeries) body += `${this.prefixes.get(key)!}${s.v.join(",")}],"timestamps":[${s.t.join(",")}]}\n`;
    return { body, samples };
  }

  /** The same samples as Prometheus text exposition lines with timestamps (/api/v1/import/prometheus). */
  promText(hostname: string, envelopes: readonly MetricEnvelope[]): { body: string; samples: number } {
    let body = "";
    let samples = 0;
    for (const env of envelopes) {
      const t = tsMs(env);
      this.groups.length = 0;
      flattenEnvelope(env, this.groups);
      for (const g of this.groups) {
        for (let i = 0; i < g.values.length; i++) {
          const v = g.values[i]!;
          if (Number.isNaN(v)) continue;
          const key = `P${g.key}\u0000${g.metrics[i]}`;
          let p = this.prefixes.get(key);
          if (p === undefined) this.prefixes.set(key, (p = promPrefix(hostname, g.metrics[i]!, g.labels)));
          body += `${p}${v} ${t}\n`;
          samples++;
        }
      }
    }
    return { body, samples };
  }
}

function promName(metric: string): string {
  return metric.replace(/[^a-zA-Z0-9_:]/g, "_");
}

function vmPrefix(hostname: string, metric: string, labels: SeriesGroup["labels"]): string {
  const m: Record<string, string> = { __name__: promName(metric), host: hostname };
  for (const [k, v] of labels) m[k] = v;
  return `{"metric":${JSON.stringify(m)},"values":[`;
}

function promPrefix(hostname: string, metric: string, labels: SeriesGroup["labels"]): string {
  const parts = [`host=${JSON.stringify(hostname)}`, ...labels.map(([k, v]) => `${k}=${JSON.stringify(v)}`)];
  return `${promName(metric)}{${parts.join(",")}} `;
}
