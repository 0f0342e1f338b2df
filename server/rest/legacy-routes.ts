/**
 * The original Go server's REST API (`/api/v1/*`, `/admin/*`; see legacy-api.md), kept status for status and byte
 * for byte, plus read routes for what the new server stores. Every route is thin: validate, call one service, map.
 * It is served as the Connect adapter's `fallback`, so it sees every request Connect did not route, over HTTP/1.1
 * and HTTP/2 alike.
 */
import { create } from "@bufbuild/protobuf";
import {
  DiskUsageParamsSchema,
  FetchLogsParamsSchema,
  ListMountsParamsSchema,
  LogLevel,
  NetworkAction,
  NetworkDiagParamsSchema,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import type { Logger } from "../../common/logger.js";
import { checkHostname } from "../agents/hostname.js";
import { DEFAULT_TOP_N, type CommandParams } from "../commands/command-params.js";
import { AgentNotRegisteredError, InvalidInputError, NotFoundError, QueueFullError } from "../errors.js";
import type { Services } from "../services.js";
import { ClientGoneError, HttpError, readJsonBody, type BodyLimits } from "./body.js";
import {
  LegacyJsonError,
  agentToLegacy,
  commandRecordToLegacy,
  commandToLegacy,
  envelopesFromLegacy,
  goJson,
  hostInfoFromLegacy,
  networkActionFromName,
  outcomeFromLegacy,
} from "./legacy-json.js";
import {
  isGone,
  sendEmpty,
  sendError,
  sendJsonText,
  sendText,
  type LegacyHandler,
  type LegacyRequest,
  type LegacyResponse,
} from "./respond.js";

export type { LegacyHandler } from "./respond.js";

/** Settings of the legacy routes (see AppOptions). */
export interface LegacyRoutesOptions {
  /** The long poll answers 204 after this long without a command (the original: 30 s). */
  longPollMs: number;
  /** Largest body accepted as received. */
  maxBodyBytes: number;
  /** Largest body after gunzip (gzip-bomb cap). */
  maxInflatedBytes: number;
  /** Aborted when the server shuts down: long polls end at once (204). */
  shutdownSignal: AbortSignal;
}

interface RouteContext {
  req: LegacyRequest;
  res: LegacyResponse;
  query: URLSearchParams;
  log: Logger;
}

interface Route {
  method: "GET" | "POST";
  handle(ctx: RouteContext): Promise<void>;
}

/** Go's `getHostname`: the `hostname` query parameter, required (`400 Missing hostname`), checked for shape. */
function hostnameOf(query: URLSearchParams): string {
  const hostname = query.get("hostname") ?? "";
  if (hostname === "") throw new HttpError(400, "Missing hostname");
  checkHostname(hostname); // InvalidInputError → 400
  return hostname;
}

/** Go's `strconv.Atoi(v)` with `n > 0`, else the default (20). */
function topNOf(query: URLSearchParams): number {
  const raw = query.get("top_n") ?? "";
  if (!/^[+-]?\d+$/.test(raw)) return DEFAULT_TOP_N;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_TOP_N;
}

/**
 * Creates the legacy REST handler over the shared services.
 *
 * Decisions where legacy-api.md leaves room:
 * - Metrics: the agent is the `hostname` query parameter; an envelope naming another host (or none) is stored under
 *   the query's host and the batch is accepted (the original ignored the envelope's hostname too); relabelling is
 *   logged. Wrong field types are `400 invalid json: <detail>` and nothing of the batch is stored.
 * - Gzip bombs: `413` (see body.ts); corrupt gzip `400 bad gzip body: <detail>`.
 * - Results: unknown command ids (or ids of another host) answer 200 as the original did, and are logged. A payload
 *   that does not fit its type is `400 invalid json: payload...` and changes nothing.
 * - Register: the body's `hostname`, else the query's; none → `400 Missing hostname`.
 * - A wrong method is `405 Method not allowed` on every route (the original checked it on register only).
 */
export function createLegacyRoutes(s: Services, opts: LegacyRoutesOptions): LegacyHandler {
  const limits: BodyLimits = { maxBodyBytes: opts.maxBodyBytes, maxInflatedBytes: opts.maxInflatedBytes };
  const logger = s.logger.child({ component: "legacy-rest" });

  const trigger = async (ctx: RouteContext, params: CommandParams, message: string) => {
    const hostname = hostnameOf(ctx.query);
    await s.commands.enqueue(hostname, params, "legacy-rest");
    sendText(ctx.res, 200, message);
  };

  const routes: Record<string, Route> = {
    "/api/v1/metrics": {
      method: "POST",
      async handle({ req, res, query, log }) {
        const hostname = hostnameOf(query);
        const batch = envelopesFromLegacy(await readJsonBody(req, limits), hostname);
        if (batch.ignored.length > 0) log.info({ agent: hostname, ignored: batch.ignored }, "ignored legacy envelopes");
        if (batch.relabelled > 0) {
          log.warn({ agent: hostname, count: batch.relabelled }, "envelopes named another host; stored under the query hostname");
        }
        // Legacy batches carry no sequence: no replay protection (sessionId "").
        await s.ingest.ingest({ hostname, sessionId: "", sequence: 0n, envelopes: batch.envelopes, collectorStatus: [] });
        // 202 only now: the batch is committed.
        sendEmpty(res, 202);
      },
    },

    "/api/v1/agent/register": {
      method: "POST",
      async handle({ req, res, query }) {
        const host = hostInfoFromLegacy(await readJsonBody(req, limits));
        if (host.hostname === "") host.hostname = query.get("hostname") ?? "";
        if (host.hostname === "") throw new HttpError(400, "Missing hostname");
        await s.agents.register(host, []);
        sendEmpty(res, 200);
      },
    },

    "/api/v1/agent/command": {
      method: "GET",
      async handle({ res, query, log }) {
        const hostname = hostnameOf(query);
        await s.agents.touch(hostname);
        // The waiter is released the moment the client goes (or the server shuts down), so a command queued later
        // is never claimed for a dead poll. (One controller with explicit listeners rather than AbortSignal.any,
        // whose dependent signals leak on Node 20 when a source signal lives as long as the server.)
        const stop = new AbortController();
        let gone = false;
        const onClose = () => {
          gone = true;
          stop.abort();
        };
        const onShutdown = () => stop.abort();
        res.once("close", onClose);
        opts.shutdownSignal.addEventListener("abort", onShutdown, { once: true });
        if (opts.shutdownSignal.aborted) stop.abort();
        try {
          const rec = await s.commands.next(hostname, { signal: stop.signal, timeoutMs: opts.longPollMs });
          if (!rec) return sendEmpty(res, 204);
          if (gone || isGone(res)) {
            // The client left as its command was claimed: put it back for the next poll.
            await s.commands.release(rec);
            return;
          }
          sendJsonText(res, 200, commandToLegacy(rec.command));
        } finally {
          res.off("close", onClose);
          opts.shutdownSignal.removeEventListener("abort", onShutdown);
        }
      },
    },

    "/api/v1/agent/command_result": {
      method: "POST",
      async handle({ req, res, query, log }) {
        const hostname = hostnameOf(query);
        const outcome = outcomeFromLegacy(await readJsonBody(req, limits));
        try {
          await s.commands.complete(hostname, outcome);
        } catch (err) {
          if (!(err instanceof NotFoundError || err instanceof InvalidInputError)) throw err;
          // The original answered 200 to any result; an agent would only retry a refused one forever.
          log.warn({ agent: hostname, command: outcome.commandId, err: err.message }, "result for an unknown command ignored");
        }
        await s.agents.touch(hostname);
        sendEmpty(res, 200);
      },
    },

    "/admin/trigger_logs": {
      method: "POST",
      handle: (ctx) =>
        trigger(ctx, { case: "fetchLogs", value: create(FetchLogsParamsSchema, { minLevel: LogLevel.ERROR }) }, "Queued FetchLogs"),
    },

    "/admin/trigger_disk": {
      method: "POST",
      async handle(ctx) {
        const topN = topNOf(ctx.query);
        const value = create(DiskUsageParamsSchema, { path: ctx.query.get("path") ?? "", topN });
        return trigger(ctx, { case: "diskUsage", value }, `Queued Disk Scan (Top ${topN})`);
      },
    },

    "/admin/trigger_network": {
      method: "POST",
      async handle(ctx) {
        hostnameOf(ctx.query); // Go checked the hostname before the action
        const action = ctx.query.get("action") ?? "";
        if (action === "") throw new HttpError(400, "Action required");
        const value = create(NetworkDiagParamsSchema, {
          action: networkActionFromName(action),
          target: ctx.query.get("target") ?? "",
        });
        if (value.action === NetworkAction.UNSPECIFIED) {
          throw new HttpError(400, `Unknown action: ${action} (ping, connect, netstat, traceroute)`);
        }
        return trigger(ctx, { case: "networkDiag", value }, `Queued Network Diag: ${action}`);
      },
    },

    // New: LIST_MOUNTS had no admin route in the original.
    "/admin/trigger_mounts": {
      method: "POST",
      handle: (ctx) => trigger(ctx, { case: "listMounts", value: create(ListMountsParamsSchema) }, "Queued ListMounts"),
    },

    // New: the original kept no results.
    "/admin/command": {
      method: "GET",
      async handle({ res, query }) {
        const id = query.get("id") ?? "";
        if (id === "") throw new HttpError(400, "Missing id");
        sendJsonText(res, 200, goJson(commandRecordToLegacy(await s.commands.get(id))));
      },
    },

    "/admin/agents": {
      method: "GET",
      async handle({ res }) {
        sendJsonText(res, 200, goJson((await s.agents.list()).map(agentToLegacy)));
      },
    },
  };

  /** Maps what a route threw to the original's plain-text answers. */
  const fail = (ctx: RouteContext, err: unknown) => {
    const { res, log } = ctx;
    if (err instanceof ClientGoneError) return log.debug({ err: err.message }, "client left");
    if (err instanceof HttpError) return sendError(res, err.status, err.message, { abandonBody: err.abandonBody });
    if (err instanceof LegacyJsonError) return sendError(res, 400, `invalid json: ${err.message}`);
    if (err instanceof InvalidInputError) return sendError(res, 400, err.message);
    if (err instanceof AgentNotRegisteredError) return sendError(res, 400, err.message);
    if (err instanceof QueueFullError) return sendError(res, 503, "Queue full or agent not found");
    if (err instanceof NotFoundError) return sendError(res, 404, err.message);
    log.error({ err }, "legacy request failed");
    sendError(res, 500, "internal server error");
  };

  return (req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://legacy.invalid");
    } catch {
      return sendError(res, 400, "Bad Request");
    }
    const route = Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : undefined;
    const ctx: RouteContext = { req, res, query: url.searchParams, log: logger };
    if (!route) return sendError(res, 404, "404 page not found"); // Go's http.NotFound
    if (req.method !== route.method) {
      res.setHeader("allow", route.method);
      return sendError(res, 405, "Method not allowed");
    }
    route.handle(ctx).catch((err: unknown) => fail(ctx, err));
  };
}
