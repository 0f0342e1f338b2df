import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  guestRow,
  parseClusterResources,
  parseGuestStatus,
  parseLocalNode,
  proxmoxCpuPercent,
} from "./proxmox-parse.js";

// Every pvesh sample is HAND-WRITTEN (testdata/README.md).
const here = path.dirname(fileURLToPath(import.meta.url));
const read = (f: string): string => fs.readFileSync(path.join(here, "testdata", "pvesh", f), "utf8");

describe("pvesh JSON (hand-written samples)", () => {
  it("parses /cluster/resources: qemu and lxc guests with their node, status and template flag", () => {
    const guests = parseClusterResources(read("cluster-resources.json"));
    expect(guests.map((g) => [g.id, g.type, g.node, g.status, g.template])).toEqual([
      ["qemu/100", "qemu", "pve1", "running", false],
      ["lxc/101", "lxc", "pve1", "stopped", false],
      ["qemu/9000", "qemu", "pve1", "stopped", true],
      ["qemu/103", "qemu", "pve1", "running", false],
      ["qemu/104", "qemu", "pve1", "running", false],
      ["qemu/105", "qemu", "pve1", "running", false],
      ["lxc/106", "lxc", "pve1", "running", false],
      ["qemu/200", "qemu", "pve2", "running", false],
    ]);
  });

  it("keeps the legacy CPU convention: cpu × maxcpu × 100 (percent of one core)", () => {
    expect(proxmoxCpuPercent(0.0312, 4)).toBeCloseTo(12.48, 10);
    expect(proxmoxCpuPercent(1, 8)).toBe(800);
    expect(proxmoxCpuPercent(undefined, 4)).toBe(0);
    expect(proxmoxCpuPercent(0.5, 0)).toBe(0);
  });

  it("builds a running VM from the list refined by its live status", () => {
    const [web] = parseClusterResources(read("cluster-resources.json"));
    const row = guestRow(web!, parseGuestStatus(read("status-qemu-100.json")));
    expect(row).toEqual({
      id: "qemu/100",
      name: "web",
      state: "running",
      source: "proxmox",
      kind: "vm",
      cpuPercent: expect.closeTo(12.48, 10) as unknown as number,
      cpuLimitCores: 4,
      memoryBytes: 2281701376,
      memoryLimit: 4294967296,
      diskBytes: undefined, // a VM's disk is 0 without a guest agent: unknown, not empty
      diskLimit: 34359738368,
      netRxBytes: 123456789,
      netTxBytes: 98765432,
      uptimeSeconds: 86410,
    });
    // Without the live status, the list alone.
    expect(guestRow(web!, undefined)).toMatchObject({
      memoryBytes: 2147483648,
      uptimeSeconds: 86400,
      state: "running",
    });
  });

  it("shows a paused VM as paused (the list says running) and a stopped container with nothing live", () => {
    const guests = parseClusterResources(read("cluster-resources.json"));
    const paused = guests.find((g) => g.id === "qemu/105")!;
    expect(guestRow(paused, parseGuestStatus(read("status-qemu-105.json"))).state).toBe("paused");
    const stopped = guests.find((g) => g.id === "lxc/101")!;
    expect(guestRow(stopped, undefined)).toMatchObject({
      kind: "lxc",
      state: "stopped",
      cpuPercent: 0,
      memoryBytes: 0,
      memoryLimit: 536870912,
      diskBytes: 0,
      diskLimit: 8589934592,
      uptimeSeconds: undefined,
    });
    const lxc = guests.find((g) => g.id === "lxc/106")!;
    expect(guestRow(lxc, parseGuestStatus(read("status-lxc-106.json")))).toMatchObject({
      kind: "lxc",
      cpuPercent: 3,
      memoryBytes: 262144000,
      diskBytes: 1288490188,
      diskLimit: 8589934592,
    });
  });

  it("finds the local node in /cluster/status", () => {
    expect(parseLocalNode(read("cluster-status.json"))).toBe("pve1");
    expect(parseLocalNode("[]")).toBeUndefined();
  });

  it("rejects output that is not the JSON it should be, and skips entries that could not be queried safely", () => {
    expect(() => parseClusterResources("please run as root\n")).toThrow(/not JSON/);
    expect(() => parseClusterResources("{}")).toThrow(/not a JSON array/);
    expect(() => parseGuestStatus("[]")).toThrow(/not a JSON object/);
    const odd = JSON.stringify([
      { type: "qemu", vmid: "1234567890", node: "pve1" },
      { type: "storage", id: "storage/pve1/local", node: "pve1" },
      { type: "lxc", vmid: 7, node: "pve1", cpu: "0.5", maxcpu: "2" },
      { type: "qemu", vmid: 8 },
    ]);
    const guests = parseClusterResources(odd);
    expect(guests.map((g) => [g.id, g.cpu, g.maxcpu])).toEqual([["lxc/7", 0.5, 2]]);
  });
});
