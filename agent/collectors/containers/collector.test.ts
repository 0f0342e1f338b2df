import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { silentLogger, type Logger } from "../../../common/logger.js";
import type { ContainerInfo, ContainerList } from "../../../gen/spectra/v1/metrics_pb.js";
import { createHostAccess } from "../../host/index.js";
import { NO_DATA, type Collector, type Payload } from "../types.js";
import { createContainersCollector, type ContainersDeps } from "./collector.js";
import { cpuPercent, cpuSample, type DockerStats } from "./docker-parse.js";
import { dockerEndpoint } from "./docker.js";
import { startFakeEngine, startHungSocket, type FakeEngine } from "./testing/fake-engine.js";

/**
 * The whole collector against a fake Docker engine on a unix socket (captured answers, `testing/fake-engine.ts`)
 * and the stand-in `pvesh` on PATH (hand-written answers, `testdata/pvesh/`), with the real command runner.
 */
const here = path.dirname(fileURLToPath(import.meta.url));
const dockerData = (f: string): DockerStats =>
  JSON.parse(fs.readFileSync(path.join(here, "testdata", "docker", f), "utf8")) as DockerStats;
const ORIGINAL_PATH = process.env["PATH"];
const NOW = Date.parse("2026-11-27T09:00:00Z");

let tmp: string;
let pveBin: string;
let failingPveBin: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "spectra-containers-"));
  // A copy of the stand-in, so a test can swap in the t1 guest list.
  pveBin = path.join(tmp, "pve-bin");
  fs.mkdirSync(pveBin);
  for (const f of fs.readdirSync(path.join(here, "testdata", "pvesh")))
    fs.copyFileSync(path.join(here, "testdata", "pvesh", f), path.join(pveBin, f));
  fs.chmodSync(path.join(pveBin, "pvesh"), 0o755);
  // A pvesh that always fails as pvesh does for a non-root user.
  failingPveBin = path.join(tmp, "failing-pve-bin");
  fs.mkdirSync(failingPveBin);
  fs.writeFileSync(
    path.join(failingPveBin, "pvesh"),
    `#!/bin/sh\ncat '${path.join(here, "testdata", "pvesh", "error-not-root.stderr")}' >&2\nexit 255\n`,
    { mode: 0o755 },
  );
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => {
  process.env["PATH"] = ORIGINAL_PATH;
});

/** Puts `dir` first on PATH (the command runner and the presence check both read it), or leaves pvesh out. */
function pathWith(dir: string | undefined): void {
  const clean = (ORIGINAL_PATH ?? "").split(":").filter((d) => !fs.existsSync(path.join(d, "pvesh")));
  process.env["PATH"] = [...(dir ? [dir] : []), ...clean].join(":");
}

interface LogLine {
  level: number;
  msg: string;
  source?: string;
}

function recordingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

function make(options: Record<string, unknown>, deps: ContainersDeps = {}, logger: Logger = silentLogger()): Collector {
  return createContainersCollector(
    { host: createHostAccess({}, { platform: "linux" }), logger, options },
    {
      docker: { nowMs: () => NOW, dockerHost: undefined, ...deps.docker },
      proxmox: { pveDir: path.join(tmp, "no-etc-pve"), ...deps.proxmox },
    },
  );
}

async function list(c: Collector): Promise<ContainerInfo[]> {
  const out = await c.collect(AbortSignal.timeout(20_000));
  if (out === NO_DATA) throw new Error("NO_DATA");
  expect(out).toHaveLength(1);
  const p = out[0] as Payload;
  expect(p.case).toBe("containerList");
  return (p.value as ContainerList).containers;
}

/** Optional proto fields that must not be set (unset fields are absent from the message). */
function expectUnset(row: ContainerInfo, ...keys: Array<keyof ContainerInfo>): void {
  for (const k of keys) expect(row[k], String(k)).toBeUndefined();
}

const byName = (rows: ContainerInfo[], name: string): ContainerInfo => {
  const r = rows.find((x) => x.name === name);
  if (!r) throw new Error(`no ${name} in ${rows.map((x) => x.name).join(", ")}`);
  return r;
};

describe("containers collector: Docker (fake engine) and Proxmox (stand-in pvesh) together", () => {
  let engine: FakeEngine;
  beforeAll(async () => {
    engine = await startFakeEngine(tmp);
  });
  afterAll(async () => {
    await engine.close();
  });

  it("reports both sources over three runs: first-sight CPU, deltas, cached inspects, rates, slow and failing guests", async () => {
    pathWith(pveBin);
    fs.copyFileSync(
      path.join(here, "testdata", "pvesh", "cluster-resources.json"),
      path.join(pveBin, "cluster-resources.json"),
    );
    let mono = 1_000;
    const { logger, lines } = recordingLogger();
    const c = make(
      { docker_socket: engine.socketPath, concurrency: 2, pvesh_timeout: "1s" },
      { proxmox: { monotonicMs: () => mono } },
      logger,
    );

    // Run 1.
    const started = performance.now();
    let rows = await list(c);
    const firstRunMs = performance.now() - started;
    expect(rows.map((r) => `${r.source}:${r.name}`)).toEqual([
      "docker:spectra-busy",
      "docker:spectra-created",
      "docker:spectra-exited",
      "docker:spectra-idle",
      "docker:spectra-mem",
      "docker:spectra-paused",
      "proxmox:broken",
      "proxmox:db",
      "proxmox:dns",
      "proxmox:paused-vm",
      "proxmox:proxy",
      "proxmox:web",
    ]);
    const busy = byName(rows, "spectra-busy");
    expect(busy).toMatchObject({
      state: "running",
      image: "spectra/busybox:test",
      kind: "container",
      cpuLimitCores: 0.5,
      memoryBytes: 335872n,
      memoryLimit: 67108864n,
      restarts: 0,
      netRxBytes: 1172n,
      netTxBytes: 0n,
    });
    expect(busy.cpuPercent).toBeCloseTo(47.64, 2); // first sight: the engine's own 1 s pair
    expect(busy.netRxRate).toBeUndefined();
    expect(busy.uptimeSeconds).toBe(BigInt(Math.floor((NOW - Date.parse("2026-11-27T08:52:46.845984007Z")) / 1000)));
    expect(byName(rows, "spectra-mem")).toMatchObject({ memoryBytes: 42369024n, memoryLimit: 134217728n });
    expect(byName(rows, "spectra-idle")).toMatchObject({ cpuPercent: 0, memoryBytes: 319488n, restarts: 2 });
    expectUnset(byName(rows, "spectra-idle"), "memoryLimit", "cpuLimitCores", "health");
    for (const name of ["spectra-paused", "spectra-exited", "spectra-created"]) {
      expect(byName(rows, name)).toMatchObject({ cpuPercent: 0, memoryBytes: 0n });
      expectUnset(byName(rows, name), "netRxBytes", "netTxBytes", "netRxRate");
    }
    expect(byName(rows, "spectra-exited").state).toBe("exited");
    expect(byName(rows, "spectra-created").uptimeSeconds).toBeUndefined();
    // Stats only for running containers, inspect once each, never more than `concurrency` at once.
    const statsNames = engine.seen
      .filter((r) => r.kind === "stats")
      .map((r) => r.name)
      .sort();
    expect(statsNames).toEqual(["spectra-busy", "spectra-idle", "spectra-mem"]);
    expect(engine.seen.filter((r) => r.kind === "inspect")).toHaveLength(6);
    expect(engine.maxInFlight).toBeLessThanOrEqual(2);

    const web = byName(rows, "web");
    expect(web).toMatchObject({
      id: "qemu/100",
      kind: "vm",
      state: "running",
      cpuLimitCores: 4,
      memoryBytes: 2281701376n,
      memoryLimit: 4294967296n,
      diskLimit: 34359738368n,
      netRxBytes: 123456789n,
      netTxBytes: 98765432n,
      uptimeSeconds: 86410n,
    });
    expect(web.cpuPercent).toBeCloseTo(12.48, 10);
    expect(web.image).toBeUndefined();
    expect(byName(rows, "paused-vm").state).toBe("paused");
    expect(byName(rows, "dns")).toMatchObject({ kind: "lxc", state: "stopped", cpuPercent: 0, memoryBytes: 0n });
    expect(byName(rows, "proxy")).toMatchObject({ kind: "lxc", diskBytes: 1288490188n, memoryBytes: 262144000n });
    // The slow guest (killed at the 1 s timeout) and the failing one are still reported, from the list.
    expect(byName(rows, "db")).toMatchObject({ state: "running", memoryBytes: 8589934592n, uptimeSeconds: 172800n });
    expect(byName(rows, "db").cpuPercent).toBeCloseTo(200, 10);
    expect(byName(rows, "broken")).toMatchObject({ state: "running", memoryBytes: 1073741824n });
    expect(firstRunMs).toBeLessThan(5_000);
    const warns = lines.filter((l) => l.level === 40);
    expect(warns).toHaveLength(1);
    expect(warns[0]?.msg).toMatch(/status\/current failed for some guests/);

    // Run 2: one-shot stats against run 1's readings; the guest list 60 s later.
    fs.copyFileSync(path.join(pveBin, "cluster-resources.t1.json"), path.join(pveBin, "cluster-resources.json"));
    mono += 60_000;
    rows = await list(c);
    const full = dockerData("docker-stats-spectra-busy.json");
    const t0 = dockerData("docker-stats-oneshot-spectra-busy.t0.json");
    const expected = cpuPercent(cpuSample(full, "cpu_stats")!, cpuSample(t0, "cpu_stats")!)!;
    const busy2 = byName(rows, "spectra-busy");
    // sent rounded: CPU % to two decimals, rates to whole bytes per second (common/round.ts)
    expect(busy2.cpuPercent).toBe(Math.round(expected * 100) / 100);
    expect(busy2.netRxRate).toBe(Math.round((1312 - 1172) / ((Date.parse(t0.read!) - Date.parse(full.read!)) / 1000)));
    expect(busy2.netTxRate).toBe(0);
    expect(
      engine.seen
        .filter((r) => r.kind === "stats-one-shot")
        .map((r) => r.name)
        .sort(),
    ).toEqual(["spectra-busy", "spectra-idle", "spectra-mem"]);
    expect(engine.seen.filter((r) => r.kind === "inspect")).toHaveLength(6); // cached
    const web2 = byName(rows, "web");
    expect(web2.netRxRate).toBeCloseTo(100_000, 6);
    expect(web2.netTxRate).toBeCloseTo(20_000, 6);
    expect(web2.cpuPercent).toBeCloseTo(25, 10);
    expect(byName(rows, "proxy").netRxRate).toBeUndefined(); // restarted: counters and uptime went back
    expect(byName(rows, "dns").netRxRate).toBe(0);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1); // still failing: not logged again

    // Run 3: the captured one-shot pair, 49.75 %. A state change re-inspects that container only.
    engine.stateOverride.set("spectra-idle", "exited");
    rows = await list(c);
    expect(byName(rows, "spectra-busy").cpuPercent).toBeCloseTo(49.75, 2);
    expect(byName(rows, "spectra-idle")).toMatchObject({ state: "exited", cpuPercent: 0, memoryBytes: 0n });
    expectUnset(byName(rows, "spectra-idle"), "uptimeSeconds");
    expect(
      engine.seen
        .filter((r) => r.kind === "inspect")
        .map((r) => r.name)
        .slice(6),
    ).toEqual(["spectra-idle"]);
    engine.stateOverride.clear();
  });

  it("leaves out a container removed between the list and its stats, reports one whose stats fail without them", async () => {
    engine.failWith.set("spectra-mem", 404);
    engine.failWith.set("spectra-idle", 500);
    const { logger, lines } = recordingLogger();
    const c = make({ docker_socket: engine.socketPath, proxmox: false }, {}, logger);
    try {
      const rows = await list(c);
      expect(rows.map((r) => r.name)).not.toContain("spectra-mem");
      expect(byName(rows, "spectra-idle")).toMatchObject({ state: "running", cpuPercent: 0, memoryBytes: 0n });
      expect(byName(rows, "spectra-busy").cpuPercent).toBeCloseTo(47.64, 2);
      expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
        expect.stringMatching(/stats\/inspect failed for some containers/),
      ]);
    } finally {
      engine.failWith.clear();
    }
  });

  it("reports containers without stats once the stats budget is spent, instead of running into the run timeout", async () => {
    const before = engine.seen.length;
    const c = make({ docker_socket: engine.socketPath, proxmox: false, stats_budget: 0 });
    const rows = await list(c);
    expect(rows).toHaveLength(6);
    expect(byName(rows, "spectra-busy")).toMatchObject({ cpuPercent: 0, memoryBytes: 0n, state: "running" });
    expect(engine.seen.slice(before).map((r) => r.kind)).toEqual(["list"]);
  });
});

describe("containers collector: absent and failing sources", () => {
  it("returns NO_DATA without Docker and without Proxmox, logging each once at info", async () => {
    pathWith(undefined);
    const { logger, lines } = recordingLogger();
    const c = make({ docker_socket: path.join(tmp, "nothing.sock") }, {}, logger);
    expect(await c.collect(AbortSignal.timeout(5_000))).toBe(NO_DATA);
    expect(await c.collect(AbortSignal.timeout(5_000))).toBe(NO_DATA);
    expect(lines.map((l) => [l.level, l.source, l.msg])).toEqual([
      [30, "docker", "docker: not on this host; not collected"],
      [30, "proxmox", "proxmox: not on this host; not collected"],
    ]);
  });

  it("treats a socket that accepts and never answers as a failure of Docker, still reporting Proxmox", async () => {
    pathWith(pveBin);
    fs.copyFileSync(
      path.join(here, "testdata", "pvesh", "cluster-resources.json"),
      path.join(pveBin, "cluster-resources.json"),
    );
    const hung = await startHungSocket(tmp);
    const { logger, lines } = recordingLogger();
    const c = make(
      { docker_socket: hung.socketPath, docker_timeout: "300ms", proxmox_guest_status: false, proxmox_node: "pve1" },
      {},
      logger,
    );
    try {
      const started = performance.now();
      const rows = await list(c);
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(new Set(rows.map((r) => r.source))).toEqual(new Set(["proxmox"]));
      expect(rows).toHaveLength(6);
      await list(c);
      const warns = lines.filter((l) => l.level === 40);
      expect(warns).toHaveLength(1);
      expect(JSON.stringify(warns[0])).toMatch(/no answer within 300 ms/);
    } finally {
      await hung.close();
    }
  });

  it("treats a socket path nobody listens on as a broken Docker, not an absent one", async () => {
    pathWith(undefined);
    const stale = path.join(tmp, "stale.sock");
    fs.writeFileSync(stale, "");
    await expect(make({ docker_socket: stale }).collect(AbortSignal.timeout(5_000))).rejects.toThrow(
      /^containers: docker: .*ECONNREFUSED.*\(is dockerd running\?\)$/,
    );
  });

  it("throws with both messages when Docker and Proxmox both fail", async () => {
    pathWith(failingPveBin);
    const hung = await startHungSocket(tmp);
    const c = make({ docker_socket: hung.socketPath, docker_timeout: "300ms", proxmox_node: "pve1" });
    try {
      await expect(c.collect(AbortSignal.timeout(10_000))).rejects.toThrow(
        /^containers: docker: docker at .*hung-.*\.sock: docker list containers: no answer within 300 ms.*; proxmox: pvesh get \/cluster\/resources --type vm --output-format json: exit 255: please run as root$/,
      );
    } finally {
      await hung.close();
    }
  });

  it("reports Docker alone when pvesh fails, and Proxmox alone is an error when Docker is absent", async () => {
    pathWith(failingPveBin);
    const engine = await startFakeEngine(tmp, 0);
    try {
      const rows = await list(make({ docker_socket: engine.socketPath, proxmox_node: "pve1" }));
      expect(rows).toHaveLength(6);
      expect(rows.every((r) => r.source === "docker")).toBe(true);
    } finally {
      await engine.close();
    }
    await expect(
      make({ docker_socket: path.join(tmp, "nothing.sock"), proxmox_node: "pve1" }).collect(
        AbortSignal.timeout(10_000),
      ),
    ).rejects.toThrow(/^containers: proxmox: .*please run as root$/);
  });

  it("finds the local node through /cluster/status and ignores other nodes' guests", async () => {
    pathWith(pveBin);
    fs.copyFileSync(
      path.join(here, "testdata", "pvesh", "cluster-resources.json"),
      path.join(pveBin, "cluster-resources.json"),
    );
    const rows = await list(
      make({ docker: false, proxmox_guest_status: false }, { proxmox: { hostname: () => "not-the-node.example" } }),
    );
    expect(rows.map((r) => r.id).sort()).toEqual([
      "lxc/101",
      "lxc/106",
      "qemu/100",
      "qemu/103",
      "qemu/104",
      "qemu/105",
    ]);
  });

  it("is not Proxmox on Windows, and validates options at creation", async () => {
    pathWith(pveBin);
    const c = createContainersCollector(
      { host: createHostAccess({}, { platform: "windows" }), logger: silentLogger(), options: { docker: false } },
      {},
    );
    expect(await c.collect(AbortSignal.timeout(5_000))).toBe(NO_DATA);
    expect(() => make({ concurrency: 0 })).toThrow(/concurrency must be an integer from 1 to 64/);
    expect(() => make({ docker_socket: 5 })).toThrow(/docker_socket/);
    expect(() => make({ proxmox_node: "pve1; rm -rf /" })).toThrow(/proxmox_node/);
    expect(() => make({ docker_timeout: "soon" })).toThrow(/docker_timeout/);
    expect(() => make({ proxmox: "yes" })).toThrow(/proxmox must be true or false/);
  });
});

describe("dockerEndpoint", () => {
  it("takes the option, then DOCKER_HOST, then the platform's default", () => {
    expect(dockerEndpoint("linux", "unix:///run/user/1000/docker.sock", "tcp://10.0.0.1:2375")).toEqual({
      socketPath: "/run/user/1000/docker.sock",
      label: "/run/user/1000/docker.sock",
    });
    expect(dockerEndpoint("linux", undefined, "unix:///srv/docker.sock").socketPath).toBe("/srv/docker.sock");
    expect(dockerEndpoint("linux", undefined, "tcp://127.0.0.1:2375")).toEqual({
      socketPath: undefined,
      label: "DOCKER_HOST=tcp://127.0.0.1:2375",
    });
    expect(dockerEndpoint("windows", undefined, "npipe:////./pipe/docker_engine").socketPath).toBe(
      "//./pipe/docker_engine",
    );
    expect(dockerEndpoint("windows", undefined, undefined).socketPath).toBe("//./pipe/docker_engine");
    expect(dockerEndpoint("linux", undefined, "").socketPath).toBe("/var/run/docker.sock");
  });
});
