/**
 * The original Go server's REST API (`/api/v1/*`, `/admin/*`; see legacy-api.md), kept status for status and byte
 * for byte, plus read routes for what the new server stores. Every route is thin: validate, call one service, map.
 * It is served as the Connect adapter's `fallback`, so it sees every request Connect did not route, over HTTP/1.1
 * and HTTP/2 alike.
 */
import { create } from "@bufbuild/protobuf";
import { clientCertificateOf } from "../http/client-cert.js";
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
import {
  AgentNotRegisteredError,
  InvalidInputError,
  NotFoundError,
  PermissionDeniedError,
  QueueFullError,
  RateLimitedError,
  UnauthenticatedError,
} from "../errors.js";
import { NO_ADDRESSES, type AddressMatcher } from "../auth/address-matcher.js";
import { roleAtLeast, type RoleName } from "../auth/credentials.js";
import type { Principal } from "../auth/principal.js";
import { limitKey } from "../auth/authorizer.js";
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
  /** Source networks whose agents may use the /api/v1 routes without a credential (--legacy-allow); default none. */
  legacyAllow?: AddressMatcher;
}

interface RouteContext {
  req: LegacyRequest;
  res: LegacyResponse;
  query: URLSearchParams;
  log: Logger;
  /** Who is calling; set before handle() runs. */
  principal?: Principal;
}

interface Route {
  method: "GET" | "POST";
  /** "agent": an agent key, an admin token with role admin, or no credential from a --legacy-allow network. */
  access: "agent" | RoleName;
  handle(ctx: RouteContext): Promise<void>;
}

/** 401 for a missing or bad credential: plain text like the rest of the legacy API, with the scheme to use. */
class UnauthorizedHttpError extends HttpError {
  constructor(reason: string) {
    super(401, `Unauthorized: ${reason}`);
  }
}

const forbidden = (reason: string) => new HttpError(403, `Forbidden: ${reason}`);

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
  const legacyAllow = opts.legacyAllow ?? NO_ADDRESSES;

  /**
   * Resolves the caller and checks the route's access rule (401 / 403), under the abuse limits (429): an address
   * slowed for failed authentication is refused first, failures are counted, and the request is charged to the
   * agent's, the admin token's or (no credential, --legacy-allow) the address's bucket.
   */
  const authorize = async (ctx: RouteContext, route: Route): Promise<Principal> => {
    const address = ctx.req.socket?.remoteAddress ?? "";
    let p: Principal | undefined;
    try {
      p = await s.auth.authenticate(ctx.req.headers["authorization"], address, clientCertificateOf(ctx.req.socket));
    } catch (err) {
      if (err instanceof UnauthenticatedError) throw new UnauthorizedHttpError(err.message);
      throw err;
    }
    const unauthorized = (reason: string) => {
      s.auth.failed(address, reason);
      return new UnauthorizedHttpError(reason);
    };
    if (route.access === "agent") {
      if (!p) {
        if (!legacyAllow.matches(address)) {
          throw unauthorized("send an agent key (Authorization: Bearer spa_...); this address is not in --legacy-allow");
        }
        s.auth.charge(limitKey(undefined, address));
        return { kind: "legacy", address };
      }
      s.auth.charge(limitKey(p, address));
      if (p.kind === "admin" && !roleAtLeast(p.role, "admin")) {
        throw forbidden(`admin token "${p.name}" has role ${p.role}; agent routes need an agent key or role admin`);
      }
      return p;
    }
    if (!p) throw unauthorized("send an admin token (Authorization: Bearer spt_...)");
    s.auth.charge(limitKey(p, address));
    if (p.kind !== "admin") throw forbidden("this route needs an admin token");
    if (!roleAtLeast(p.role, route.access)) throw forbidden(`admin token "${p.name}" has role ${p.role}; this needs ${route.access}`);
    return p;
  };

  /**
   * Identity binding on agent routes, before anything is read or stored: an agent key acts only as its own host; an
   * unauthenticated legacy client may not act as a host that has its own key.
   */
  const actAs = async (ctx: RouteContext, hostname: string): Promise<void> => {
    const p = ctx.principal;
    if (p?.kind === "agent" && p.hostname !== hostname) throw forbidden(`this key belongs to "${p.hostname}", not "${hostname}"`);
    if (p?.kind === "legacy") {
      const rec = await s.access.get(hostname);
      if (rec?.keyHash !== undefined && rec.state !== "revoked") {
        throw forbidden(`"${hostname}" has its own agent key; requests without it may not act as it`);
      }
    }
  };

  const trigger = async (ctx: RouteContext, params: CommandParams, message: string) => {
    const hostname = hostnameOf(ctx.query);
    const p = ctx.principal;
    await s.commands.enqueue(hostname, params, p?.kind === "admin" ? p.name : "legacy-rest");
    sendText(ctx.res, 200, message);
  };

  const routes: Record<string, Route> = {
    "/api/v1/metrics": {
      method: "POST",
      access: "agent",
      async handle(ctx) {
        const { req, res, query, log } = ctx;
        const hostname = hostnameOf(query);
        await actAs(ctx, hostname);
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
      access: "agent",
      async handle(ctx) {
        const { req, res, query } = ctx;
        const host = hostInfoFromLegacy(await readJsonBody(req, limits));
        if (host.hostname === "") host.hostname = query.get("hostname") ?? "";
        if (host.hostname === "") throw new HttpError(400, "Missing hostname");
        checkHostname(host.hostname);
        await actAs(ctx, host.hostname);
        await s.agents.register(host, []);
        sendEmpty(res, 200);
      },
    },

    "/api/v1/agent/command": {
      method: "GET",
      access: "agent",
      async handle(ctx) {
        const { res, query } = ctx;
        const hostname = hostnameOf(query);
        await actAs(ctx, hostname);
        s.agents.touch(hostname);
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
        // A poll made with an agent key ends the moment the key is revoked, as the Connect streams do.
        const p = ctx.principal;
        const watch = p?.kind === "agent" ? s.access.watch(p) : undefined;
        let revoked: string | undefined;
        watch?.onRevoked((reason) => {
          revoked = reason;
          stop.abort();
        });
        try {
          const rec = await s.commands.next(hostname, { signal: stop.signal, timeoutMs: opts.longPollMs });
          if (revoked !== undefined) {
            if (rec) await s.commands.release(rec);
            throw new UnauthorizedHttpError(revoked);
          }
          if (!rec) return sendEmpty(res, 204);
          if (gone || isGone(res)) {
            // The client left as its command was claimed: put it back for the next poll.
            await s.commands.release(rec);
            return;
          }
          sendJsonText(res, 200, commandToLegacy(rec.command));
        } finally {
          watch?.close();
          res.off("close", onClose);
          opts.shutdownSignal.removeEventListener("abort", onShutdown);
        }
      },
    },

    "/api/v1/agent/command_result": {
      method: "POST",
      access: "agent",
      async handle(ctx) {
        const { req, res, query, log } = ctx;
        const hostname = hostnameOf(query);
        await actAs(ctx, hostname);
        const outcome = outcomeFromLegacy(await readJsonBody(req, limits));
        try {
          await s.commands.complete(hostname, outcome);
        } catch (err) {
          if (!(err instanceof NotFoundError || err instanceof InvalidInputError)) throw err;
          // The original answered 200 to any result; an agent would only retry a refused one forever.
          log.warn({ agent: hostname, command: outcome.commandId, err: err.message }, "result for an unknown command ignored");
        }
        s.agents.touch(hostname);
        sendEmpty(res, 200);
      },
    },

    "/admin/trigger_logs": {
      method: "POST",
      access: "operator",
      handle: (ctx) =>
        trigger(ctx, { case: "fetchLogs", value: create(FetchLogsParamsSchema, { minLevel: LogLevel.ERROR }) }, "Queued FetchLogs"),
    },

    "/admin/trigger_disk": {
      method: "POST",
      access: "operator",
      async handle(ctx) {
        const topN = topNOf(ctx.query);
        const value = create(DiskUsageParamsSchema, { path: ctx.query.get("path") ?? "", topN });
        return trigger(ctx, { case: "diskUsage", value }, `Queued Disk Scan (Top ${topN})`);
      },
    },

    "/admin/trigger_network": {
      method: "POST",
      access: "operator",
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
      access: "operator",
      handle: (ctx) => trigger(ctx, { case: "listMounts", value: create(ListMountsParamsSchema) }, "Queued ListMounts"),
    },

    // New: the original kept no results.
    "/admin/command": {
      method: "GET",
      access: "viewer",
      async handle({ res, query }) {
        const id = query.get("id") ?? "";
        if (id === "") throw new HttpError(400, "Missing id");
        sendJsonText(res, 200, goJson(commandRecordToLegacy(await s.commands.get(id))));
      },
    },

    "/admin/agents": {
      method: "GET",
      access: "viewer",
      async handle({ res }) {
        // Registered agents only (the original's shape); agents still waiting for approval are in ListAgents.
        const agents = (await s.agents.list()).filter((a) => a.registeredAt !== undefined);
        sendJsonText(res, 200, goJson(agents.map(agentToLegacy)));
      },
    },
  };

  const lastLogged = new Map<string, number>();
  const shouldLog = (key: string): boolean => {
    const now = s.clock();
    if (now - (lastLogged.get(key) ?? -Infinity) < 3_600_000) return false;
    if (lastLogged.size >= 1_000) lastLogged.clear(); // bounded: many addresses only make it log more often
    lastLogged.set(key, now);
    return true;
  };

  /** Maps what a route threw to the original's plain-text answers. */
  const fail = (ctx: RouteContext, err: unknown) => {
    const { res, log } = ctx;
    if (err instanceof ClientGoneError) return log.debug({ err: err.message }, "client left");
    if (err instanceof HttpError && (err.status === 401 || err.status === 403)) {
      if (err instanceof UnauthorizedHttpError) res.setHeader("www-authenticate", 'Bearer realm="spectra"');
      const remote = ctx.req.socket?.remoteAddress ?? "";
      // An old agent without a key retries every few seconds: said once per address and hour, then at debug level.
      if (shouldLog(`${remote} ${err.message}`)) log.info({ reason: err.message, remote }, "legacy request refused");
      else log.debug({ reason: err.message, remote }, "legacy request refused");
      // Refused before its body was read: the rest of it must not be read either.
      return sendError(res, err.status, err.message, { abandonBody: ctx.req.method === "POST" && !ctx.req.readableEnded });
    }
    if (err instanceof RateLimitedError) {
      log.debug({ reason: err.message, remote: ctx.req.socket?.remoteAddress ?? "" }, "legacy request refused");
      // Refused before its body was read, like 401.
      return sendError(res, 429, `Too Many Requests: ${err.message}`, {
        headers: { "retry-after": String(err.retryAfterSeconds) },
        abandonBody: ctx.req.method === "POST" && !ctx.req.readableEnded,
      });
    }
    if (err instanceof HttpError) return sendError(res, err.status, err.message, { abandonBody: err.abandonBody });
    if (err instanceof PermissionDeniedError) return sendError(res, 403, `Forbidden: ${err.message}`);
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
    authorize(ctx, route)
      .then((p) => {
        ctx.principal = p;
        return route.handle(ctx);
      })
      .catch((err: unknown) => fail(ctx, err));
  };
}
