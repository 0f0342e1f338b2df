/**
 * Authentication and authorization for every Connect, gRPC and gRPC-Web call: one interceptor reads
 * `Authorization: Bearer …`, resolves it through the Authorizer and checks the method's policy below; the principal
 * is put into the call's context values for the handlers (audit names, identity binding). Errors: no, malformed,
 * unknown, revoked or expired credential → Unauthenticated; a valid credential with a too-low role, or of the wrong
 * kind → PermissionDenied. The hostname an agent claims in a request is checked by the AgentService handlers
 * (checkActsAs) before anything is stored or queued.
 *
 * The abuse limits (server/auth/rate-limit.ts) are applied here too: an address slowed for failed authentication is
 * refused first (ResourceExhausted with a `retry-after` header, in seconds), every failure is counted, and each
 * call is charged to its caller's bucket (the agent, the admin token, or for Enroll the enrolling host).
 *
 * Mutual TLS: the fingerprint of the connection's verified client certificate goes with the credential, and an agent
 * key pinned to another certificate (or used without one) is refused with PermissionDenied (server/auth/cert-pins.ts).
 * A server stream opened with an admin token ends with Unauthenticated as soon as the token is revoked.
 */
import {
  createContextKey,
  createContextValues,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import type { EnrollRequest } from "../../gen/spectra/v1/agent_service_pb.js";
import type { DescService } from "@bufbuild/protobuf";
import * as reflectionV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { AccessService } from "../../gen/spectra/v1/access_service_pb.js";
import { AdminService } from "../../gen/spectra/v1/admin_service_pb.js";
import { AgentService } from "../../gen/spectra/v1/agent_service_pb.js";
import { HistoryService } from "../../gen/spectra/v1/history_service_pb.js";
import { limitKey, type Authorizer } from "../auth/authorizer.js";
import { AGENT, checkPolicy, PUBLIC, role, type AccessPolicy, type Principal } from "../auth/principal.js";
import { PermissionDeniedError, RateLimitedError, UnauthenticatedError } from "../errors.js";
import type { Logger } from "../../common/logger.js";
import { clientCertificateOf } from "../http/client-cert.js";

/** The caller of the current RPC, set by {@link authInterceptor}. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "spectra principal" });

/** The peer's socket address, set for every call by the Connect adapter's `contextValues` (see app.ts). */
export const remoteAddressKey = createContextKey<string>("", { description: "spectra remote address" });

/** The fingerprint of the connection's verified client certificate (mutual TLS), set by the adapter; "" for none. */
export const clientCertKey = createContextKey<string>("", { description: "spectra client certificate" });

/**
 * The context values of a Node request: its peer address (for the abuse limits) and the fingerprint of its verified
 * client certificate (certificate pinning).
 */
export function requestContextValues(req: { socket?: { remoteAddress?: string | undefined } | null }): ContextValues {
  return createContextValues()
    .set(remoteAddressKey, req.socket?.remoteAddress ?? "")
    .set(clientCertKey, clientCertificateOf(req.socket) ?? "");
}

/** The caller of a handler's RPC; UnauthenticatedError when the interceptor did not run (never serve anonymously). */
export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (!p) throw new UnauthenticatedError("missing credential (Authorization: Bearer …)");
  return p;
}

const viewer = role("viewer");
const operator = role("operator");
const admin = role("admin");

/** Every method of every served service and what it needs. A method missing here is refused (tested). */
const METHOD_POLICIES: Record<string, AccessPolicy> = {
  // Agents: everything with their own key, except enrolling (the token is in the request).
  "spectra.v1.AgentService/Enroll": PUBLIC,
  "spectra.v1.AgentService/Register": AGENT,
  "spectra.v1.AgentService/StreamMetrics": AGENT,
  "spectra.v1.AgentService/PushMetrics": AGENT,
  "spectra.v1.AgentService/CommandPoll": AGENT,
  "spectra.v1.AgentService/CommandResult": AGENT,
  // Admin: reads for viewers, triggers for operators.
  "spectra.v1.AdminService/ListAgents": viewer,
  "spectra.v1.AdminService/GetLatestMetrics": viewer,
  "spectra.v1.AdminService/GetCommand": viewer,
  "spectra.v1.AdminService/ListCommands": viewer,
  "spectra.v1.AdminService/WatchCommand": viewer,
  "spectra.v1.AdminService/GetAgentTimeline": viewer,
  "spectra.v1.AdminService/TriggerLogs": operator,
  "spectra.v1.AdminService/TriggerDisk": operator,
  "spectra.v1.AdminService/TriggerNetwork": operator,
  "spectra.v1.AdminService/TriggerListMounts": operator,
  // History: read only.
  "spectra.v1.HistoryService/ListHosts": viewer,
  "spectra.v1.HistoryService/ListSeries": viewer,
  "spectra.v1.HistoryService/QueryRange": viewer,
  "spectra.v1.HistoryService/GetLatest": viewer,
  "spectra.v1.HistoryService/ListSnapshots": viewer,
  "spectra.v1.HistoryService/WatchHost": viewer,
  // Access: admins, except listing enrollment tokens.
  "spectra.v1.AccessService/CreateEnrollmentToken": admin,
  "spectra.v1.AccessService/ListEnrollmentTokens": operator,
  "spectra.v1.AccessService/RevokeEnrollmentToken": admin,
  "spectra.v1.AccessService/ApproveAgent": admin,
  "spectra.v1.AccessService/DenyAgent": admin,
  "spectra.v1.AccessService/RotateAgentKey": admin,
  "spectra.v1.AccessService/RevokeAgent": admin,
  "spectra.v1.AccessService/RemoveAgent": admin,
  "spectra.v1.AccessService/CreateAdminToken": admin,
  "spectra.v1.AccessService/ListAdminTokens": admin,
  "spectra.v1.AccessService/RevokeAdminToken": admin,
  "spectra.v1.AccessService/ClearAgentCertificatePin": admin,
  // Reflection (buf curl, grpcurl): any admin token.
  "grpc.reflection.v1.ServerReflection/ServerReflectionInfo": viewer,
  "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": viewer,
};

/** The services the server serves, for the completeness test of the policy table. */
export const SERVED_SERVICES: readonly DescService[] = [
  AgentService,
  AdminService,
  HistoryService,
  AccessService,
  reflectionV1.ServerReflection,
  reflectionV1alpha.ServerReflection,
];

/** The policy of a method ("package.Service/Method"), or undefined when it has none (refused). */
export function methodPolicy(method: string): AccessPolicy | undefined {
  return Object.hasOwn(METHOD_POLICIES, method) ? METHOD_POLICIES[method] : undefined;
}

/**
 * The authentication interceptor: place it after the error interceptor (which maps the domain errors it throws).
 * Failed attempts are logged without the credential.
 */
export function authInterceptor(auth: Authorizer, logger: Logger): Interceptor {
  const log = logger.child({ component: "auth" });
  return (next) => async (req) => {
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const policy = methodPolicy(rpc);
    if (!policy) throw new PermissionDeniedError(`no access policy for ${rpc}`);
    const address = req.contextValues.get(remoteAddressKey);
    if (policy.kind === "public") {
      // AgentService.Enroll: the enrollment token is in the request, checked by the handler.
      auth.admit(address);
      auth.charge(enrollKey(req.stream ? undefined : (req.message as Partial<EnrollRequest>), address));
      try {
        return await next(req);
      } catch (err) {
        if (err instanceof UnauthenticatedError) auth.failed(address, err.message);
        throw err;
      }
    }
    let p: Principal | undefined;
    try {
      p = await auth.authenticate(req.header.get("authorization"), address, req.contextValues.get(clientCertKey) || undefined);
      try {
        checkPolicy(policy, p);
      } catch (err) {
        if (!p && err instanceof UnauthenticatedError) auth.failed(address, err.message);
        throw err;
      }
    } catch (err) {
      if (err instanceof UnauthenticatedError || err instanceof PermissionDeniedError) {
        log.info({ rpc, reason: err.message, who: who(p) }, "request refused");
      } else if (err instanceof RateLimitedError) {
        log.debug({ rpc, reason: err.message }, "request refused");
      }
      throw err;
    }
    auth.charge(limitKey(p, address));
    req.contextValues.set(principalKey, p);
    const res = await next(req);
    // An admin's server stream (HistoryService.WatchHost, AdminService.WatchCommand, reflection) ends at once when
    // its token is revoked; agents' streams watch their keys in the AgentService handlers.
    if (p?.kind !== "admin" || !res.stream) return res;
    const admin = p;
    return { ...res, message: untilRevoked(res.message, (cb) => auth.onRevoked(admin, cb)) };
  };
}

/**
 * Passes `source` through until `watch` reports a revocation, then ends the stream with Unauthenticated: Connect
 * writes that as the stream's error and aborts the handler's signal, which ends the handler too.
 */
export async function* untilRevoked<T>(
  source: AsyncIterable<T>,
  watch: (cb: (reason: string) => void) => () => void,
): AsyncGenerator<T> {
  let onRevoked: (reason: string) => void = () => {};
  const revoked = new Promise<never>((_, reject) => {
    onRevoked = (reason) => reject(new UnauthenticatedError(reason));
  });
  revoked.catch(() => {}); // raced below; unobserved until then
  const stop = watch(onRevoked);
  const it = source[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      const r = await Promise.race([it.next(), revoked]);
      if (r.done) {
        done = true;
        return;
      }
      yield r.value;
    }
  } finally {
    stop();
    // Ended early (revoked, or the client went away): let the handler's generator finish (not awaited: it may be
    // waiting on its signal, which Connect aborts as this stream ends).
    if (!done) it.return?.()?.catch(() => {});
  }
}

/** The bucket of an Enroll call: the host it enrolls (first call) or its enrollment (polls), else its address. */
function enrollKey(msg: Partial<EnrollRequest> | undefined, address: string): string {
  const host = msg?.host?.hostname ?? "";
  if (host !== "") return `enroll:${host}`;
  if (msg?.enrollmentId) return `enroll:${msg.enrollmentId}`;
  return limitKey(undefined, address);
}

function who(p: Principal | undefined): string | undefined {
  if (!p) return undefined;
  return p.kind === "admin" ? `token:${p.name}` : p.kind === "agent" ? `agent:${p.hostname}` : `legacy:${p.address}`;
}
