import { create, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { MetricEnvelopeSchema, type MetricEnvelope } from "../../../gen/spectra/v1/metrics_pb.js";
import { describeSeries, flattenEnvelope, isSnapshotCase, type SeriesGroup } from "./flatten.js";

type Init = NonNullable<Parameters<typeof create<typeof MetricEnvelopeSchema>>[1]>;

const ts = timestampFromDate(new Date("2026-11-27T12:46:28.640Z"));
const envelope = (init: Init): MetricEnvelope => create(MetricEnvelopeSchema, { timestamp: ts, hostname: "vm", ...init });

function groupsOf(env: MetricEnvelope): SeriesGroup[] {
  const out: SeriesGroup[] = [];
  flattenEnvelope(env, out);
  return out;
}

/** Every sample as `metric{a="x",b="y"}` → value (NaN kept), in emission order. */
function samples(env: MetricEnvelope): Array<[string, number]> {
  const rows: Array<[string, number]> = [];
  for (const g of groupsOf(env)) {
    const labels = g.labels.map(([n, v]) => `${n}="${v}"`).join(",");
    g.metrics.forEach((m, i) => rows.push([labels ? `${m}{${labels}}` : m, g.values[i]!]));
  }
  return rows;
}

describe("flattenEnvelope", () => {
  it("cpu: numbers, optional loads, one group per core with the core label", () => {
    const env = envelope({
      type: "cpu",
      payload: { case: "cpu", value: { usage: 36.9969040247678, cores: [3.75, 69.32515337423312], load1m: 0.78, load5m: 0.49, iowait: 0, steal: 0.5 } },
    });
    expect(samples(env)).toEqual([
      ["cpu.usage", 36.9969040247678],
      ["cpu.load_1m", 0.78],
      ["cpu.load_5m", 0.49],
      ["cpu.load_15m", NaN], // optional, not set
      ["cpu.iowait", 0],
      ["cpu.steal", 0.5],
      ['cpu.cores{core="0"}', 3.75],
      ['cpu.cores{core="1"}', 69.32515337423312],
    ]);
    const [main, core0, core1] = groupsOf(env);
    expect(main!.key).toBe("cpu");
    expect(main!.labels).toEqual([]);
    expect(core0!.key).toBe("cpu\u00000");
    expect(core1!.key).toBe("cpu\u00001");
  });

  it("memory: uint64 bigints become numbers", () => {
    const env = envelope({
      type: "memory",
      payload: {
        case: "memory",
        value: { ramTotal: 25276514304n, ramUsed: 640475136n, ramAvailable: 24636039168n, ramUsedPct: 2.5338744428801445, swapTotal: 0n, swapUsed: 0n, swapPct: 0 },
      },
    });
    expect(samples(env)).toEqual([
      ["memory.ram_total", 25276514304],
      ["memory.ram_used", 640475136],
      ["memory.ram_available", 24636039168],
      ["memory.ram_used_pct", 2.5338744428801445],
      ["memory.swap_total", 0],
      ["memory.swap_used", 0],
      ["memory.swap_pct", 0],
    ]);
    expect(groupsOf(env)[0]!.values.every((v) => typeof v === "number")).toBe(true);
  });

  const disk = (mountpoint: string, inodes: boolean): MetricEnvelope =>
    envelope({
      type: "disk",
      payload: {
        case: "disk",
        value: {
          device: "/dev/vda",
          mountpoint,
          filesystem: "ext4",
          diskType: "hdd",
          diskTotal: 270553174016n,
          diskUsed: 24000069632n,
          diskAvailable: 84944224256n,
          diskUsedPct: 22.029671105742565,
          ...(inodes ? { inodesTotal: 16777216n, inodesUsed: 418148n, inodesPct: 2.492356300354004 } : {}),
        },
      },
    });

  it("disk: mountpoint is a label, other strings are ignored, unset inodes are NaN", () => {
    expect(samples(disk("/", true))).toEqual([
      ['disk.disk_total{mountpoint="/"}', 270553174016],
      ['disk.disk_used{mountpoint="/"}', 24000069632],
      ['disk.disk_available{mountpoint="/"}', 84944224256],
      ['disk.disk_used_pct{mountpoint="/"}', 22.029671105742565],
      ['disk.inodes_total{mountpoint="/"}', 16777216],
      ['disk.inodes_used{mountpoint="/"}', 418148],
      ['disk.inodes_pct{mountpoint="/"}', 2.492356300354004],
    ]);
    const [g] = groupsOf(disk("/home", false));
    expect(g!.key).toBe("disk\u0000/home");
    expect(g!.labels).toEqual([["mountpoint", "/home"]]);
    expect(g!.values.slice(4)).toEqual([NaN, NaN, NaN]);
  });

  it("keys: equal for equal label sets, different for different mounts; one metrics array per shape", () => {
    const a = groupsOf(disk("/home", true))[0]!;
    const b = groupsOf(disk("/home", false))[0]!;
    const c = groupsOf(disk("/", true))[0]!;
    expect(a.key).toBe(b.key);
    expect(a.key).not.toBe(c.key);
    expect(a.metrics).toBe(b.metrics);
    expect(a.metrics).toBe(c.metrics);
    expect(Object.isFrozen(a.metrics)).toBe(true);
    expect(a.values).not.toBe(b.values);
  });

  it("disk_io: device label", () => {
    const env = envelope({
      type: "disk_io",
      payload: {
        case: "diskIo",
        value: {
          device: "vda",
          readBytes: 418948.1966866492,
          writeBytes: 93099.59926369983,
          readOps: 44.84448074753278,
          writeOps: 2.1500778440597905,
          readTimeMs: 52,
          writeTimeMs: 1,
          ioInProgress: 3n,
          readLatencyMs: 0.3561643835616438,
          writeLatencyMs: 0.14285714285714285,
        },
      },
    });
    expect(samples(env)).toEqual([
      ['disk_io.read_bytes{device="vda"}', 418948.1966866492],
      ['disk_io.write_bytes{device="vda"}', 93099.59926369983],
      ['disk_io.read_ops{device="vda"}', 44.84448074753278],
      ['disk_io.write_ops{device="vda"}', 2.1500778440597905],
      ['disk_io.read_time_ms{device="vda"}', 52],
      ['disk_io.write_time_ms{device="vda"}', 1],
      ['disk_io.io_in_progress{device="vda"}', 3],
      ['disk_io.read_latency_ms{device="vda"}', 0.3561643835616438],
      ['disk_io.write_latency_ms{device="vda"}', 0.14285714285714285],
    ]);
    expect(groupsOf(env)[0]!.key).toBe("disk_io\u0000vda");
  });

  it("network: interface label, mac ignored, int64 speed", () => {
    const env = envelope({
      type: "network",
      payload: {
        case: "network",
        value: { interface: "eth0", macAddress: "02:fc:00:00:00:01", mtu: 1400, speed: 10000n, rxBytes: 1520.5, rxPackets: 12, rxErrors: 0, rxDrops: 1, txBytes: 980.25, txPackets: 9, txErrors: 0, txDrops: 0 },
      },
    });
    expect(samples(env)).toEqual([
      ['network.mtu{interface="eth0"}', 1400],
      ['network.speed{interface="eth0"}', 10000],
      ['network.rx_bytes{interface="eth0"}', 1520.5],
      ['network.rx_packets{interface="eth0"}', 12],
      ['network.rx_errors{interface="eth0"}', 0],
      ['network.rx_drops{interface="eth0"}', 1],
      ['network.tx_bytes{interface="eth0"}', 980.25],
      ['network.tx_packets{interface="eth0"}', 9],
      ['network.tx_errors{interface="eth0"}', 0],
      ['network.tx_drops{interface="eth0"}', 0],
    ]);
  });

  it("temperature: sensor label, optional max/crit", () => {
    const env = envelope({
      type: "temperature",
      payload: { case: "temperature", value: { sensor: "coretemp_package_id_0", temperature: 48, critTemp: 100, chip: "coretemp", label: "Package id 0" } },
    });
    expect(samples(env)).toEqual([
      ['temperature.temperature{sensor="coretemp_package_id_0"}', 48],
      ['temperature.max_temp{sensor="coretemp_package_id_0"}', NaN],
      ['temperature.crit_temp{sensor="coretemp_package_id_0"}', 100],
    ]);
  });

  it("system", () => {
    const env = envelope({ type: "system", payload: { case: "system", value: { uptime: 403n, processes: 88, users: 0, bootTime: 1795783182n } } });
    expect(samples(env)).toEqual([
      ["system.uptime", 403],
      ["system.processes", 88],
      ["system.users", 0],
      ["system.boot_time", 1795783182],
    ]);
  });

  it("process_list: totals and by-state maps, per-process values skipped", () => {
    const env = envelope({
      type: "process_list",
      payload: {
        case: "processList",
        value: {
          processes: [
            { pid: 8232, name: "node", cpuPercent: 0.9036144578313253, memPercent: 0.28533352001223783, memRss: 72122368n, status: "running", threadsTotal: 11, threadsRunning: 1, threadsWaiting: 10, state: "R", threadsByState: { R: 1, S: 10 } },
            { pid: 1, name: "process_api", cpuPercent: 0.30120481927710846, memPercent: 0.05644120003422447, memRss: 14266368n, status: "waiting", threadsTotal: 15, state: "S", threadsByState: { S: 15 } },
          ],
          totalProcesses: 89,
          totalThreads: 152,
          processesByState: { S: 51, I: 37, R: 1 },
          threadsByState: { S: 140 },
        },
      },
    });
    expect(samples(env)).toEqual([
      ["process_list.total_processes", 89],
      ["process_list.total_threads", 152],
      ['process_list.processes_by_state{state="S"}', 51],
      ['process_list.processes_by_state{state="I"}', 37],
      ['process_list.processes_by_state{state="R"}', 1],
      ['process_list.threads_by_state{state="S"}', 140],
    ]);
    const keys = groupsOf(env).map((g) => g.key);
    expect(keys).toEqual(["process_list", "process_list\u0000S", "process_list\u0000I", "process_list\u0000R", "process_list\u0000S"]);
  });

  it("process: pid (integer) and name labels, thread map with the parent's labels", () => {
    const env = envelope({
      type: "process",
      payload: {
        case: "process",
        value: { pid: 8232, name: "node", cpuPercent: 0.9, memPercent: 0.28, memRss: 72122368n, status: "running", threadsTotal: 11, threadsRunning: 1, state: "R", threadsByState: { R: 1, S: 10 } },
      },
    });
    const l = 'name="node",pid="8232"';
    expect(samples(env)).toEqual([
      [`process.cpu_percent{${l}}`, 0.9],
      [`process.mem_percent{${l}}`, 0.28],
      [`process.mem_rss{${l}}`, 72122368],
      [`process.threads_total{${l}}`, 11],
      [`process.threads_running{${l}}`, 1],
      [`process.threads_runnable{${l}}`, NaN],
      [`process.threads_waiting{${l}}`, NaN],
      [`process.threads_by_state{${l},state="R"}`, 1],
      [`process.threads_by_state{${l},state="S"}`, 10],
    ]);
    expect(groupsOf(env).map((g) => g.key)).toEqual(["process\u0000node\u00008232", "process\u0000node\u00008232\u0000R", "process\u0000node\u00008232\u0000S"]);
  });

  it("container_list: one label set per container (name, source), optional numbers NaN when absent", () => {
    const env = envelope({
      type: "container_list",
      payload: {
        case: "containerList",
        value: {
          containers: [
            { id: "3f2a", name: "spectra-busy", image: "spectra-busy:latest", state: "running", source: "docker", kind: "container", cpuPercent: 47.6, cpuLimitCores: 0.5, memoryBytes: 1196032n, memoryLimit: 67108864n, netRxBytes: 1046n, netTxBytes: 0n, restarts: 0, health: "healthy", uptimeSeconds: 125n, netRxRate: 12.5, netTxRate: 0 },
            { id: "9c1b", name: "web", state: "running", source: "proxmox", kind: "lxc", cpuPercent: 1.25, memoryBytes: 52428800n, diskBytes: 1073741824n, diskLimit: 8589934592n },
          ],
        },
      },
    });
    const groups = groupsOf(env);
    expect(groups).toHaveLength(2);
    const [busy, web] = groups;
    expect(busy!.labels).toEqual([["name", "spectra-busy"], ["source", "docker"]]);
    expect(busy!.key).toBe("container_list\u0000spectra-busy\u0000docker");
    expect(web!.labels).toEqual([["name", "web"], ["source", "proxmox"]]);
    expect(busy!.metrics).toBe(web!.metrics);
    const p = "container_list.containers.";
    expect(busy!.metrics).toEqual(
      ["cpu_percent", "cpu_limit_cores", "memory_bytes", "memory_limit", "net_rx_bytes", "net_tx_bytes", "restarts", "disk_bytes", "disk_limit", "uptime_seconds", "net_rx_rate", "net_tx_rate"].map((m) => p + m),
    );
    expect(busy!.values).toEqual([47.6, 0.5, 1196032, 67108864, 1046, 0, 0, NaN, NaN, 125, 12.5, 0]);
    expect(web!.values).toEqual([1.25, NaN, 52428800, NaN, NaN, NaN, NaN, 1073741824, 8589934592, NaN, NaN, NaN]);
  });

  it("container: the same shape as one element of a list", () => {
    const env = envelope({ type: "container", payload: { case: "container", value: { id: "3f2a", name: "web", source: "docker", cpuPercent: 2, memoryBytes: 10n } } });
    const [g] = groupsOf(env);
    expect(g!.key).toBe("container\u0000web\u0000docker");
    expect(g!.metrics[0]).toBe("container.cpu_percent");
    expect(g!.values.slice(0, 3)).toEqual([2, NaN, 10]);
  });

  it("wifi: interface label, optional rx bitrate", () => {
    const env = envelope({
      type: "wifi",
      payload: { case: "wifi", value: { interface: "wlan0", ssid: "home", signalDbm: -52, linkQuality: 81.4, frequencyGhz: 5.18, bitrateMbps: 866.7 } },
    });
    expect(samples(env)).toEqual([
      ['wifi.signal_dbm{interface="wlan0"}', -52],
      ['wifi.link_quality{interface="wlan0"}', 81.4],
      ['wifi.frequency_ghz{interface="wlan0"}', 5.18],
      ['wifi.bitrate_mbps{interface="wlan0"}', 866.7],
      ['wifi.rx_bitrate_mbps{interface="wlan0"}', NaN],
    ]);
  });

  it("throttle: optional bools become 0/1, unset ones NaN", () => {
    const env = envelope({
      type: "throttle",
      payload: { case: "throttle", value: { undervoltage: false, armFreqCapped: false, throttled: true, softTempLimit: false, undervoltageOccurred: true, freqCapOccurred: false, throttledOccurred: true } },
    });
    expect(samples(env)).toEqual([
      ["throttle.undervoltage", 0],
      ["throttle.arm_freq_capped", 0],
      ["throttle.throttled", 1],
      ["throttle.soft_temp_limit", 0],
      ["throttle.undervoltage_occurred", 1],
      ["throttle.freq_cap_occurred", 0],
      ["throttle.throttled_occurred", 1],
      ["throttle.soft_temp_occurred", NaN],
    ]);
  });

  it("clock, voltage, gpu (Raspberry Pi)", () => {
    expect(samples(envelope({ type: "clock", payload: { case: "clock", value: { armFreqHz: 1500000000n, coreFreqHz: 500000000n } } }))).toEqual([
      ["clock.arm_freq_hz", 1500000000],
      ["clock.core_freq_hz", 500000000],
      ["clock.gpu_freq_hz", NaN],
    ]);
    expect(samples(envelope({ type: "voltage", payload: { case: "voltage", value: { coreVolts: 0.8563, sdramCVolts: 1.1, sdramIVolts: 1.1, sdramPVolts: 1.1 } } }))).toEqual([
      ["voltage.core_volts", 0.8563],
      ["voltage.sdram_c_volts", 1.1],
      ["voltage.sdram_i_volts", 1.1],
      ["voltage.sdram_p_volts", 1.1],
    ]);
    expect(samples(envelope({ type: "gpu", payload: { case: "gpu", value: { gpuMemTotal: 76n * 1024n * 1024n } } }))).toEqual([
      ["gpu.gpu_mem_total", 79691776],
      ["gpu.gpu_mem_used", NaN],
    ]);
  });

  it("update_status: counts and the bool, package list skipped", () => {
    const env = envelope({
      type: "update_status",
      payload: {
        case: "updateStatus",
        value: {
          pendingCount: 126,
          securityCount: 71,
          rebootRequired: true,
          packageManager: "apt",
          packages: [{ name: "libssl3", version: "3.0.22-1~deb12u2", security: true }],
        },
      },
    });
    expect(samples(env)).toEqual([
      ["update_status.pending_count", 126],
      ["update_status.security_count", 71],
      ["update_status.reboot_required", 1],
    ]);
  });

  it("service_list, service and application_list produce no samples", () => {
    const services = envelope({
      type: "service_list",
      payload: { case: "serviceList", value: { manager: "systemd", services: [{ name: "ssh.service", status: "active", subStatus: "running", loadState: "loaded", description: "OpenBSD Secure Shell server", enabled: "enabled" }] } },
    });
    expect(groupsOf(services)).toEqual([]);
    expect(groupsOf(envelope({ type: "service", payload: { case: "service", value: { name: "ssh.service", status: "active" } } }))).toEqual([]);
    const apps = envelope({
      type: "application_list",
      payload: {
        case: "applicationList",
        value: { applications: [{ name: "bash", version: "5.2.15-2+b1", source: "dpkg", arch: "amd64" }], upgraded: [{ name: "bash", source: "dpkg", fromVersion: "5.2.15-2+b1", toVersion: "5.2.15-2+b13" }] },
      },
    });
    expect(groupsOf(apps)).toEqual([]);
  });

  it("appends to out and ignores an envelope without payload", () => {
    const out: SeriesGroup[] = [];
    flattenEnvelope(envelope({ type: "cpu" }), out);
    expect(out).toEqual([]);
    flattenEnvelope(envelope({ type: "system", payload: { case: "system", value: { uptime: 1n } } }), out);
    flattenEnvelope(envelope({ type: "system", payload: { case: "system", value: { uptime: 2n } } }), out);
    expect(out.map((g) => g.values[0])).toEqual([1, 2]);
  });
});

describe("isSnapshotCase", () => {
  it("follows the snapshot message option", () => {
    for (const c of ["processList", "serviceList", "containerList", "applicationList", "throttle", "updateStatus", "process", "service", "container"])
      expect(isSnapshotCase(c), c).toBe(true);
    for (const c of ["cpu", "memory", "disk", "diskIo", "network", "temperature", "system", "wifi", "clock", "voltage", "gpu", "nope"])
      expect(isSnapshotCase(c), c).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Every payload case, from the descriptors

const payloadCases = MetricEnvelopeSchema.oneofs.find((o) => o.name === "payload")!.fields;

function scalarSample(t: ScalarType): unknown {
  switch (t) {
    case ScalarType.STRING:
      return "x";
    case ScalarType.BYTES:
      return new Uint8Array([1]);
    case ScalarType.BOOL:
      return true;
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
    case ScalarType.SINT64:
      return 7n;
    default:
      return 7;
  }
}

/** An init object with every field set: one element per list, one entry per map. */
function fullInit(msg: DescMessage, depth = 0): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  if (depth > 4) return init;
  for (const f of msg.fields as DescField[]) {
    if (f.oneof) continue;
    switch (f.fieldKind) {
      case "scalar":
        init[f.localName] = scalarSample(f.scalar);
        break;
      case "enum":
        init[f.localName] = 1;
        break;
      case "message":
        if (f.message.typeName !== "google.protobuf.Timestamp") init[f.localName] = fullInit(f.message, depth + 1);
        break;
      case "list":
        init[f.localName] = [f.listKind === "scalar" ? scalarSample(f.scalar) : f.listKind === "enum" ? 1 : fullInit(f.message, depth + 1)];
        break;
      case "map":
        init[f.localName] = { k: f.mapKind === "scalar" ? scalarSample(f.scalar) : f.mapKind === "enum" ? 1 : fullInit(f.message, depth + 1) };
        break;
    }
  }
  return init;
}

describe("every payload case", () => {
  const described = describeSeries();
  const describedKeys = new Set(described.map((d) => `${d.type} ${d.metric} ${d.labels.join(",")}`));

  it("describeSeries lists names once, with sorted labels", () => {
    expect(describedKeys.size).toBe(described.length);
    for (const d of described) {
      expect(d.metric.startsWith(`${d.type}.`)).toBe(true);
      expect([...d.labels].sort()).toEqual(d.labels);
    }
    expect(described).toContainEqual({ type: "cpu", metric: "cpu.cores", labels: ["core"] });
    expect(described).toContainEqual({ type: "disk", metric: "disk.disk_used_pct", labels: ["mountpoint"] });
    expect(described).toContainEqual({ type: "container_list", metric: "container_list.containers.cpu_percent", labels: ["name", "source"] });
    expect(described).toContainEqual({ type: "process_list", metric: "process_list.processes_by_state", labels: ["state"] });
    expect(described.some((d) => d.metric.startsWith("process_list.processes."))).toBe(false);
  });

  for (const f of payloadCases) {
    it(`${f.name}: empty and full payloads flatten, and describeSeries covers what they produce`, () => {
      if (f.fieldKind !== "message") throw new Error("payload case is not a message");
      const empty = create(MetricEnvelopeSchema, { payload: { case: f.localName, value: create(f.message) } as Init["payload"] });
      const full = create(MetricEnvelopeSchema, { payload: { case: f.localName, value: create(f.message, fullInit(f.message)) } as Init["payload"] });
      const groups = [...groupsOf(empty), ...groupsOf(full)];
      const produced = new Set<string>();
      for (const g of groups) {
        expect(g.values).toHaveLength(g.metrics.length);
        for (const [i, m] of g.metrics.entries()) {
          produced.add(m);
          expect(describedKeys.has(`${f.name} ${m} ${g.labels.map(([n]) => n).join(",")}`), m).toBe(true);
          expect(Number.isNaN(g.values[i]!) || g.values[i] === 7 || g.values[i] === 1 || g.values[i] === 0, m).toBe(true);
        }
      }
      // The full payload produces every metric describeSeries announces for this type.
      const announced = described.filter((d) => d.type === f.name).map((d) => d.metric);
      expect([...produced].sort()).toEqual([...new Set(announced)].sort());
    });
  }
});
