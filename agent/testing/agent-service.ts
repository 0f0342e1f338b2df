/**
 * A real AgentService on 127.0.0.1, port 0, that records what agents send: registrations (with their request
 * headers), batches (acknowledged), command outcomes. For agent tests that run the real transport against a server
 * without the server's storage. `overrides` replaces methods (e.g. a CommandPoll that hands out commands).
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AgentService, type HostInfo } from "../../gen/spectra/v1/agent_service_pb.js";
import type { CommandOutcome } from "../../gen/spectra/v1/diagnostics_pb.js";
import type { MetricBatch } from "../../gen/spectra/v1/metrics_pb.js";

export interface RecordingAgentService {
  url: string;
  batches: MetricBatch[];
  hosts: HostInfo[];
  /** The request headers of each Register call. */
  headers: Record<string, string>[];
  outcomes: CommandOutcome[];
  close(): Promise<void>;
}

export async function startRecordingAgentService(
  overrides: Partial<ServiceImpl<typeof AgentService>> = {},
): Promise<RecordingAgentService> {
  const batches: MetricBatch[] = [];
  const hosts: HostInfo[] = [];
  const headers: Record<string, string>[] = [];
  const outcomes: CommandOutcome[] = [];
  const impl: ServiceImpl<typeof AgentService> = {
    async enroll() {
      throw new ConnectError("this test server does not enroll agents", Code.Unimplemented);
    },
    async register(req, ctx) {
      if (req.host) hosts.push(req.host);
      headers.push(Object.fromEntries(ctx.requestHeader));
      return {};
    },
    async streamMetrics(reqs) {
      const acked: bigint[] = [];
      for await (const r of reqs) {
        if (r.batch) {
          batches.push(r.batch);
          acked.push(r.batch.sequence);
        }
      }
      return { ackedSequences: acked };
    },
    async pushMetrics(req) {
      if (req.batch) batches.push(req.batch);
      return { ackedSequence: req.batch?.sequence ?? 0n };
    },
    async *commandPoll(_req, ctx) {
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    },
    async commandResult(req) {
      if (req.outcome) outcomes.push(req.outcome);
      return {};
    },
    ...overrides,
  };
  return { ...(await serveAgentService(impl)), batches, hosts, headers, outcomes };
}

/** Serves `impl` (methods left out answer Unimplemented) over h2c on 127.0.0.1, port 0; `close` ends open sessions (streams included) and the server. */
export async function serveAgentService(impl: Partial<ServiceImpl<typeof AgentService>>): Promise<{ url: string; close(): Promise<void> }> {
  const server = http2.createServer(connectNodeAdapter({ routes: (r) => r.service(AgentService, impl) }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => sessions.add(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}
