/**
 * Mutual TLS pinning: an agent's key is bound to the client certificate it was first used with. The listener has
 * verified the certificate against --tls-client-ca already (server/http/listener.ts); here, per request, its
 * fingerprint is compared with the one in the agent's access record, and recorded there when there is none yet.
 * A pinned agent's key used with another certificate, or with none, is refused with PermissionDenied (403 on REST):
 * a copied key alone no longer lets anyone in. An admin clears a pin (AccessService.ClearAgentCertificatePin) when an
 * agent's certificate is renewed or replaced; the next certificate it uses is pinned then.
 *
 * Pins are read through a per-host cache, so a request costs no extra database read: an entry is dropped whenever
 * the host's access record may have changed (AgentStreams.observe: this server's writes, and other servers' through
 * the store's change notifications).
 */
import type { Logger } from "../../common/logger.js";
import type { AgentStreams } from "../agents/agent-streams.js";
import { PermissionDeniedError } from "../errors.js";
import type { AgentAccessRecord, Store } from "../store/store.js";
import type { AgentPrincipal } from "./principal.js";

/** Compare-and-set attempts before giving up (each lost race means someone else changed the record). */
const CAS_ATTEMPTS = 10;

export interface CertPins {
  /**
   * Checks a request of agent `p` that came with the verified client certificate `presented` (undefined: none):
   * PermissionDeniedError when the agent is pinned to another certificate or presented none; pins `presented` when
   * the agent has no pin yet.
   */
  check(p: AgentPrincipal, presented: string | undefined): Promise<void>;
}

/** The store operations pinning needs. */
export type PinStore = Pick<Store, "getAgentAccess" | "putAgentAccess">;

/**
 * Creates the pin checker. Without `store` (a caller that was not given one) pins are enforced but none is
 * recorded; that is said once in the log.
 */
export function createCertPins(deps: {
  store?: PinStore | undefined;
  get: (hostname: string) => Promise<AgentAccessRecord | undefined>;
  streams: AgentStreams;
  logger: Logger;
  clock: () => number;
}): CertPins {
  const log = deps.logger.child({ component: "auth" });
  /** hostname → its pin, or null for "not pinned". */
  const cache = new Map<string, string | null>();
  let generation = 0;
  deps.streams.observe((hostname) => {
    generation++;
    if (hostname === null) cache.clear();
    else cache.delete(hostname);
  });
  let warned = false;

  const pinOf = async (hostname: string): Promise<string | null> => {
    const hit = cache.get(hostname);
    if (hit !== undefined) return hit;
    const g = generation;
    const pin = (await deps.get(hostname))?.certFingerprint ?? null;
    if (g === generation) cache.set(hostname, pin); // unless it changed while being read
    return pin;
  };

  const refuse = (p: AgentPrincipal, presented: string | undefined): never => {
    log.info({ agent: p.hostname, presented: presented ?? "none" }, "agent key used with another client certificate: refused");
    throw new PermissionDeniedError(
      presented === undefined
        ? `the key of "${p.hostname}" is pinned to a client certificate; connect with it (mutual TLS)`
        : `the key of "${p.hostname}" is pinned to another client certificate`,
    );
  };

  /** Records `presented` as the pin of `p`'s host, unless another pin got there first (then that one counts). */
  const record = async (p: AgentPrincipal, presented: string): Promise<string> => {
    const store = deps.store;
    if (!store) {
      if (!warned) log.warn("client certificate pins cannot be recorded: the authorizer was given no store");
      warned = true;
      return presented;
    }
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const rec = await store.getAgentAccess(p.hostname);
      if (!rec) return presented; // removed meanwhile: the key check refuses it next time
      if (rec.certFingerprint !== undefined) return rec.certFingerprint;
      const r = await store.putAgentAccess({ ...rec, certFingerprint: presented, updatedAtMs: deps.clock() }, rec.version);
      if (r.ok) {
        deps.streams.changed(p.hostname);
        log.info({ agent: p.hostname, fingerprint: presented }, "agent pinned to its client certificate");
        return presented;
      }
    }
    throw new Error(`access record of ${p.hostname} kept changing; try again`);
  };

  return {
    async check(p, presented) {
      const pin = await pinOf(p.hostname);
      if (pin === null) {
        if (presented === undefined) return;
        if ((await record(p, presented)) !== presented) refuse(p, presented);
        return;
      }
      if (presented !== pin) refuse(p, presented);
    },
  };
}

/** Clears the pin of `hostname` (an admin action); returns the fingerprint it had, or undefined. */
export async function clearCertPin(
  store: PinStore,
  streams: AgentStreams,
  hostname: string,
  clock: () => number,
): Promise<string | undefined> {
  for (let i = 0; i < CAS_ATTEMPTS; i++) {
    const rec = await store.getAgentAccess(hostname);
    if (rec?.certFingerprint === undefined) return undefined;
    const next: AgentAccessRecord = { ...rec, updatedAtMs: clock() };
    delete next.certFingerprint;
    if ((await store.putAgentAccess(next, rec.version)).ok) {
      streams.changed(hostname);
      return rec.certFingerprint;
    }
  }
  throw new Error(`access record of ${hostname} kept changing; try again`);
}
