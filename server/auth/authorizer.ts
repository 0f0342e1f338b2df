import type { Logger } from "../../common/logger.js";
import type { AgentAccess } from "../agents/access.js";
import { UnauthenticatedError } from "../errors.js";
import { addressKey } from "./address-matcher.js";
import type { AdminTokens } from "./admin-tokens.js";
import { createCertPins, type PinStore } from "./cert-pins.js";
import { bearerToken, parseCredential } from "./credentials.js";
import type { Principal } from "./principal.js";
import type { AbuseLimits } from "./rate-limit.js";

/**
 * The one place a presented credential becomes a principal, for Connect and REST alike (each transport then checks
 * its policy with checkPolicy / checkActsAs), and the seam of the abuse limits: every failed authentication passes
 * here and is counted against its source address, and an address slowed for too many failures is refused here
 * before its credential is looked at (server/auth/rate-limit.ts).
 */
export interface Authorizer {
  /**
   * Resolves an `Authorization` header: undefined when there is none; an admin or agent principal for a valid
   * `Bearer spt_…` / `Bearer spa_…`; UnauthenticatedError for anything else (another scheme, a malformed, unknown,
   * revoked or expired credential, or an enrollment token, which only AgentService.Enroll takes in its body).
   * With `address` (the peer's socket address): RateLimitedError first while that address is slowed, and a failure
   * is counted against it. `clientCert` is the fingerprint of the verified client certificate of the connection
   * (mutual TLS; server/http/client-cert.ts), undefined when there is none: an agent key pinned to a certificate is
   * refused with PermissionDeniedError without it or with another one (server/auth/cert-pins.ts).
   */
  authenticate(header: string | undefined | null, address?: string, clientCert?: string): Promise<Principal | undefined>;
  /** Throws RateLimitedError while `address` is slowed for failed authentication. */
  admit(address: string): void;
  /** Counts a refused attempt that did not pass through authenticate (no credential where one is needed). */
  failed(address: string, reason: string): void;
  /** Charges one request to a rate-limit bucket (see limitKey); RateLimitedError when it is empty. */
  charge(key: string): void;
  /**
   * Calls `cb` once when the credential of admin principal `p` is revoked (agent keys are watched by their streams
   * through AgentAccess.watch; other principals never call it). Returns the function that stops watching.
   */
  onRevoked(p: Principal, cb: (reason: string) => void): () => void;
}

/** The bucket a caller is charged to (see rate-limit.ts). */
export function limitKey(p: Principal | undefined, address: string): string {
  if (p?.kind === "agent") return `agent:${p.hostname}`;
  if (p?.kind === "admin") return `admin:${p.tokenId}`;
  return `addr:${addressKey(address)}`;
}

/** Creates the authorizer over the admin token and agent access services and the abuse limits. */
export function createAuthorizer(deps: {
  adminTokens: AdminTokens;
  access: AgentAccess;
  limits: AbuseLimits;
  logger: Logger;
  /** Where certificate pins are recorded (server/auth/cert-pins.ts); without it they are only enforced. */
  store?: PinStore;
  clock?: () => number;
}): Authorizer {
  const { limits } = deps;
  const log = deps.logger.child({ component: "auth" });
  const pins = createCertPins({
    store: deps.store,
    get: (hostname) => deps.access.get(hostname),
    streams: deps.access.streams,
    logger: deps.logger,
    clock: deps.clock ?? Date.now,
  });
  const resolve = async (header: string | undefined | null, clientCert: string | undefined): Promise<Principal | undefined> => {
    if (header === undefined || header === null || header.trim() === "") return undefined;
    const token = bearerToken(header);
    if (!token) throw new UnauthenticatedError("Authorization header must be 'Bearer <token>'");
    const parsed = parseCredential(token);
    if (!parsed) throw new UnauthenticatedError("malformed credential");
    switch (parsed.kind) {
      case "admin":
        return deps.adminTokens.authenticate(token);
      case "agent": {
        const p = await deps.access.authenticate(token);
        await pins.check(p, clientCert);
        return p;
      }
      case "enrollment":
        throw new UnauthenticatedError("an enrollment token is only accepted by AgentService.Enroll");
    }
  };
  const authorizer: Authorizer = {
    async authenticate(header, address, clientCert) {
      if (address === undefined) return resolve(header, clientCert);
      authorizer.admit(address);
      try {
        return await resolve(header, clientCert);
      } catch (err) {
        if (err instanceof UnauthenticatedError) authorizer.failed(address, err.message);
        throw err;
      }
    },
    admit(address) {
      limits.admit(addressKey(address));
    },
    failed(address, reason) {
      const key = addressKey(address);
      const blockMs = limits.authFailed(key);
      // Said when an address is slowed (not for every failure: a flood must not flood the log too).
      if (blockMs > 0) log.warn({ remote: key, blockMs, reason }, "repeated failed authentication: address slowed");
    },
    charge(key) {
      limits.charge(key);
    },
    onRevoked(p, cb) {
      return p.kind === "admin" ? deps.adminTokens.watch(p.tokenId, cb) : () => {};
    },
  };
  return authorizer;
}
