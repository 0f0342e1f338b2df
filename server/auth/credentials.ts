/**
 * Credentials: admin tokens (`spt_<id>_<secret>`), enrollment tokens (`spe_<id>_<secret>`) and agent keys
 * (`spa_<id>_<secret>`). The id is public (it names the row the server looks up, and appears in listings and logs);
 * the secret is 32 random bytes, base64url, and never stored: the store keeps its SHA-256 only.
 *
 * Why a plain SHA-256 and not a slow password hash (scrypt, bcrypt): a slow hash protects *guessable* secrets
 * against brute force after a database leak. These secrets are 256 random bits; nobody can enumerate them, with
 * or without the hash, so a slow hash would add nothing but a CPU cost on every authenticated request (agents
 * authenticate every call). Hashes are compared with crypto.timingSafeEqual, so the time a comparison takes says
 * nothing about how much of a guess was right.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** The three kinds of credential and their prefixes. */
export const CREDENTIAL_PREFIX = { admin: "spt", enrollment: "spe", agent: "spa" } as const;
export type CredentialKind = keyof typeof CREDENTIAL_PREFIX;

/** Bytes of randomness in a secret (256 bits). */
const SECRET_BYTES = 32;
/** Bytes of randomness in an id (64 bits: unique among every credential a server will ever issue). */
const ID_BYTES = 8;

const ID_RE = /^[0-9a-f]{16}$/;
const SECRET_RE = /^[A-Za-z0-9_-]{43}$/;

/** A freshly generated credential: `token` is what the holder presents, `hash` what the store keeps. */
export interface NewCredential {
  id: string;
  token: string;
  hash: string;
}

/** A credential split into its parts. */
export interface ParsedCredential {
  kind: CredentialKind;
  id: string;
  secret: string;
}

/** Generates a credential of `kind`. */
export function generateCredential(kind: CredentialKind): NewCredential {
  const id = randomBytes(ID_BYTES).toString("hex");
  const secret = randomBytes(SECRET_BYTES).toString("base64url");
  return { id, token: `${CREDENTIAL_PREFIX[kind]}_${id}_${secret}`, hash: hashSecret(secret) };
}

/**
 * Splits a token into kind, id and secret; undefined when it is not a well-formed credential (of `kind`, when
 * given). The secret may itself contain '_' (base64url), so only the first two separators count.
 */
export function parseCredential(token: string, kind?: CredentialKind): ParsedCredential | undefined {
  const first = token.indexOf("_");
  const second = token.indexOf("_", first + 1);
  if (first < 0 || second < 0) return undefined;
  const prefix = token.slice(0, first);
  const id = token.slice(first + 1, second);
  const secret = token.slice(second + 1);
  const found = (Object.keys(CREDENTIAL_PREFIX) as CredentialKind[]).find((k) => CREDENTIAL_PREFIX[k] === prefix);
  if (!found || (kind !== undefined && found !== kind)) return undefined;
  if (!ID_RE.test(id) || !SECRET_RE.test(secret)) return undefined;
  return { kind: found, id, secret };
}

/** SHA-256 of a secret, hex (see the module comment for why a fast hash suffices). */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** Whether `secret` hashes to `storedHash`, compared in constant time. */
export function verifySecret(secret: string, storedHash: string): boolean {
  const want = Buffer.from(storedHash, "hex");
  const got = createHash("sha256").update(secret, "utf8").digest();
  // A malformed stored hash has another length: compare against itself so the time is the same, then refuse.
  if (want.length !== got.length) {
    timingSafeEqual(got, got);
    return false;
  }
  return timingSafeEqual(got, want);
}

/** Admin token roles, weakest first: each includes what the ones before it may do. */
export const ROLES = ["viewer", "operator", "admin"] as const;
export type RoleName = (typeof ROLES)[number];

/** Whether `role` is at least `needed`. */
export function roleAtLeast(role: RoleName, needed: RoleName): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/** Whether `v` names a role. */
export function isRoleName(v: string): v is RoleName {
  return (ROLES as readonly string[]).includes(v);
}

/** The bearer token of an `Authorization` header value, or undefined when there is none or it is not Bearer. */
export function bearerToken(header: string | undefined | null): string | undefined {
  if (!header) return undefined;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}
