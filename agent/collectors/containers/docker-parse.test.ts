import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  containerName,
  cpuLimitCores,
  cpuPercent,
  cpuSample,
  dockerTimeMs,
  healthOf,
  memoryLimitBytes,
  memoryUsedBytes,
  networkTotals,
  parseContainerList,
  uptimeSeconds,
  type DockerContainerSummary,
  type DockerInspect,
  type DockerStats,
} from "./docker-parse.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const load = (rel: string): unknown => JSON.parse(fs.readFileSync(path.join(here, "testdata", rel), "utf8"));
const stats = (rel: string): DockerStats => load(rel) as DockerStats;

/** CPU % from a non-one-shot answer (engine's precpu vs cpu). */
function ownCpu(s: DockerStats): number | undefined {
  const pre = cpuSample(s, "precpu_stats");
  const cur = cpuSample(s, "cpu_stats");
  return pre && cur ? cpuPercent(pre, cur) : undefined;
}

describe("Docker stats (captured, Engine 20.10, cgroup v1)", () => {
  it("computes spectra-busy's CPU % like the docker CLI: 47.64 % of one core, limited to 0.5 CPU", () => {
    expect(ownCpu(stats("docker/docker-stats-spectra-busy.json"))).toBeCloseTo(47.64, 2);
    const inspect = load("docker/docker-inspect-spectra-busy.trimmed.json") as DockerInspect;
    expect(cpuLimitCores(inspect.HostConfig)).toBe(0.5);
  });

  it("computes CPU % from two one-shot answers against the previous reading: 49.75 %", () => {
    const t0 = stats("docker/docker-stats-oneshot-spectra-busy.t0.json");
    const t1 = stats("docker/docker-stats-oneshot-spectra-busy.t1.json");
    // One-shot answers have no precpu: nothing to compute from a single one.
    expect(cpuSample(t1, "precpu_stats")).toBeUndefined();
    expect(ownCpu(t1)).toBeUndefined();
    const a = cpuSample(t0, "cpu_stats");
    const b = cpuSample(t1, "cpu_stats");
    expect(a && b && cpuPercent(a, b)).toBeCloseTo(49.75, 2);
    // Counters that went backwards (a restart: new cgroup) give nothing, never a negative figure.
    expect(a && b && cpuPercent(b, a)).toBeUndefined();
  });

  it("reports spectra-mem's memory without page cache: usage − total_inactive_file = 42369024 B (not usage − cache)", () => {
    const s = stats("docker/docker-stats-spectra-mem.json");
    expect(memoryUsedBytes(s.memory_stats)).toBe(42369024);
    expect(s.memory_stats?.usage! - s.memory_stats?.stats?.["cache"]!).toBe(425984); // the wrong formula
    expect(memoryLimitBytes({ HostConfig: { Memory: 134217728 } }, s.memory_stats)).toBe(134217728);
  });

  it("leaves the limit out when unlimited (the engine then reports the host's RAM)", () => {
    const s = stats("docker/docker-stats-spectra-idle.json");
    expect(s.memory_stats?.limit).toBe(25276502016);
    expect(memoryLimitBytes({ HostConfig: { Memory: 0 } }, s.memory_stats)).toBeUndefined();
    expect(memoryLimitBytes(undefined, s.memory_stats)).toBeUndefined();
    expect(ownCpu(s)).toBe(0);
    expect(memoryUsedBytes(s.memory_stats)).toBe(319488);
  });

  it("sums the network counters", () => {
    expect(networkTotals(stats("docker/docker-stats-spectra-busy.json"))).toEqual({ rx: 1172, tx: 0 });
  });

  it("gives nothing for the zeroed answers of exited and created containers", () => {
    for (const f of ["docker/docker-stats-spectra-exited.json", "docker/docker-stats-spectra-created.json"]) {
      const s = stats(f);
      expect(cpuSample(s, "cpu_stats")).toBeUndefined();
      expect(memoryUsedBytes(s.memory_stats)).toBeUndefined();
      expect(dockerTimeMs(s.read)).toBeUndefined();
    }
  });
});

describe("Docker stats (HAND-WRITTEN samples, testdata/README.md)", () => {
  it("cgroup v2: usage − inactive_file, online_cpus without percpu_usage, two networks summed", () => {
    const s = stats("handwritten/docker-stats-cgroup2.json");
    expect(ownCpu(s)).toBeCloseTo(20, 6);
    expect(memoryUsedBytes(s.memory_stats)).toBe(62914560);
    expect(networkTotals(s)).toEqual({ rx: 3000, tx: 1000 });
  });

  it("Windows: 100 ns units over wall time, per one core; private working set", () => {
    const s = stats("handwritten/docker-stats-windows.json");
    expect(cpuSample(s, "cpu_stats")?.systemUsage).toBeUndefined();
    expect(ownCpu(s)).toBeCloseTo(50, 6);
    expect(memoryUsedBytes(s.memory_stats)).toBe(125829120);
    expect(networkTotals(s)).toEqual({ rx: 5000, tx: 1500 });
  });

  it("host network: no network figures; falls through to inactive_file like the CLI", () => {
    const s = stats("handwritten/docker-stats-host-network.json");
    expect(networkTotals(s)).toBeUndefined();
    expect(memoryUsedBytes(s.memory_stats)).toBe(3072000);
    expect(ownCpu(s)).toBe(0);
  });
});

describe("Docker list and inspect", () => {
  it("parses the captured list: names without '/', states, images", () => {
    const list = parseContainerList(load("docker/docker-listContainers.json"));
    expect(list.map((c) => [containerName(c), c.State])).toEqual([
      ["spectra-paused", "paused"],
      ["spectra-created", "created"],
      ["spectra-exited", "exited"],
      ["spectra-mem", "running"],
      ["spectra-busy", "running"],
      ["spectra-idle", "running"],
    ]);
    expect(list.every((c) => c.Image === "spectra/busybox:test" && healthOf(c) === undefined)).toBe(true);
  });

  it("rejects an answer that is not a list and skips entries without an id", () => {
    expect(() => parseContainerList({ message: "page not found" })).toThrow(/not an array/);
    expect(parseContainerList([{ Id: "" }, null, { Names: ["/x"] }, { Id: "abc" }])).toEqual([{ Id: "abc" }]);
    expect(containerName({ Id: "0123456789abcdef" })).toBe("0123456789ab");
  });

  it("reads health from the list: the Health field of newer engines, else the Status suffix", () => {
    const h = (c: Partial<DockerContainerSummary>): string | undefined => healthOf({ Id: "x", ...c });
    expect(h({ Status: "Up 3 minutes (healthy)" })).toBe("healthy");
    expect(h({ Status: "Up 5 seconds (health: starting)" })).toBe("starting");
    expect(h({ Status: "Up 2 hours (unhealthy)" })).toBe("unhealthy");
    expect(h({ Status: "Up 2 seconds (Paused)" })).toBeUndefined();
    expect(h({ Status: "Up 1 minute", Health: { Status: "healthy" } })).toBe("healthy");
    expect(h({ Status: "Up 1 minute", Health: { Status: "none" } })).toBeUndefined();
  });

  it("turns CPU quotas into cores", () => {
    expect(cpuLimitCores({ NanoCpus: 1_500_000_000 })).toBe(1.5);
    expect(cpuLimitCores({ NanoCpus: 0, CpuQuota: 50_000, CpuPeriod: 100_000 })).toBe(0.5);
    expect(cpuLimitCores({ CpuQuota: 200_000, CpuPeriod: 0 })).toBe(2);
    expect(cpuLimitCores({ NanoCpus: 0, CpuQuota: 0, CpuPeriod: 0 })).toBeUndefined();
    expect(cpuLimitCores(undefined)).toBeUndefined();
  });

  it("computes uptime from StartedAt for containers that are up", () => {
    const inspect = load("docker/docker-inspect-spectra-busy.trimmed.json") as DockerInspect;
    const now = Date.parse("2026-11-27T08:55:46.845Z");
    expect(uptimeSeconds("running", inspect, now)).toBe(180);
    expect(uptimeSeconds("paused", inspect, now)).toBe(180);
    expect(uptimeSeconds("exited", inspect, now)).toBeUndefined();
    expect(uptimeSeconds("running", { State: { StartedAt: "0001-01-01T00:00:00Z" } }, now)).toBeUndefined();
  });
});
