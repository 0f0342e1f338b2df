import { PermissionDeniedError, UnauthenticatedError } from "../errors.js";
import { roleAtLeast, type RoleName } from "./credentials.js";

/** A caller holding an admin token. */
export interface AdminPrincipal {
  kind: "admin";
  tokenId: string;
  /** The token's name: what the audit trail records. */
  name: string;
  role: RoleName;
}

/** An agent holding its own key: it may act only as `hostname`. */
export interface AgentPrincipal {
  kind: "agent";
  hostname: string;
  /** Id of the key it authenticated with (current, or the next one of a rotation, then promoted). */
  keyId: string;
}

/** A legacy client without a credential, let in because its address is in --legacy-allow (REST only). */
export interface LegacyPrincipal {
  kind: "legacy";
  address: string;
}

/** Who is calling. */
export type Principal = AdminPrincipal | AgentPrincipal | LegacyPrincipal;

/** What a route or method requires. */
export type AccessPolicy =
  /** Anyone (AgentService.Enroll: the enrollment token travels in the request). */
  | { kind: "public" }
  /** An agent key; the handler then checks the hostname each request claims. */
  | { kind: "agent" }
  /** An admin token with at least this role. */
  | { kind: "role"; role: RoleName };

/** Shorthands for policy tables. */
export const PUBLIC: AccessPolicy = { kind: "public" };
export const AGENT: AccessPolicy = { kind: "agent" };
export const role = (r: RoleName): AccessPolicy => ({ kind: "role", role: r });

/** Throws unless `p` satisfies `policy` (Unauthenticated when there is no principal, PermissionDenied otherwise). */
export function checkPolicy(policy: AccessPolicy, p: Principal | undefined): void {
  if (policy.kind === "public") return;
  if (!p) throw new UnauthenticatedError("missing credential (Authorization: Bearer …)");
  if (policy.kind === "agent") {
    if (p.kind !== "agent") throw new PermissionDeniedError("this method needs an agent key");
    return;
  }
  if (p.kind !== "admin") throw new PermissionDeniedError(`this method needs an admin token (role ${policy.role})`);
  if (!roleAtLeast(p.role, policy.role)) {
    throw new PermissionDeniedError(`admin token "${p.name}" has role ${p.role}; this needs ${policy.role}`);
  }
}

/**
 * Identity binding: an agent may act only as the host its key was issued to. Admin principals are not agents;
 * legacy principals (REST, --legacy-allow) are checked by the REST layer.
 */
export function checkActsAs(p: Principal | undefined, hostname: string): void {
  if (!p) throw new UnauthenticatedError("missing credential (Authorization: Bearer …)");
  if (p.kind === "agent" && p.hostname !== hostname) {
    throw new PermissionDeniedError(`this key belongs to "${p.hostname}", not "${hostname}"`);
  }
}

/** The name recorded in the audit trail for what `p` does. */
export function auditName(p: Principal | undefined, fallback: string): string {
  return p?.kind === "admin" ? p.name : fallback;
}
