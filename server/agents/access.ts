/**
 * Agent access: enrollment tokens, enrollment (pending → approved / denied), per-agent keys, rotation and
 * revocation, and the open streams those reach. Every change of an agent's access record is a compare-and-set on
 * its version (Store.putAgentAccess), so concurrent requests and several servers on one database never lose an
 * update; a single-use enrollment token is consumed in the same transaction as the record it creates.
 *
 * Decisions (see README "Security"):
 * - Keys are never stored, so they cannot be handed out twice: an approved agent's enrollment poll gets a freshly
 *   generated key each time until one is used (a lost answer costs nothing), and a rotated key is generated when it
 *   is sent on the agent's command stream (again on a later stream if the agent reconnects without using it).
 * - A host that already has an access record (approved, denied or revoked) enrolling again with a new token always
 *   waits for an admin's approval, whatever the token says: an auto-approving token must not let anyone take over an
 *   existing host's name. Its current key keeps working until the new enrollment's key is collected, or it is revoked.
 * - Token errors: a missing, malformed or unknown enrollment token (or wrong secret) is Unauthenticated; a known
 *   token that is revoked, expired or (single-use) already used is PermissionDenied.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "../../common/logger.js";
import type { HostInfo } from "../../gen/spectra/v1/agent_service_pb.js";
import { generateCredential, hashSecret, parseCredential, verifySecret } from "../auth/credentials.js";
import type { AgentPrincipal } from "../auth/principal.js";
import {
  FailedPreconditionError,
  InvalidInputError,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
} from "../errors.js";
import type { AgentAccessRecord, EnrollmentStateName, EnrollmentTokenRecord, Store } from "../store/store.js";
import { createAgentStreams, type AgentStreams } from "./agent-streams.js";
import { checkHostname } from "./hostname.js";

/** Timings of enrollment and rotation. */
export interface AccessOptions {
  /** After a rotated key was sent, the old key stays valid this long unless the new one is used first. */
  keyGraceMs: number;
  /** How soon a pending agent is told to poll again. */
  pendingRetryMs: number;
  /** How long a denied or revoked agent is told to wait before asking again. */
  deniedRetryMs: number;
}

export const DEFAULT_ACCESS_OPTIONS: AccessOptions = {
  keyGraceMs: 10 * 60_000,
  pendingRetryMs: 15_000,
  deniedRetryMs: 3_600_000,
};

/** An enrollment call (the first, with a token, or a poll with the enrollment id). */
export interface EnrollInput {
  enrollmentToken: string;
  host?: HostInfo | undefined;
  enrollmentId: string;
  enrollmentSecret: string;
  reportIntervalMs?: number | undefined;
}

/** Where an enrollment stands, as the agent is told. */
export interface EnrollOutcome {
  state: EnrollmentStateName;
  enrollmentId: string;
  /** Set when approved and no key of this enrollment has been used yet. */
  agentKey?: string;
  retryAfterMs?: number;
  message: string;
}

/** Settings of a new enrollment token. */
export interface EnrollmentTokenSpec {
  name: string;
  singleUse: boolean;
  autoApprove: boolean;
  /** Absent or 0: never expires. */
  ttlMs?: number;
  labels: Record<string, string>;
}

/** What an open agent stream should do after its access record changed. */
export type StreamCheck =
  /** Carry on; deliver `newKey` (rotation) to the agent first when set. */
  | { status: "ok"; newKey?: string }
  /** The key is no longer valid (revoked, or the rotation grace ran out): end with Unauthenticated. */
  | { status: "revoked"; reason: string }
  /** The key was replaced (rotation completed, or a re-enrollment's key collected): end quietly. */
  | { status: "superseded" };

/** One open stream's view of its agent's access. */
export interface StreamWatch {
  /** Reads the access record and says what the stream should do (issues a rotated key when one is due). */
  check(): Promise<StreamCheck>;
  /**
   * A signal that aborts when `parent` does or when the access record may have changed since the last check()
   * (at once if it already did). Call dispose() when done waiting.
   */
  wake(parent: AbortSignal): { signal: AbortSignal; dispose(): void };
  /** Calls `cb` once if the key stops being valid while the watch is open. */
  onRevoked(cb: (reason: string) => void): void;
  close(): void;
}

/** The agent access service. */
export interface AgentAccess {
  readonly streams: AgentStreams;
  createEnrollmentToken(spec: EnrollmentTokenSpec, createdBy: string): Promise<{ token: string; record: EnrollmentTokenRecord }>;
  listEnrollmentTokens(): Promise<EnrollmentTokenRecord[]>;
  revokeEnrollmentToken(id: string, by: string): Promise<void>;
  /** AgentService.Enroll. */
  enroll(input: EnrollInput): Promise<EnrollOutcome>;
  approve(hostname: string, by: string): Promise<void>;
  deny(hostname: string, by: string): Promise<void>;
  /** Asks for a new key: it is sent on the agent's command stream (woken now) or at its next one. */
  rotate(hostname: string, by: string): Promise<void>;
  /** Revokes the agent's keys at once; its open streams end with Unauthenticated. */
  revoke(hostname: string, by: string): Promise<void>;
  /** Gives `hostname` an approved record and a fresh key directly, without enrollment (tests, tooling). */
  provision(hostname: string, opts?: { labels?: Record<string, string> }): Promise<string>;
  /** Checks an `spa_…` key: UnauthenticatedError when malformed, unknown, revoked or out of its rotation grace. */
  authenticate(token: string): Promise<AgentPrincipal>;
  /** Records what the agent reported at Register (diagnostics allowed, report interval). */
  recordReport(hostname: string, report: { diagnostics: string[]; reportIntervalMs?: number | undefined }): Promise<void>;
  get(hostname: string): Promise<AgentAccessRecord | undefined>;
  list(): Promise<AgentAccessRecord[]>;
  /** Opens the view an agent stream keeps of its access (see StreamWatch). */
  watch(p: AgentPrincipal): StreamWatch;
  /** Stops listening for changes made by other servers. */
  stop(): void;
}

const SECRET_MIN = 16;
const SECRET_MAX = 512;
const LABEL_KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,62}$/;
const MAX_LABELS = 32;
const TOKEN_NAME = /^[\x20-\x7e]{0,100}$/;
/** Compare-and-set retries before giving up (each lost race means someone else changed the record). */
const CAS_ATTEMPTS = 10;

/** Why a known enrollment token cannot be used now, or undefined. */
function tokenProblem(tok: EnrollmentTokenRecord, now: number): string | undefined {
  if (tok.revokedAtMs !== undefined) return "enrollment token revoked";
  if (tok.expiresAtMs !== undefined && tok.expiresAtMs <= now) return "enrollment token expired";
  if (tok.singleUse && tok.uses > 0) return "single-use enrollment token already used";
  return undefined;
}

/** Creates the agent access service. */
export function createAgentAccess(deps: {
  store: Store;
  logger: Logger;
  clock: () => number;
  options?: Partial<AccessOptions>;
}): AgentAccess {
  const { store, clock } = deps;
  const logger = deps.logger.child({ component: "access" });
  const opts = { ...DEFAULT_ACCESS_OPTIONS, ...deps.options };
  const streams = createAgentStreams();
  const unsubscribe = store.subscribe?.("agent_access_changed", (host) => streams.changed(host));

  /** Read, change, compare-and-set; `fn` returns the new record, or undefined for "nothing to write". */
  async function update(
    hostname: string,
    fn: (rec: AgentAccessRecord | undefined) => AgentAccessRecord | undefined,
  ): Promise<AgentAccessRecord | undefined> {
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const rec = await store.getAgentAccess(hostname);
      const next = fn(rec);
      if (!next) return rec;
      const r = await store.putAgentAccess(next, rec?.version);
      if (r.ok) {
        streams.changed(hostname);
        return { ...next, version: r.version };
      }
    }
    throw new Error(`access record of ${hostname} kept changing; try again`);
  }

  const existing = async (hostname: string) => {
    checkHostname(hostname);
    const rec = await store.getAgentAccess(hostname);
    if (!rec) throw new NotFoundError(`no agent "${hostname}" has enrolled`);
    return rec;
  };

  function outcome(rec: AgentAccessRecord, agentKey?: string): EnrollOutcome {
    const id = rec.enrollmentId ?? "";
    switch (rec.state) {
      case "pending":
        return { state: "pending", enrollmentId: id, retryAfterMs: opts.pendingRetryMs, message: "waiting for an administrator's approval" };
      case "denied":
        return { state: "denied", enrollmentId: id, retryAfterMs: opts.deniedRetryMs, message: "an administrator denied this enrollment" };
      case "revoked":
        return {
          state: "revoked",
          enrollmentId: id,
          retryAfterMs: opts.deniedRetryMs,
          message: "this agent's key was revoked; enroll again with a new token",
        };
      case "approved":
        return agentKey
          ? { state: "approved", enrollmentId: id, agentKey, message: "approved" }
          : { state: "approved", enrollmentId: id, message: "approved; the key of this enrollment was already collected and used" };
    }
  }

  /** Answers an enrollment poll; an approved one whose key was not used yet gets a fresh key. */
  async function answer(rec: AgentAccessRecord): Promise<EnrollOutcome> {
    if (rec.state !== "approved" || !rec.keyPickup) return outcome(rec);
    let token: string | undefined;
    const saved = await update(rec.hostname, (cur) => {
      token = undefined;
      if (!cur || cur.enrollmentId !== rec.enrollmentId || cur.state !== "approved" || !cur.keyPickup) return undefined;
      const cred = generateCredential("agent");
      token = cred.token;
      return withoutRotation({ ...cur, keyId: cred.id, keyHash: cred.hash, keyUsed: false, updatedAtMs: clock() });
    });
    if (!saved) throw new NotFoundError("this enrollment no longer exists; enroll again with a token");
    if (saved.enrollmentId !== rec.enrollmentId) throw new NotFoundError("this enrollment was replaced by a newer one");
    if (token) logger.info({ agent: rec.hostname, key: saved.keyId }, "agent key issued at enrollment");
    return outcome(saved, token);
  }

  function checkSecret(secret: string) {
    if (secret.length < SECRET_MIN || secret.length > SECRET_MAX) {
      throw new InvalidInputError(`enrollment_secret: ${SECRET_MIN} to ${SECRET_MAX} characters, random, the same on every call`);
    }
  }

  async function poll(input: EnrollInput): Promise<EnrollOutcome> {
    const rec = await store.findAgentAccessByEnrollmentId(input.enrollmentId);
    if (!rec) throw new NotFoundError("unknown enrollment id; enroll again with a token");
    if (!rec.enrollmentSecretHash || !verifySecret(input.enrollmentSecret, rec.enrollmentSecretHash)) {
      throw new PermissionDeniedError("enrollment secret does not match this enrollment");
    }
    return answer(rec);
  }

  async function start(input: EnrollInput): Promise<EnrollOutcome> {
    const parsed = parseCredential(input.enrollmentToken, "enrollment");
    if (!parsed) throw new UnauthenticatedError("missing or malformed enrollment token (spe_…)");
    if (!input.host) throw new InvalidInputError("missing host");
    const hostname = input.host.hostname;
    checkHostname(hostname);
    const tok = await store.getEnrollmentToken(parsed.id);
    if (!tok || !verifySecret(parsed.secret, tok.secretHash)) throw new UnauthenticatedError("unknown enrollment token");
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const now = clock();
      const prev = await store.getAgentAccess(hostname);
      // The same first call again (its answer was lost): answered as a poll, the token is not used twice.
      if (prev && prev.tokenId === tok.id && prev.enrollmentSecretHash && verifySecret(input.enrollmentSecret, prev.enrollmentSecretHash)) {
        return answer(prev);
      }
      const problem = tokenProblem(tok, now);
      if (problem) throw new PermissionDeniedError(problem);
      const auto = tok.autoApprove && !prev;
      const rec: AgentAccessRecord = {
        ...(prev ?? { diagnostics: [], keyUsed: false, createdAtMs: now }),
        hostname,
        version: prev?.version ?? 0,
        state: auto ? "approved" : "pending",
        enrollmentId: randomUUID(),
        enrollmentSecretHash: hashSecret(input.enrollmentSecret),
        tokenId: tok.id,
        labels: { ...tok.labels },
        requestedHost: input.host,
        keyPickup: false,
        updatedAtMs: now,
      };
      if (input.reportIntervalMs !== undefined) rec.reportIntervalMs = input.reportIntervalMs;
      let key: string | undefined;
      if (auto) {
        const cred = generateCredential("agent");
        Object.assign(rec, { keyId: cred.id, keyHash: cred.hash, keyUsed: false, keyPickup: true });
        key = cred.token;
      }
      const r = await store.putAgentAccess(rec, prev?.version, { id: tok.id, atMs: now });
      if (r.ok) {
        streams.changed(hostname);
        logger.info(
          { agent: hostname, token: tok.name, tokenId: tok.id, state: rec.state, reenrollment: prev !== undefined },
          auto ? "agent enrolled and approved by its token" : "agent enrollment waiting for approval",
        );
        return outcome({ ...rec, version: r.version }, key);
      }
      if (r.reason === "token-unusable") {
        const fresh = await store.getEnrollmentToken(tok.id);
        throw new PermissionDeniedError((fresh && tokenProblem(fresh, now)) ?? "enrollment token cannot be used");
      }
      // conflict: the host's record changed meanwhile; look again
    }
    throw new Error(`enrollment of ${hostname} kept conflicting; try again`);
  }

  const withoutRotation = (rec: AgentAccessRecord): AgentAccessRecord => {
    const out = { ...rec };
    delete out.nextKeyId;
    delete out.nextKeyHash;
    delete out.nextKeyIssuedMs;
    delete out.rotationRequestedMs;
    return out;
  };

  /** Why the stream of `p` may not continue, whether a rotated key is due, given its record. */
  function judge(p: AgentPrincipal, rec: AgentAccessRecord | undefined): StreamCheck | "issue" {
    if (!rec || rec.state === "revoked" || !rec.keyId || !rec.keyHash) return { status: "revoked", reason: "agent key revoked" };
    if (rec.keyId !== p.keyId) return rec.nextKeyId === p.keyId ? { status: "ok" } : { status: "superseded" };
    if (rec.nextKeyIssuedMs !== undefined && clock() > rec.nextKeyIssuedMs + opts.keyGraceMs) {
      return { status: "revoked", reason: "agent key replaced by rotation (grace period over)" };
    }
    return rec.rotationRequestedMs !== undefined ? "issue" : { status: "ok" };
  }

  const access: AgentAccess = {
    streams,

    async createEnrollmentToken(spec, createdBy) {
      if (!TOKEN_NAME.test(spec.name)) throw new InvalidInputError("name: at most 100 printable ASCII characters");
      const entries = Object.entries(spec.labels);
      if (entries.length > MAX_LABELS) throw new InvalidInputError(`labels: at most ${MAX_LABELS}`);
      for (const [k, v] of entries) {
        if (!LABEL_KEY.test(k)) throw new InvalidInputError(`label ${JSON.stringify(k.slice(0, 80))}: letters, digits, '_', '.', '-'`);
        if (v.length > 256) throw new InvalidInputError(`label ${k}: value longer than 256 characters`);
      }
      if (spec.ttlMs !== undefined && (!Number.isFinite(spec.ttlMs) || spec.ttlMs < 0)) throw new InvalidInputError("ttl: must be positive");
      const cred = generateCredential("enrollment");
      const now = clock();
      const record: EnrollmentTokenRecord = {
        id: cred.id,
        name: spec.name || `enroll-${cred.id}`,
        secretHash: cred.hash,
        singleUse: spec.singleUse,
        autoApprove: spec.autoApprove,
        createdAtMs: now,
        labels: Object.fromEntries(entries),
        uses: 0,
        createdBy,
      };
      if (spec.ttlMs) record.expiresAtMs = now + spec.ttlMs;
      await store.createEnrollmentToken(record);
      logger.info(
        { tokenId: cred.id, token: record.name, singleUse: spec.singleUse, autoApprove: spec.autoApprove, by: createdBy },
        "enrollment token created",
      );
      return { token: cred.token, record };
    },

    listEnrollmentTokens: () => store.listEnrollmentTokens(),

    async revokeEnrollmentToken(id, by) {
      if (!(await store.revokeEnrollmentToken(id, clock()))) throw new NotFoundError(`no enrollment token with id "${id}"`);
      logger.info({ tokenId: id, by }, "enrollment token revoked");
    },

    async enroll(input) {
      checkSecret(input.enrollmentSecret);
      return input.enrollmentId !== "" ? poll(input) : start(input);
    },

    async approve(hostname, by) {
      await existing(hostname);
      const saved = await update(hostname, (cur) =>
        cur && (cur.state === "pending" || cur.state === "denied")
          ? { ...cur, state: "approved", keyPickup: true, updatedAtMs: clock() }
          : undefined,
      );
      if (saved?.state === "revoked") throw new FailedPreconditionError(`agent "${hostname}" was revoked; it must enroll again`);
      logger.info({ agent: hostname, by }, "agent approved");
    },

    async deny(hostname, by) {
      const rec = await existing(hostname);
      if (rec.state === "denied") return;
      if (rec.state !== "pending") {
        throw new FailedPreconditionError(`agent "${hostname}" is ${rec.state}, not pending; revoke it instead`);
      }
      const saved = await update(hostname, (cur) =>
        cur && cur.state === "pending" ? { ...cur, state: "denied", keyPickup: false, updatedAtMs: clock() } : undefined,
      );
      if (saved?.state !== "denied") throw new FailedPreconditionError(`agent "${hostname}" is no longer pending`);
      logger.info({ agent: hostname, by }, "agent enrollment denied");
    },

    async rotate(hostname, by) {
      const rec = await existing(hostname);
      if (rec.state === "revoked" || !rec.keyHash) throw new FailedPreconditionError(`agent "${hostname}" has no key to rotate`);
      const saved = await update(hostname, (cur) => {
        if (!cur || cur.state === "revoked" || !cur.keyHash) return undefined;
        const now = clock();
        return { ...withoutRotation(cur), rotationRequestedMs: now, updatedAtMs: now };
      });
      if (!saved?.keyHash || saved.state === "revoked") throw new FailedPreconditionError(`agent "${hostname}" has no key to rotate`);
      logger.info({ agent: hostname, by }, "agent key rotation requested");
    },

    async revoke(hostname, by) {
      await existing(hostname);
      await update(hostname, (cur) => {
        if (!cur) return undefined;
        const out = withoutRotation({ ...cur, state: "revoked", keyUsed: false, keyPickup: false, updatedAtMs: clock() });
        delete out.keyHash; // the id stays, so the refusal can say "revoked"
        return out;
      });
      logger.info({ agent: hostname, by }, "agent key revoked");
    },

    async provision(hostname, o = {}) {
      checkHostname(hostname);
      let token = "";
      await update(hostname, (cur) => {
        const cred = generateCredential("agent");
        token = cred.token;
        const now = clock();
        const base: AgentAccessRecord = cur
          ? withoutRotation(cur)
          : { hostname, version: 0, state: "approved", labels: {}, keyUsed: false, keyPickup: false, diagnostics: [], createdAtMs: now, updatedAtMs: now };
        return {
          ...base,
          state: "approved",
          labels: o.labels ?? base.labels,
          keyId: cred.id,
          keyHash: cred.hash,
          keyUsed: false,
          keyPickup: false,
          updatedAtMs: now,
        };
      });
      return token;
    },

    async authenticate(token) {
      const parsed = parseCredential(token, "agent");
      if (!parsed) throw new UnauthenticatedError("malformed agent key");
      for (let i = 0; i < CAS_ATTEMPTS; i++) {
        const rec = await store.findAgentAccessByKeyId(parsed.id);
        if (!rec || rec.state === "revoked") throw new UnauthenticatedError(rec ? "agent key revoked" : "unknown agent key");
        const p: AgentPrincipal = { kind: "agent", hostname: rec.hostname, keyId: parsed.id };
        if (rec.keyId === parsed.id) {
          if (!rec.keyHash || !verifySecret(parsed.secret, rec.keyHash)) throw new UnauthenticatedError("unknown agent key");
          const verdict = judge(p, rec);
          if (verdict !== "issue" && verdict.status === "revoked") throw new UnauthenticatedError(verdict.reason);
          if (rec.keyUsed) return p;
          // First use of this key: the enrollment's key is collected.
          const r = await store.putAgentAccess({ ...rec, keyUsed: true, keyPickup: false, updatedAtMs: clock() }, rec.version);
          if (r.ok) {
            streams.changed(rec.hostname);
            return p;
          }
          continue;
        }
        // The rotated key, used for the first time: it becomes the current one and the old key stops working.
        if (!rec.nextKeyHash || !verifySecret(parsed.secret, rec.nextKeyHash)) throw new UnauthenticatedError("unknown agent key");
        const promoted = withoutRotation({ ...rec, keyId: parsed.id, keyHash: rec.nextKeyHash, keyUsed: true, keyPickup: false, updatedAtMs: clock() });
        const r = await store.putAgentAccess(promoted, rec.version);
        if (r.ok) {
          streams.changed(rec.hostname);
          logger.info({ agent: rec.hostname, key: parsed.id }, "agent switched to its rotated key");
          return p;
        }
      }
      throw new Error("agent key check kept conflicting; try again");
    },

    async recordReport(hostname, report) {
      await update(hostname, (cur) => {
        if (!cur) return undefined;
        const interval = report.reportIntervalMs ?? cur.reportIntervalMs;
        const same =
          interval === cur.reportIntervalMs &&
          report.diagnostics.length === cur.diagnostics.length &&
          report.diagnostics.every((d, i) => d === cur.diagnostics[i]);
        if (same) return undefined;
        const out: AgentAccessRecord = { ...cur, diagnostics: [...report.diagnostics], updatedAtMs: clock() };
        if (interval !== undefined) out.reportIntervalMs = interval;
        return out;
      });
    },

    get: (hostname) => store.getAgentAccess(hostname),
    list: () => store.listAgentAccess(),

    watch(p) {
      const openedAt = clock();
      let dirty = false;
      let issuedFor: number | undefined;
      const wakers = new Set<() => void>();
      const revokedCbs: ((reason: string) => void)[] = [];
      let closed = false;
      const onChange = () => {
        dirty = true;
        for (const w of [...wakers]) w();
        if (revokedCbs.length > 0) {
          // Only whether the key still holds: issuing a rotated key is left to the stream that can send it
          // (CommandPoll); a key issued here would be lost.
          void store.getAgentAccess(p.hostname).then(
            (rec) => {
              const c = judge(p, rec);
              if (c !== "issue" && c.status === "revoked" && !closed) for (const cb of revokedCbs.splice(0)) cb(c.reason);
            },
            (err: unknown) => logger.warn({ err, agent: p.hostname }, "cannot check agent access"),
          );
        }
      };
      const remove = streams.add(p.hostname, onChange);
      const watch: StreamWatch = {
        async check() {
          dirty = false;
          for (let i = 0; i < CAS_ATTEMPTS; i++) {
            const rec = await store.getAgentAccess(p.hostname);
            const verdict = judge(p, rec);
            if (verdict !== "issue") return verdict;
            const r = rec!;
            const requested = r.rotationRequestedMs!;
            // Issue once per request and stream; a stream opened after the last issue (the agent reconnected
            // without using that key) gets a fresh one. Older streams leave the key to the one that sent it.
            if (issuedFor === requested || (r.nextKeyIssuedMs !== undefined && r.nextKeyIssuedMs >= openedAt)) {
              return { status: "ok" };
            }
            const cred = generateCredential("agent");
            const now = clock();
            const next = { ...r, nextKeyId: cred.id, nextKeyHash: cred.hash, nextKeyIssuedMs: now, updatedAtMs: now };
            const put = await store.putAgentAccess(next, r.version);
            if (put.ok) {
              issuedFor = requested;
              logger.info({ agent: p.hostname, key: cred.id }, "rotated agent key sent");
              return { status: "ok", newKey: cred.token };
            }
          }
          throw new Error(`access record of ${p.hostname} kept changing`);
        },
        wake(parent) {
          const ctl = new AbortController();
          const fire = () => ctl.abort();
          if (dirty || parent.aborted) ctl.abort();
          parent.addEventListener("abort", fire, { once: true });
          wakers.add(fire);
          return {
            signal: ctl.signal,
            dispose() {
              parent.removeEventListener("abort", fire);
              wakers.delete(fire);
            },
          };
        },
        onRevoked(cb) {
          revokedCbs.push(cb);
        },
        close() {
          closed = true;
          remove();
          wakers.clear();
        },
      };
      return watch;
    },

    stop() {
      unsubscribe?.();
    },
  };
  return access;
}
