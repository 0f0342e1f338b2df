import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { HostInfoSchema, type HostInfo } from "../../gen/spectra/v1/agent_service_pb.js";
import type { Platform } from "../collectors/types.js";
import type { HostPaths } from "./host-access.js";

/** What {@link collectHostInfo} needs; the OS facts are injectable for tests. */
export interface HostInfoInput {
  hostname: string;
  platform: Platform;
  paths: HostPaths;
  /** Default: the version in package.json. */
  agentVersion?: string;
  /** Default: node:os (arch, release, version, cpus, totalmem, uptime, networkInterfaces). */
  os?: OsFacts;
  now?: () => number;
}

/** The subset of node:os that host info reads. */
export interface OsFacts {
  arch(): string;
  release(): string;
  version(): string;
  cpus(): { model: string }[];
  totalmem(): number;
  uptime(): number;
  networkInterfaces(): NodeJS.Dict<os.NetworkInterfaceInfo[]>;
}

/**
 * Builds the HostInfo sent with Register (the legacy register body): Go names for os/arch, platform and version from
 * os-release under the configured rootfs (Linux) or os.version()/os.release() (Windows), RAM and boot time from the
 * configured procfs when readable. Never throws: a fact that cannot be read is left empty.
 */
export async function collectHostInfo(input: HostInfoInput): Promise<HostInfo> {
  const o = input.os ?? os;
  const now = input.now ?? Date.now;
  const cpus = o.cpus();
  let platform = "";
  let platformVer = "";
  let ramTotal = o.totalmem();
  let bootTime = Math.floor(now() / 1000 - o.uptime());

  if (input.platform === "linux") {
    const release = parseOsRelease(
      (await readOptional(`${input.paths.rootfs}/etc/os-release`)) ?? (await readOptional(`${input.paths.rootfs}/usr/lib/os-release`)) ?? "",
    );
    platform = release.id;
    platformVer = release.versionId;
    // The configured procfs is the host's even when the agent runs in a container; os.* would be the container's.
    const memTotal = parseMemTotal((await readOptional(`${input.paths.procRoot}/meminfo`)) ?? "");
    if (memTotal !== undefined) ramTotal = memTotal;
    const btime = parseBootTime((await readOptional(`${input.paths.procRoot}/stat`)) ?? "");
    if (btime !== undefined) bootTime = btime;
  } else {
    platform = o.version(); // "Windows 10 Pro"
    platformVer = o.release(); // "10.0.19045"
  }

  return create(HostInfoSchema, {
    hostname: input.hostname,
    os: input.platform,
    platform,
    platformVer,
    kernel: o.release(),
    arch: goArch(o.arch()),
    cpuModel: cpus[0]?.model.trim() ?? "",
    cpuCores: cpus.length,
    ramTotal: BigInt(Math.max(0, Math.round(ramTotal))),
    agentVersion: input.agentVersion ?? agentVersion(),
    bootTime: BigInt(Math.max(0, bootTime)),
    ips: nonLoopbackIpv4(o.networkInterfaces()),
  });
}

/** Node's architecture name in Go's spelling: x64 → amd64, ia32 → 386; arm64 and arm stay. */
export function goArch(nodeArch: string): string {
  const map: Record<string, string> = { x64: "amd64", ia32: "386", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64", loong64: "loong64" };
  return map[nodeArch] ?? nodeArch;
}

/** ID and VERSION_ID from an os-release file ("debian", "12"); quotes removed, empty when absent. */
export function parseOsRelease(text: string): { id: string; versionId: string; prettyName: string } {
  const values: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    values[m[1] ?? ""] = (m[2] ?? "").replace(/^(["'])(.*)\1$/, "$2");
  }
  return { id: values["ID"] ?? "", versionId: values["VERSION_ID"] ?? "", prettyName: values["PRETTY_NAME"] ?? "" };
}

/** MemTotal in bytes from /proc/meminfo, or undefined. */
export function parseMemTotal(text: string): number | undefined {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** `btime` (boot time, unix seconds) from /proc/stat, or undefined. */
export function parseBootTime(text: string): number | undefined {
  const m = /^btime\s+(\d+)/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Non-internal IPv4 addresses of all interfaces, in interface order, without duplicates. */
export function nonLoopbackIpv4(ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>): string[] {
  const out: string[] = [];
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      // Node 18.0-18.3 reported family as a number; accept both.
      const v4 = a.family === "IPv4" || (a.family as unknown) === 4;
      if (v4 && !a.internal && !a.address.startsWith("127.") && !out.includes(a.address)) out.push(a.address);
    }
  }
  return out;
}

let cachedVersion: string | undefined;

/**
 * The agent's version from the project's package.json, found by walking up from this module (works from the
 * sources and from dist/). "0.0.0-unknown" when it cannot be found.
 */
export function agentVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  cachedVersion = "0.0.0-unknown";
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate)) {
      try {
        const pkg = JSON.parse(readFileSync(candidate, "utf8")) as { name?: unknown; version?: unknown };
        if (pkg.name === "spectra" && typeof pkg.version === "string") {
          cachedVersion = pkg.version;
          break;
        }
      } catch {
        // an unreadable package.json on the way up is not ours; keep looking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return cachedVersion;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    // Small, local files; a 2 s cap still guards against a wedged FUSE-mounted rootfs.
    return await readFile(path, { encoding: "utf8", signal: AbortSignal.timeout(2_000) });
  } catch {
    return undefined;
  }
}
