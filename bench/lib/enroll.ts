/**
 * Enrolling simulated agents as the agent does (AgentService.Enroll with an auto-approving token, then Register with
 * the key it got), shared by the ingest bench's generator (ingest-worker.ts) and the fleet bench (fleet-agent.ts).
 */
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { createClient } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { randomBytes } from "node:crypto";
import { EnrollmentState } from "../../gen/spectra/v1/access_service_pb.js";
import { AgentService, HostInfoSchema, type HostInfo } from "../../gen/spectra/v1/agent_service_pb.js";

/** The collectors a default agent on a Linux server with Docker reports (fleet.ts's payload). */
export const COLLECTORS = ["cpu", "memory", "disk", "disk_io", "network", "system", "processes", "services", "temperature", "containers", "applications", "update_status"];

/** The host info a simulated agent reports. */
export function benchHostInfo(hostname: string): HostInfo {
  return create(HostInfoSchema, {
    hostname,
    os: "linux",
    platform: "debian",
    platformVer: "12",
    kernel: "6.1.0-bench",
    arch: "amd64",
    cpuModel: "Bench CPU",
    cpuCores: 4,
    ramTotal: 16n * 1024n ** 3n,
    agentVersion: "bench",
  });
}

export interface EnrollOptions {
  /** Calls in flight at once; default 16. */
  concurrency?: number;
  /** Sent as the agent's report interval (its online/stale thresholds); default none (the server's 5 s). */
  reportIntervalMs?: number;
  /** Stop starting new enrollments after this wall time (ms); those not done get no key. */
  deadlineMs?: number;
  /** Called for each failure (the agent then has no key); without it the first failure throws. */
  onError?: (hostname: string, err: unknown) => void;
}

/**
 * Enrolls (auto-approved token) and registers every host over one HTTP/2 connection, `concurrency` at a time;
 * returns each host's key (undefined where it failed, when `onError` is given).
 */
export async function enrollAll(url: string, hostnames: readonly string[], token: string, opts: EnrollOptions = {}): Promise<Array<string | undefined>> {
  const sessionManager = new Http2SessionManager(url);
  const client = createClient(AgentService, createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, sessionManager }));
  const keys = new Array<string | undefined>(hostnames.length);
  const reportInterval = opts.reportIntervalMs ? { reportInterval: durationFromMs(opts.reportIntervalMs) } : {};
  let next = 0;
  const one = async () => {
    for (let i = next++; i < hostnames.length; i = next++) {
      if (opts.deadlineMs !== undefined && Date.now() > opts.deadlineMs) {
        opts.onError?.(hostnames[i]!, new Error("enrollment deadline passed"));
        continue;
      }
      const hostname = hostnames[i]!;
      const host = benchHostInfo(hostname);
      try {
        const res = await client.enroll(
          { enrollmentToken: token, host, collectors: COLLECTORS, enrollmentSecret: randomBytes(16).toString("hex"), ...reportInterval },
          { timeoutMs: 30_000 },
        );
        if (res.state !== EnrollmentState.APPROVED || !res.agentKey) throw new Error(`enrolling ${hostname}: state ${res.state} ${res.message}`);
        await client.register(
          { host, collectors: COLLECTORS, ...reportInterval },
          { timeoutMs: 30_000, headers: { authorization: `Bearer ${res.agentKey}` } },
        );
        keys[i] = res.agentKey;
      } catch (err) {
        if (!opts.onError) throw err;
        opts.onError(hostname, err);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency ?? 16 }, one));
  } finally {
    sessionManager.abort();
  }
  return keys;
}
