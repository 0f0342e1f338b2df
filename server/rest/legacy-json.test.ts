import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { AgentSummarySchema } from "../../gen/spectra/v1/admin_service_pb.js";
import { HostInfoSchema } from "../../gen/spectra/v1/agent_service_pb.js";
import {
  CommandSchema,
  CommandState,
  CommandType,
  DiskUsageParamsSchema,
  FetchLogsParamsSchema,
  ListMountsParamsSchema,
  LogLevel,
  NetworkAction,
  NetworkDiagParamsSchema,
  type Command,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import {
  LegacyJsonError,
  agentToLegacy,
  commandRecordToLegacy,
  commandToLegacy,
  envelopesFromLegacy,
  formatRfc3339,
  goJson,
  hostInfoFromLegacy,
  hostInfoToLegacy,
  outcomeFromLegacy,
  outcomeResultToLegacy,
  parseRfc3339,
} from "./legacy-json.js";

const ts = (seconds: number, nanos = 0) => ({ seconds: BigInt(seconds), nanos });
const plain = (t: { seconds: bigint; nanos: number } | undefined) => t && { seconds: t.seconds, nanos: t.nanos };

describe("parseRfc3339 / formatRfc3339", () => {
  it.each([
    ["2026-02-02T07:48:40.123456789-05:00", ts(1770036520, 123456789)],
    ["2026-02-02T12:48:40.123456789Z", ts(1770036520, 123456789)],
    ["2026-02-02T12:48:40Z", ts(1770036520)],
    ["2026-02-02T13:48:40.5+01:00", ts(1770036520, 500000000)],
    ["2026-02-02T12:48:40.000000001Z", ts(1770036520, 1)],
    // Go truncates digits past the ninth.
    ["2026-02-02T12:48:40.1234567899Z", ts(1770036520, 123456789)],
    ["1970-01-01T00:00:00Z", ts(0)],
    ["1969-12-31T23:59:59.9Z", ts(-1, 900000000)],
    ["0001-01-01T00:00:00Z", ts(-62135596800)],
    ["2024-02-29T00:00:00Z", ts(1709164800)],
  ])("parses %s", (text, want) => {
    expect(plain(parseRfc3339(text))).toEqual(want);
  });

  it.each([
    "2026-02-02T07:48:40", // no zone
    "2026-02-02 07:48:40Z",
    "2026-13-02T07:48:40Z",
    "2026-02-30T07:48:40Z",
    "2023-02-29T00:00:00Z",
    "2026-02-02T24:00:00Z",
    "2026-02-02T23:60:00Z",
    "2026-02-02T23:59:60Z",
    "2026-02-02T23:59:59+24:00",
    "2026-02-02T23:59:59.Z",
    "0000-01-01T00:00:00Z",
    "",
  ])("rejects %j", (text) => {
    expect(() => parseRfc3339(text)).toThrow(LegacyJsonError);
  });

  it("formats like Go's time.Time JSON in UTC, trailing zeros trimmed", () => {
    expect(formatRfc3339(parseRfc3339("2026-02-02T07:48:40.123456789-05:00"))).toBe("2026-02-02T12:48:40.123456789Z");
    expect(formatRfc3339(parseRfc3339("2026-02-02T07:48:40.5-05:00"))).toBe("2026-02-02T12:48:40.5Z");
    expect(formatRfc3339(parseRfc3339("2026-02-02T07:48:40-05:00"))).toBe("2026-02-02T12:48:40Z");
    expect(formatRfc3339(timestampFromMs(1770036520120))).toBe("2026-02-02T12:48:40.12Z");
  });
});

describe("goJson", () => {
  it("escapes HTML characters as Go's encoding/json does", () => {
    expect(goJson({ path: "/a<b>&c\u2028" })).toBe('{"path":"/a\\u003cb\\u003e\\u0026c\\u2028"}');
  });
});

describe("envelopesFromLegacy", () => {
  const cpu = {
    type: "cpu",
    timestamp: "2026-02-02T07:48:40.123456789-05:00",
    hostname: "web-01",
    data: { usage: 12.5, cores: [10, 15], load_1m: 0.5, load_5m: 0.25, iowait: 1.5 },
  };

  it("maps an envelope exactly, timestamp to the nanosecond", () => {
    const { envelopes, ignored, relabelled } = envelopesFromLegacy([cpu], "web-01");
    expect(ignored).toEqual([]);
    expect(relabelled).toBe(0);
    expect(envelopes).toHaveLength(1);
    const env = envelopes[0]!;
    expect(env.type).toBe("cpu");
    expect(env.hostname).toBe("web-01");
    expect(plain(env.timestamp)).toEqual(ts(1770036520, 123456789));
    expect(env.payload.case).toBe("cpu");
    if (env.payload.case !== "cpu") throw new Error("unreachable");
    expect(env.payload.value.usage).toBe(12.5);
    expect(env.payload.value.cores).toEqual([10, 15]);
    expect(env.payload.value.load1m).toBe(0.5);
    expect(env.payload.value.load5m).toBe(0.25);
    expect(env.payload.value.load15m).toBeUndefined();
    expect(env.payload.value.iowait).toBe(1.5);
  });

  it("takes 64-bit numbers, optionals, nulls, nested lists and the `updates` alias", () => {
    const { envelopes } = envelopesFromLegacy(
      [
        { type: "memory", timestamp: "2026-02-02T12:00:00Z", data: { ram_total: 16777216000, ram_used: 1, swap_pct: 0 } },
        { type: "temperature", timestamp: "2026-02-02T12:00:00Z", data: { sensor: "cpu", temperature: 41.5, max_temp: null } },
        {
          type: "process_list",
          timestamp: "2026-02-02T12:00:00Z",
          data: { processes: [{ pid: 1, name: "init", mem_rss: 4096, status: "waiting", threads_total: 1, threads_running: 0 }] },
        },
        { type: "updates", timestamp: "2026-02-02T12:00:00Z", data: { pending_count: 3, packages: [{ name: "bash", security: true }] } },
      ],
      "web-01",
    );
    expect(envelopes.map((e) => e.type)).toEqual(["memory", "temperature", "process_list", "update_status"]);
    const [mem, temp, procs, upd] = envelopes.map((e) => e.payload);
    expect(mem?.case === "memory" && mem.value.ramTotal).toBe(16777216000n);
    expect(temp?.case === "temperature" && temp.value.maxTemp).toBeUndefined();
    expect(procs?.case === "processList" && procs.value.processes[0]?.threadsRunning).toBe(0);
    expect(procs?.case === "processList" && procs.value.processes[0]?.memRss).toBe(4096n);
    expect(upd?.case === "updateStatus" && upd.value.packages[0]?.security).toBe(true);
  });

  it("matches keys case-insensitively and ignores unknown keys, as Go does", () => {
    const { envelopes } = envelopesFromLegacy([{ type: "cpu", data: { Usage: 3, future_key: "x" } }], "h");
    const p = envelopes[0]!.payload;
    expect(p.case === "cpu" && p.value.usage).toBe(3);
    expect(envelopes[0]!.timestamp).toBeUndefined(); // the ingest fills "now"
  });

  it("ignores unknown types and envelopes without data; null is an empty batch", () => {
    const r = envelopesFromLegacy([{ type: "quantum", data: { x: 1 } }, { type: "cpu" }, cpu], "web-01");
    expect(r.envelopes).toHaveLength(1);
    expect(r.ignored).toEqual(['unknown type "quantum"', "cpu without data"]);
    expect(envelopesFromLegacy(null, "h").envelopes).toEqual([]);
  });

  it("relabels envelopes naming another host with the query's host", () => {
    const r = envelopesFromLegacy([{ ...cpu, hostname: "other" }, { ...cpu, hostname: "" }], "web-01");
    expect(r.relabelled).toBe(1);
    expect(r.envelopes.map((e) => e.hostname)).toEqual(["web-01", "web-01"]);
  });

  it.each([
    [{ type: "cpu" }, /expected an array of envelopes, got object/],
    [[1], /envelope 0: expected object, got number/],
    [[{ type: 5, data: {} }], /envelope 0: type: expected string, got number/],
    [[{ type: "cpu", timestamp: 5, data: {} }], /envelope 0: timestamp: expected string/],
    [[{ type: "cpu", timestamp: "yesterday", data: {} }], /envelope 0: timestamp: cannot parse "yesterday"/],
    [[cpu, { type: "cpu", data: { usage: "12.5" } }], /envelope 1 \(cpu\): data.usage: expected number, got string "12.5"/],
    [[{ type: "cpu", data: { cores: 5 } }], /data.cores: expected array, got number/],
    [[{ type: "cpu", data: [] }], /data: expected object, got array/],
    [[{ type: "memory", data: { ram_total: -1 } }], /ram_total/],
    [[{ type: "network", data: { mtu: 1500.5 } }], /mtu/],
    [[{ type: "process_list", data: { processes: [{ pid: "1" }] } }], /data.processes\[0\].pid: expected number/],
    [[{ type: "throttle", data: { throttled: 1 } }], /data.throttled: expected boolean/],
    // Even an unknown type needs a readable header, as Go decoded the whole batch first.
    [[{ type: "quantum", timestamp: "bad" }], /timestamp/],
  ])("rejects %j", (json, message) => {
    expect(() => envelopesFromLegacy(json, "web-01")).toThrow(message);
  });
});

describe("host info", () => {
  const legacy = {
    hostname: "web-01",
    os: "linux",
    platform: "debian",
    platform_ver: "12",
    kernel: "6.1.0-18-amd64",
    arch: "amd64",
    cpu_model: "Intel(R) Xeon(R)",
    cpu_cores: 8,
    ram_total: 16777216000,
    agent_version: "0.1.0",
    boot_time: 1769990000,
    ips: ["192.168.1.10"],
  };

  it("round-trips the register body with plain numbers", () => {
    const host = hostInfoFromLegacy(legacy);
    expect(host.ramTotal).toBe(16777216000n);
    expect(host.bootTime).toBe(1769990000n);
    expect(hostInfoToLegacy(host)).toEqual(legacy);
    expect(JSON.stringify(hostInfoToLegacy(host))).toContain('"ram_total":16777216000,');
  });

  it("rejects wrong types", () => {
    expect(() => hostInfoFromLegacy({ ...legacy, cpu_cores: "8" })).toThrow(/cpu_cores: expected number/);
    expect(() => hostInfoFromLegacy([])).toThrow(/expected object, got array/);
  });

  it("lists an agent as host info plus last_seen", () => {
    const a = create(AgentSummarySchema, {
      host: create(HostInfoSchema, hostInfoFromLegacy(legacy)),
      lastSeen: timestampFromMs(1770036520500),
      registeredAt: timestampFromMs(1770036520000),
      pendingCommands: 2,
    });
    expect(agentToLegacy(a)).toEqual({
      ...legacy,
      last_seen: "2026-02-02T12:48:40.5Z",
      registered_at: "2026-02-02T12:48:40Z",
      pending_commands: 2,
    });
  });
});

describe("commands", () => {
  const decode = (cmd: Command) => {
    const json = JSON.parse(commandToLegacy(cmd)) as { id: string; type: string; payload: string | null };
    return { ...json, decoded: json.payload === null ? null : Buffer.from(json.payload, "base64").toString("utf8") };
  };

  it("encodes FETCH_LOGS as {min_level}", () => {
    const cmd = create(CommandSchema, {
      id: "c1",
      type: CommandType.FETCH_LOGS,
      params: { case: "fetchLogs", value: create(FetchLogsParamsSchema, { minLevel: LogLevel.ERROR }) },
    });
    const got = decode(cmd);
    expect(got.id).toBe("c1");
    expect(got.type).toBe("FETCH_LOGS");
    expect(got.decoded).toBe('{"min_level":"ERROR"}');
  });

  it("encodes DISK_USAGE exactly as the doc's example payload", () => {
    const cmd = create(CommandSchema, {
      id: "c2",
      type: CommandType.DISK_USAGE,
      params: { case: "diskUsage", value: create(DiskUsageParamsSchema, { path: "/var/log", topN: 10 }) },
    });
    expect(JSON.parse(commandToLegacy(cmd))).toEqual({
      id: "c2",
      type: "DISK_USAGE",
      payload: "eyJwYXRoIjoiL3Zhci9sb2ciLCJ0b3BfbiI6MTB9",
    });
    expect(decode(cmd).decoded).toBe('{"path":"/var/log","top_n":10}');
    const empty = create(CommandSchema, { ...cmd, params: { case: "diskUsage", value: create(DiskUsageParamsSchema, { topN: 20 }) } });
    expect(decode(empty).decoded).toBe('{"path":"","top_n":20}');
  });

  it("encodes NETWORK_DIAG with a lower-case action and count", () => {
    const cmd = create(CommandSchema, {
      id: "c3",
      type: CommandType.NETWORK_DIAG,
      params: {
        case: "networkDiag",
        value: create(NetworkDiagParamsSchema, { action: NetworkAction.PING, target: "example.org" }),
      },
    });
    expect(decode(cmd).decoded).toBe('{"action":"ping","target":"example.org","count":0}');
  });

  it("sends new, unset parameters only when set", () => {
    const cmd = create(CommandSchema, {
      id: "c4",
      type: CommandType.FETCH_LOGS,
      params: {
        case: "fetchLogs",
        value: create(FetchLogsParamsSchema, { minLevel: LogLevel.DEBUG, unit: "ssh", since: timestampFromMs(0) }),
      },
    });
    expect(decode(cmd).decoded).toBe('{"min_level":"DEBUG","since":"1970-01-01T00:00:00Z","unit":"ssh"}');
  });

  it("encodes LIST_MOUNTS with a null payload, as the original did", () => {
    const cmd = create(CommandSchema, {
      id: "c5",
      type: CommandType.LIST_MOUNTS,
      params: { case: "listMounts", value: create(ListMountsParamsSchema) },
    });
    expect(commandToLegacy(cmd)).toBe('{"id":"c5","type":"LIST_MOUNTS","payload":null}');
  });
});

describe("results", () => {
  const roundTrip = (legacy: Record<string, unknown>) => {
    const outcome = outcomeFromLegacy(legacy);
    return { outcome, back: outcomeResultToLegacy(outcome) };
  };

  it("FETCH_LOGS: array of entries", () => {
    const payload = [
      { timestamp: 1770036520, source: "sshd", level: "ERROR", message: "boom", pid: 42, process_name: "sshd" },
      { timestamp: 1770036521, source: "kernel", level: "CRITICAL", message: "oops" },
    ];
    const { outcome, back } = roundTrip({ id: "c1", type: "FETCH_LOGS", payload });
    expect(outcome.commandId).toBe("c1");
    expect(outcome.type).toBe(CommandType.FETCH_LOGS);
    expect(outcome.result.case).toBe("fetchLogs");
    if (outcome.result.case !== "fetchLogs") throw new Error("unreachable");
    expect(outcome.result.value.entries[0]?.timestamp).toBe(1770036520n);
    expect(outcome.result.value.entries[1]?.pid).toBeUndefined();
    expect(back).toEqual(payload);
  });

  it("DISK_USAGE: object with scanned_at and duration", () => {
    const payload = {
      root: "/var",
      top_dirs: [{ path: "/var/log", size: 5368709120, count: 12 }, { path: "/var/lib", size: 1024 }],
      top_files: [{ path: "/var/log/syslog", size: 1048576 }],
      scanned_dirs: 10,
      scanned_files: 200,
      error_count: 1,
      partial: false,
      duration_ms: 1234,
      scanned_at: "2026-02-02T07:48:40.123456789-05:00",
    };
    const { outcome, back } = roundTrip({ id: "c2", type: "DISK_USAGE", payload });
    if (outcome.result.case !== "diskUsage") throw new Error("wrong case");
    expect(outcome.result.value.topDirs[0]?.size).toBe(5368709120n);
    expect(plain(outcome.result.value.scannedAt)).toEqual(ts(1770036520, 123456789));
    expect(back).toEqual({ ...payload, scanned_at: "2026-02-02T12:48:40.123456789Z" });
    expect(JSON.stringify(back)).toContain('"size":5368709120,');
  });

  it("LIST_MOUNTS: array", () => {
    const payload = [{ mountpoint: "/", device: "/dev/sda1", fstype: "ext4" }];
    expect(roundTrip({ id: "c3", type: "LIST_MOUNTS", payload }).back).toEqual(payload);
  });

  it("NETWORK_DIAG: ping rtt in nanoseconds, netstat user as a string uid", () => {
    const ping = {
      action: "ping",
      target: "127.0.0.1",
      ping_results: [
        { seq: 1, success: true, rtt: 1234567, response: "reply", peer: "127.0.0.1" },
        { seq: 2, success: false, rtt: 0, response: "timeout", peer: "", code: 3 },
      ],
    };
    const r = roundTrip({ id: "c4", type: "NETWORK_DIAG", payload: ping });
    if (r.outcome.result.case !== "networkDiag") throw new Error("wrong case");
    expect(r.outcome.result.value.pingResults[0]?.rtt).toBe(1234567n);
    expect(r.back).toEqual(ping);

    const netstat = {
      action: "netstat",
      target: "Local System",
      netstat: [
        { proto: "tcp", local_addr: "0.0.0.0", local_port: 22, remote_addr: "0.0.0.0", remote_port: 0, state: "LISTEN", user: "0" },
      ],
    };
    expect(roundTrip({ id: "c5", type: "NETWORK_DIAG", payload: netstat }).back).toEqual(netstat);
    const trace = { action: "traceroute", target: "127.0.0.1", raw_output: " 1  localhost  0.1 ms\n" };
    expect(roundTrip({ id: "c6", type: "NETWORK_DIAG", payload: trace }).back).toEqual(trace);
  });

  it("an error result keeps the error and has no result", () => {
    const { outcome, back } = roundTrip({ id: "c7", type: "DISK_USAGE", payload: null, error: "permission denied" });
    expect(outcome.error).toBe("permission denied");
    expect(outcome.result.case).toBeUndefined();
    expect(back).toBeNull();
  });

  it.each([
    [[], /expected a result object, got array/],
    [{ id: 5 }, /id: expected string/],
    [{ id: "c", type: "DISK_USAGE", payload: [] }, /payload: expected object, got array/],
    [{ id: "c", type: "FETCH_LOGS", payload: {} }, /payload.entries: expected array, got object/],
    [{ id: "c", type: "NETWORK_DIAG", payload: { action: "ping", ping_results: [{ rtt: "1ms" }] } }, /rtt: expected number/],
    [{ id: "c", type: "DISK_USAGE", payload: { scanned_at: "now" } }, /scanned_at: cannot parse/],
  ])("rejects %j", (json, message) => {
    expect(() => outcomeFromLegacy(json)).toThrow(message);
  });

  it("shows a stored command in the legacy shape", () => {
    const outcome = outcomeFromLegacy({ id: "c8", type: "LIST_MOUNTS", payload: [{ mountpoint: "/", device: "d", fstype: "xfs" }] });
    const rec = {
      command: create(CommandSchema, { id: "c8", type: CommandType.LIST_MOUNTS }),
      hostname: "web-01",
      state: CommandState.COMPLETED,
      createdAtMs: 1770036520000,
      requestedBy: "test",
      deliveredAtMs: 1770036521000,
      finishedAtMs: 1770036522250,
      outcome,
    };
    expect(commandRecordToLegacy(rec)).toEqual({
      id: "c8",
      hostname: "web-01",
      type: "LIST_MOUNTS",
      state: "completed",
      created_at: "2026-02-02T12:48:40Z",
      requested_by: "test",
      delivered_at: "2026-02-02T12:48:41Z",
      finished_at: "2026-02-02T12:48:42.25Z",
      payload: [{ mountpoint: "/", device: "d", fstype: "xfs" }],
    });
    expect(commandRecordToLegacy({ ...rec, state: CommandState.QUEUED, deliveredAtMs: undefined, finishedAtMs: undefined, outcome: undefined })).toEqual({
      id: "c8",
      hostname: "web-01",
      type: "LIST_MOUNTS",
      state: "queued",
      created_at: "2026-02-02T12:48:40Z",
      requested_by: "test",
      payload: null,
    });
  });
});
