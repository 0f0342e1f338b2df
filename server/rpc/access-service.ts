import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  AccessService,
  AdminTokenInfoSchema,
  ApproveAgentResponseSchema,
  ClearAgentCertificatePinResponseSchema,
  CreateAdminTokenResponseSchema,
  CreateEnrollmentTokenResponseSchema,
  DenyAgentResponseSchema,
  EnrollmentTokenInfoSchema,
  ListAdminTokensResponseSchema,
  ListEnrollmentTokensResponseSchema,
  RevokeAdminTokenResponseSchema,
  RemoveAgentResponseSchema,
  RevokeAgentResponseSchema,
  RevokeEnrollmentTokenResponseSchema,
  Role,
  RotateAgentKeyResponseSchema,
  type AdminTokenInfo,
  type EnrollmentTokenInfo,
} from "../../gen/spectra/v1/access_service_pb.js";
import { auditName } from "../auth/principal.js";
import type { RoleName } from "../auth/credentials.js";
import { checkHostname } from "../agents/hostname.js";
import { clearCertPin } from "../auth/cert-pins.js";
import { InvalidInputError, NotFoundError } from "../errors.js";
import type { Services } from "../services.js";
import type { AdminTokenRecord, EnrollmentTokenRecord } from "../store/store.js";
import { principalOf } from "./auth.js";

const ROLE_IN: Partial<Record<Role, RoleName>> = { [Role.VIEWER]: "viewer", [Role.OPERATOR]: "operator", [Role.ADMIN]: "admin" };
const ROLE_OUT: Record<RoleName, Role> = { viewer: Role.VIEWER, operator: Role.OPERATOR, admin: Role.ADMIN };

/** An admin token for the API (never its secret or hash). */
export function toAdminTokenInfo(r: AdminTokenRecord): AdminTokenInfo {
  return create(AdminTokenInfoSchema, {
    id: r.id,
    name: r.name,
    role: ROLE_OUT[r.role],
    createdAt: timestampFromMs(r.createdAtMs),
    ...(r.lastUsedMs !== undefined ? { lastUsed: timestampFromMs(r.lastUsedMs) } : {}),
    revoked: r.revokedAtMs !== undefined,
  });
}

/** An enrollment token for the API (never its secret or hash). */
export function toEnrollmentTokenInfo(r: EnrollmentTokenRecord): EnrollmentTokenInfo {
  return create(EnrollmentTokenInfoSchema, {
    id: r.id,
    name: r.name,
    singleUse: r.singleUse,
    autoApprove: r.autoApprove,
    createdAt: timestampFromMs(r.createdAtMs),
    ...(r.expiresAtMs !== undefined ? { expiresAt: timestampFromMs(r.expiresAtMs) } : {}),
    labels: { ...r.labels },
    uses: r.uses,
    revoked: r.revokedAtMs !== undefined,
    createdBy: r.createdBy,
  });
}

/** AccessService over the shared services. Roles are enforced by the auth interceptor (server/rpc/auth.ts). */
export function createAccessServiceImpl(s: Services): ServiceImpl<typeof AccessService> {
  const by = (ctx: HandlerContext) => auditName(principalOf(ctx), "connect");
  return {
    async createEnrollmentToken(req, ctx) {
      const ttlMs = req.ttl ? durationMs(req.ttl) : 0;
      const { token, record } = await s.access.createEnrollmentToken(
        // Unset: single use (the safe default; the field has explicit presence).
        { name: req.name, singleUse: req.singleUse ?? true, autoApprove: req.autoApprove, ttlMs, labels: req.labels },
        by(ctx),
      );
      return create(CreateEnrollmentTokenResponseSchema, { token, info: toEnrollmentTokenInfo(record) });
    },
    async listEnrollmentTokens() {
      return create(ListEnrollmentTokensResponseSchema, { tokens: (await s.access.listEnrollmentTokens()).map(toEnrollmentTokenInfo) });
    },
    async revokeEnrollmentToken(req, ctx) {
      await s.access.revokeEnrollmentToken(req.id, by(ctx));
      return create(RevokeEnrollmentTokenResponseSchema);
    },
    async approveAgent(req, ctx) {
      await s.access.approve(req.hostname, by(ctx));
      return create(ApproveAgentResponseSchema);
    },
    async denyAgent(req, ctx) {
      await s.access.deny(req.hostname, by(ctx));
      return create(DenyAgentResponseSchema);
    },
    async rotateAgentKey(req, ctx) {
      await s.access.rotate(req.hostname, by(ctx));
      return create(RotateAgentKeyResponseSchema);
    },
    async revokeAgent(req, ctx) {
      await s.access.revoke(req.hostname, by(ctx));
      return create(RevokeAgentResponseSchema);
    },
    async removeAgent(req, ctx) {
      await s.removal.remove(req.hostname, { deleteData: req.deleteData, by: by(ctx) });
      return create(RemoveAgentResponseSchema);
    },
    async createAdminToken(req, ctx) {
      const role = ROLE_IN[req.role];
      if (!role) throw new InvalidInputError("role: ROLE_VIEWER, ROLE_OPERATOR or ROLE_ADMIN");
      const { token, record } = await s.adminTokens.create(req.name, role, by(ctx));
      return create(CreateAdminTokenResponseSchema, { token, info: toAdminTokenInfo(record) });
    },
    async listAdminTokens() {
      return create(ListAdminTokensResponseSchema, { tokens: (await s.adminTokens.list()).map(toAdminTokenInfo) });
    },
    async revokeAdminToken(req, ctx) {
      await s.adminTokens.revoke(req.nameOrId, by(ctx));
      return create(RevokeAdminTokenResponseSchema);
    },
    async clearAgentCertificatePin(req, ctx) {
      checkHostname(req.hostname);
      if (!(await s.access.get(req.hostname))) throw new NotFoundError(`no agent "${req.hostname}" has enrolled`);
      const previous = await clearCertPin(s.store, s.access.streams, req.hostname, s.clock);
      s.logger.info({ agent: req.hostname, previous: previous ?? "none", by: by(ctx) }, "agent certificate pin cleared");
      return create(ClearAgentCertificatePinResponseSchema, { previousFingerprint: previous ?? "" });
    },
  };
}
