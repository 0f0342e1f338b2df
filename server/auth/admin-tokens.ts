import type { Logger } from "../../common/logger.js";
import { ConflictError, InvalidInputError, NotFoundError, UnauthenticatedError } from "../errors.js";
import type { AdminTokenRecord, Store } from "../store/store.js";
import { generateCredential, isRoleName, parseCredential, verifySecret, type RoleName } from "./credentials.js";
import type { AdminPrincipal } from "./principal.js";

/** Name of the token the server creates on its first start. */
export const INITIAL_ADMIN_TOKEN_NAME = "initial-admin";

/** last_used is written at most this often per token (not on every request). */
const TOUCH_EVERY_MS = 60_000;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** Admin tokens: create (the secret is returned once), list, revoke, and authenticate a presented token. */
export interface AdminTokens {
  /** Creates a token; ConflictError when the name is taken, InvalidInputError for a bad name or role. */
  create(name: string, role: RoleName, createdBy: string): Promise<{ token: string; record: AdminTokenRecord }>;
  list(): Promise<AdminTokenRecord[]>;
  /** Revokes by id or name (the id wins); NotFoundError when neither matches. */
  revoke(nameOrId: string, by: string): Promise<AdminTokenRecord>;
  /** Checks an `spt_…` token; UnauthenticatedError when it is malformed, unknown, wrong or revoked. */
  authenticate(token: string): Promise<AdminPrincipal>;
  /**
   * Calls `onRevoked` once when token `tokenId` is revoked, here or on another server sharing the database (the
   * server streams opened with it end: server/rpc/auth.ts). Returns the function that stops watching.
   */
  watch(tokenId: string, onRevoked: (reason: string) => void): () => void;
  /**
   * On a store without any admin token (revoked ones count), creates "initial-admin" (role admin) and returns its
   * token; otherwise undefined. Of several servers starting on one database, one creates it.
   */
  ensureInitial(): Promise<string | undefined>;
}

/** Creates the admin token service over the store. */
export function createAdminTokens(deps: { store: Store; logger: Logger; clock: () => number }): AdminTokens {
  const { store, logger, clock } = deps;
  const lastTouch = new Map<string, number>();
  /** Open watches by token id. */
  const watchers = new Map<string, Set<(reason: string) => void>>();
  let subscribed = false;
  const fire = (id: string) => {
    const set = watchers.get(id);
    if (!set) return;
    watchers.delete(id);
    for (const cb of set) cb("admin token revoked");
  };
  /** Notifications may have been missed (another server's revocation): look at every watched token again. */
  const recheck = async () => {
    for (const id of [...watchers.keys()]) {
      const rec = await store.getAdminToken(id);
      if (!rec || rec.revokedAtMs !== undefined) fire(id);
    }
  };
  const subscribe = () => {
    if (subscribed) return;
    subscribed = true;
    store.subscribe?.("admin_token_revoked", (id) => {
      if (id !== null) fire(id);
      else recheck().catch((err: unknown) => logger.warn({ err }, "cannot check admin tokens of open streams"));
    });
  };

  const create: AdminTokens["create"] = async (name, role, createdBy) => {
    if (!NAME_RE.test(name)) {
      throw new InvalidInputError(`token name ${JSON.stringify(name.slice(0, 80))}: 1-64 letters, digits, '.', '_', '@', '-'`);
    }
    if (!isRoleName(role)) throw new InvalidInputError(`role ${JSON.stringify(role)}: one of viewer, operator, admin`);
    const cred = generateCredential("admin");
    const record: AdminTokenRecord = { id: cred.id, name, role, secretHash: cred.hash, createdAtMs: clock(), createdBy };
    if (!(await store.createAdminToken(record))) throw new ConflictError(`an admin token named "${name}" already exists`);
    logger.info({ token: name, id: cred.id, role, by: createdBy }, "admin token created");
    return { token: cred.token, record };
  };

  return {
    create,
    list: () => store.listAdminTokens(),
    async revoke(nameOrId, by) {
      const rec = await store.revokeAdminToken(nameOrId, clock());
      if (!rec) throw new NotFoundError(`no admin token named or with id "${nameOrId}"`);
      logger.info({ token: rec.name, id: rec.id, by, openStreams: watchers.get(rec.id)?.size ?? 0 }, "admin token revoked");
      fire(rec.id);
      return rec;
    },
    async authenticate(token) {
      const parsed = parseCredential(token, "admin");
      if (!parsed) throw new UnauthenticatedError("malformed admin token");
      const rec = await store.getAdminToken(parsed.id);
      if (!rec || !verifySecret(parsed.secret, rec.secretHash)) throw new UnauthenticatedError("unknown admin token");
      if (rec.revokedAtMs !== undefined) throw new UnauthenticatedError("admin token revoked");
      const now = clock();
      if (now - (lastTouch.get(rec.id) ?? rec.lastUsedMs ?? -Infinity) >= TOUCH_EVERY_MS) {
        lastTouch.set(rec.id, now);
        store.touchAdminToken(rec.id, now).catch((err: unknown) => logger.warn({ err, id: rec.id }, "cannot record token use"));
      }
      return { kind: "admin", tokenId: rec.id, name: rec.name, role: rec.role };
    },
    watch(tokenId, onRevoked) {
      subscribe();
      let set = watchers.get(tokenId);
      if (!set) watchers.set(tokenId, (set = new Set()));
      const s = set;
      s.add(onRevoked);
      // A revocation between the caller's authentication and this watch would otherwise go unnoticed.
      store.getAdminToken(tokenId).then(
        (rec) => {
          if (s.has(onRevoked) && (!rec || rec.revokedAtMs !== undefined)) fire(tokenId);
        },
        (err: unknown) => logger.warn({ err, id: tokenId }, "cannot check an admin token of an open stream"),
      );
      return () => {
        s.delete(onRevoked);
        if (s.size === 0 && watchers.get(tokenId) === s) watchers.delete(tokenId);
      };
    },
    async ensureInitial() {
      if ((await store.countAdminTokens()) > 0) return undefined;
      try {
        return (await create(INITIAL_ADMIN_TOKEN_NAME, "admin", "bootstrap")).token;
      } catch (err) {
        if (err instanceof ConflictError) return undefined; // another server made it at the same moment
        throw err;
      }
    },
  };
}
