import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs, type Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { EnrollmentState } from "../../gen/spectra/v1/access_service_pb.js";
import {
  AgentService,
  CommandPollResponseSchema,
  CommandResultResponseSchema,
  EnrollResponseSchema,
  PushMetricsResponseSchema,
  RegisterResponseSchema,
  StreamMetricsResponseSchema,
} from "../../gen/spectra/v1/agent_service_pb.js";
import type { MetricBatch } from "../../gen/spectra/v1/metrics_pb.js";
import type { Services } from "../services.js";
import type { IngestResult } from "../ingest/ingest-service.js";
import { checkHostname } from "../agents/hostname.js";
import { enrollmentStateOf } from "../agents/agent-registry.js";
import type { StreamWatch } from "../agents/access.js";
import { checkActsAs, type AgentPrincipal } from "../auth/principal.js";
import { InvalidInputError, PermissionDeniedError, UnauthenticatedError } from "../errors.js";
import { principalOf } from "./auth.js";
import { rawEnvelopesOf } from "./binary-ingest.js";

function batchInput(batch: MetricBatch | undefined) {
  if (!batch) throw new InvalidInputError("missing batch");
  return {
    hostname: batch.hostname,
    sessionId: batch.sessionId,
    sequence: batch.sequence,
    envelopes: batch.envelopes,
    collectorStatus: batch.collectorStatus,
    rawEnvelopes: rawEnvelopesOf(batch),
  };
}

/**
 * Checks that the caller may send `req`'s batch and starts its ingest. The batch is taken out of the request: the
 * handler's frame and the stream iterators under it keep the request while the commit is awaited (V8 keeps a
 * suspended function's locals), and must not keep the decoded messages alive with it (see TsdbEngine.prepare).
 */
function startIngest(
  s: Services,
  ctx: HandlerContext,
  req: { batch?: MetricBatch | undefined },
): { sequence: bigint; result: Promise<IngestResult> } {
  const input = batchInput(req.batch);
  req.batch = undefined;
  if (input.hostname !== "") agentActingAs(ctx, input.hostname);
  return { sequence: input.sequence, result: s.ingest.ingest(input) };
}

/** The agent calling, which must be acting as `hostname` (identity binding; checked before anything is stored). */
function agentActingAs(ctx: HandlerContext, hostname: string): AgentPrincipal {
  const p = principalOf(ctx);
  if (p.kind !== "agent") throw new PermissionDeniedError("this method needs an agent key");
  checkActsAs(p, hostname);
  return p;
}

/** A positive duration in milliseconds, or undefined when unset or not positive. */
function positiveMs(d: Duration | undefined): number | undefined {
  if (!d) return undefined;
  const ms = durationMs(d);
  return Number.isFinite(ms) && ms > 0 ? Math.round(ms) : undefined;
}

/**
 * The request messages of a client stream, ending with UnauthenticatedError the moment the agent's key is revoked
 * (the next message is not awaited any longer).
 *
 * Not `Promise.race([it.next(), revoked])`: every race adds a reaction to the never-settling `revoked` promise, and
 * each reaction holds the race's result, so a stream kept every batch it had read (decoded messages and their
 * request bodies) alive until it ended: ~45 MiB at 1,000 agents under the fleet bench (docs/benchmarks.md). Only
 * the wait under way is rejectable here.
 */
export async function* untilRevoked<T>(src: AsyncIterable<T>, watch: Pick<StreamWatch, "onRevoked">): AsyncGenerator<T> {
  const it = src[Symbol.asyncIterator]();
  let revokedErr: UnauthenticatedError | undefined;
  let failWait: ((err: unknown) => void) | undefined;
  watch.onRevoked((reason) => {
    revokedErr ??= new UnauthenticatedError(reason);
    failWait?.(revokedErr);
  });
  try {
    for (;;) {
      if (revokedErr) throw revokedErr;
      const r = await new Promise<IteratorResult<T>>((resolve, reject) => {
        failWait = reject;
        it.next().then(resolve, reject);
      });
      failWait = undefined;
      if (r.done) return;
      yield r.value;
    }
  } finally {
    failWait = undefined;
    void Promise.resolve(it.return?.()).catch(() => undefined);
  }
}

/** AgentService over the shared services: validate, call one service, map the result. */
export function createAgentServiceImpl(s: Services): ServiceImpl<typeof AgentService> {
  return {
    async enroll(req) {
      const r = await s.access.enroll({
        enrollmentToken: req.enrollmentToken,
        host: req.host,
        enrollmentId: req.enrollmentId,
        enrollmentSecret: req.enrollmentSecret,
        reportIntervalMs: positiveMs(req.reportInterval),
      });
      return create(EnrollResponseSchema, {
        state: enrollmentStateOf(r.state) ?? EnrollmentState.UNSPECIFIED,
        enrollmentId: r.enrollmentId,
        agentKey: r.agentKey ?? "",
        message: r.message,
        ...(r.retryAfterMs !== undefined ? { retryAfter: { seconds: BigInt(Math.ceil(r.retryAfterMs / 1000)) } } : {}),
      });
    },
    async register(req, ctx) {
      if (!req.host) throw new InvalidInputError("missing host");
      checkHostname(req.host.hostname);
      agentActingAs(ctx, req.host.hostname);
      const reportIntervalMs = positiveMs(req.reportInterval);
      await s.agents.register(req.host, req.collectors, reportIntervalMs);
      await s.access.recordReport(req.host.hostname, { diagnostics: req.diagnostics, reportIntervalMs });
      return create(RegisterResponseSchema, { serverTime: timestampFromMs(s.clock()) });
    },
    async streamMetrics(reqs, ctx) {
      const p = principalOf(ctx);
      if (p.kind !== "agent") throw new PermissionDeniedError("this method needs an agent key");
      const watch = s.access.watch(p);
      try {
        const res = create(StreamMetricsResponseSchema);
        // Each batch is committed before the next one is read, so a broken stream loses nothing acknowledged.
        for await (const req of untilRevoked(reqs, watch)) {
          const { sequence, result } = startIngest(s, ctx, req); // a batch for another host ends the stream
          try {
            const r = await result;
            res.ackedSequences.push(sequence);
            res.storedEnvelopes += r.stored;
            if (r.duplicate) res.duplicateBatches++;
          } catch (err) {
            if (!(err instanceof InvalidInputError)) throw err;
            res.rejectedSequences.push(sequence);
            if (res.rejectedReason === "") res.rejectedReason = err.message;
          }
        }
        return res;
      } finally {
        watch.close();
      }
    },
    async pushMetrics(req, ctx) {
      const { sequence, result } = startIngest(s, ctx, req);
      const r = await result;
      return create(PushMetricsResponseSchema, {
        ackedSequence: sequence,
        storedEnvelopes: r.stored,
        duplicate: r.duplicate,
      });
    },
    async *commandPoll(req, ctx) {
      checkHostname(req.hostname);
      const p = agentActingAs(ctx, req.hostname);
      if (!(await s.agents.isRegistered(req.hostname))) {
        throw new ConnectError(`Agent '${req.hostname}' is not registered`, Code.FailedPrecondition);
      }
      s.agents.touch(req.hostname); // opening the stream is contact; waiting on it is not (see presence.ts)
      const watch = s.access.watch(p);
      try {
        // No deadline: the stream lives until the agent or the server goes away, or its key is revoked or replaced.
        while (!ctx.signal.aborted) {
          const check = await watch.check();
          if (check.status === "revoked") throw new UnauthenticatedError(check.reason);
          if (check.status === "superseded") return; // the agent uses its new key: it reconnects with it
          if (check.newKey) yield create(CommandPollResponseSchema, { newAgentKey: check.newKey });
          // Woken by a command, by a change of the agent's access (rotation, revocation) or by the end.
          const wake = watch.wake(ctx.signal);
          let rec;
          let woken = false;
          try {
            rec = await s.commands.next(req.hostname, { signal: wake.signal });
            woken = wake.signal.aborted && !ctx.signal.aborted;
          } finally {
            wake.dispose();
          }
          if (!rec) {
            if (woken) continue;
            break; // the stream ended, or the command queue stopped (server shutdown)
          }
          if (ctx.signal.aborted) {
            // Claimed just as the stream ended: keep it for the agent's next poll.
            await s.commands.release(rec);
            break;
          }
          yield create(CommandPollResponseSchema, { command: rec.command });
        }
      } finally {
        watch.close();
      }
    },
    async commandResult(req, ctx) {
      checkHostname(req.hostname);
      agentActingAs(ctx, req.hostname);
      if (!req.outcome) throw new InvalidInputError("missing outcome");
      await s.commands.complete(req.hostname, req.outcome);
      s.agents.touch(req.hostname);
      return create(CommandResultResponseSchema);
    },
  };
}
