import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  AgentService,
  CommandPollResponseSchema,
  CommandResultResponseSchema,
  PushMetricsResponseSchema,
  RegisterResponseSchema,
  StreamMetricsResponseSchema,
} from "../../gen/spectra/v1/agent_service_pb.js";
import type { MetricBatch } from "../../gen/spectra/v1/metrics_pb.js";
import type { Services } from "../services.js";
import { checkHostname } from "../agents/hostname.js";
import { InvalidInputError } from "../errors.js";

function batchInput(batch: MetricBatch | undefined) {
  if (!batch) throw new InvalidInputError("missing batch");
  return {
    hostname: batch.hostname,
    sessionId: batch.sessionId,
    sequence: batch.sequence,
    envelopes: batch.envelopes,
    collectorStatus: batch.collectorStatus,
  };
}

/** AgentService over the shared services: validate, call one service, map the result. */
export function createAgentServiceImpl(s: Services): ServiceImpl<typeof AgentService> {
  return {
    async enroll() {
      // Issue 7 in progress: enrollment lands with the access service.
      throw new ConnectError("enrollment is not available on this server yet", Code.Unimplemented);
    },

    async register(req) {
      if (!req.host) throw new InvalidInputError("missing host");
      await s.agents.register(req.host, req.collectors);
      return create(RegisterResponseSchema, { serverTime: timestampFromMs(s.clock()) });
    },

    async streamMetrics(reqs) {
      const res = create(StreamMetricsResponseSchema);
      // Each batch is committed before the next one is read, so a broken stream loses nothing acknowledged.
      for await (const req of reqs) {
        const input = batchInput(req.batch);
        try {
          const r = await s.ingest.ingest(input);
          res.ackedSequences.push(input.sequence);
          res.storedEnvelopes += r.stored;
          if (r.duplicate) res.duplicateBatches++;
        } catch (err) {
          if (!(err instanceof InvalidInputError)) throw err;
          res.rejectedSequences.push(input.sequence);
          if (res.rejectedReason === "") res.rejectedReason = err.message;
        }
      }
      return res;
    },

    async pushMetrics(req) {
      const input = batchInput(req.batch);
      const r = await s.ingest.ingest(input);
      return create(PushMetricsResponseSchema, {
        ackedSequence: input.sequence,
        storedEnvelopes: r.stored,
        duplicate: r.duplicate,
      });
    },

    async *commandPoll(req, ctx) {
      checkHostname(req.hostname);
      if (!(await s.agents.isRegistered(req.hostname))) {
        throw new ConnectError(`Agent '${req.hostname}' is not registered`, Code.FailedPrecondition);
      }
      await s.agents.touch(req.hostname);
      // No deadline: the stream lives until the agent or the server goes away.
      while (!ctx.signal.aborted) {
        const rec = await s.commands.next(req.hostname, { signal: ctx.signal });
        if (!rec) break;
        if (ctx.signal.aborted) {
          // Claimed just as the stream ended: keep it for the agent's next poll.
          await s.commands.release(rec);
          break;
        }
        yield create(CommandPollResponseSchema, { command: rec.command });
      }
    },

    async commandResult(req) {
      checkHostname(req.hostname);
      if (!req.outcome) throw new InvalidInputError("missing outcome");
      await s.commands.complete(req.hostname, req.outcome);
      await s.agents.touch(req.hostname);
      return create(CommandResultResponseSchema);
    },
  };
}
