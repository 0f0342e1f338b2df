/**
 * Agent presence: each agent's last contact, its online / stale / offline status and the timeline of its changes.
 *
 * Decisions (see README "Security", "Agent status"):
 * - Contact is any request the agent makes, over either transport: Register, every StreamMetrics batch, PushMetrics,
 *   opening CommandPoll, CommandResult, and the legacy /api/v1 routes. An open but idle CommandPoll stream is not
 *   contact: a dead peer's stream can stay open for minutes, and only batches show that the collectors run. The agent
 *   sends a batch every report interval, which is its heartbeat.
 * - Contact is recorded in memory; the last contact (with the last collector status reported) is written to the
 *   store at most every `persistEveryMs` per agent, many agents in one transaction, not once per batch.
 * - Status: online until `staleAfter` report intervals pass without contact, then stale, then offline after
 *   `offlineAfter` intervals (the interval the agent reported at Register / Enroll; `defaultIntervalMs` when unknown).
 *   A background job evaluates at most `maxPerTick` agents per `evaluateEveryMs`. A degrade is stored at the moment
 *   the threshold passed (last contact + threshold), not when the job noticed it; the return to online at the contact.
 * - Every change is appended to the store's timeline. Several servers may share a database: each evaluates the
 *   agents it knows (those in the store, reloaded every `syncEveryMs`, and those that contact it); before it stores a
 *   degrade it reads the agent's persisted last contact, which any server may have written, and the store keeps a
 *   change only if it differs from the latest stored one and is not older. So an agent connected to one server is not
 *   marked stale by another, and a change seen by two servers is stored once. Limit: another server's contact becomes
 *   visible here only once that server persisted it (within `persistEveryMs`), so thresholds must be longer than that.
 * - Silence counts from the server's start at the earliest: after a restart, agents are not marked stale or offline
 *   for the time the server itself was down.
 * - Only registered agents (with an `agents` row) have a status; enrolled agents that never registered have none.
 * - Optional cleanup: an agent offline for longer than `cleanupAfterMs` is handed to the cleanup callback (removal,
 *   data kept), at most 100 per tick.
 */
import type { Logger } from "../../common/logger.js";
import type { CollectorStatus } from "../../gen/spectra/v1/metrics_pb.js";
import type { AgentContact, AgentStatusChange, AgentStatusName, Store } from "../store/store.js";

/** Thresholds and timings of the presence tracker. */
export interface PresenceOptions {
  /** Report intervals without contact before an agent is stale. */
  staleAfter: number;
  /** Report intervals without contact before an agent is offline (more than staleAfter). */
  offlineAfter: number;
  /** The report interval of an agent that did not report one (legacy agents). */
  defaultIntervalMs: number;
  /** How often the background job runs. */
  evaluateEveryMs: number;
  /** Last contact is written to the store at most this often per agent. */
  persistEveryMs: number;
  /** How often the known agents and their stored status are reloaded (other servers' changes). */
  syncEveryMs: number;
  /** Agents looked at per run of the job (the rest wait for the next runs). */
  maxPerTick: number;
  /** Agents offline longer than this are removed (data kept); undefined: never. */
  cleanupAfterMs: number | undefined;
}

/** Status changes written per transaction. */
const STATUS_WRITE_BATCH = 500;
/** Agents' last contacts written per transaction (see persist). */
const PERSIST_BATCH = 100;

export const DEFAULT_PRESENCE_OPTIONS: PresenceOptions = {
  staleAfter: 3,
  offlineAfter: 12,
  defaultIntervalMs: 5_000,
  evaluateEveryMs: 1_000,
  persistEveryMs: 5_000,
  syncEveryMs: 30_000,
  maxPerTick: 10_000,
  cleanupAfterMs: undefined,
};

/** What the tracker knows of one agent right now. */
export interface PresenceView {
  status?: AgentStatusName;
  sinceMs?: number;
  /** The newest contact seen (here, or persisted by any server); -Infinity when none. */
  lastContactMs: number;
  /** The last collector status the agent reported here, if any. */
  collectorStatus?: CollectorStatus[];
}

/** The presence tracker. */
export interface Presence {
  /** Records contact from an agent now (and the collector status it reported, when given). */
  contact(hostname: string, collectorStatus?: CollectorStatus[]): void;
  /** The agent registered (it has an `agents` row now): contact, and its report interval when it gave one. */
  registered(hostname: string, reportIntervalMs?: number): void;
  view(hostname: string): PresenceView | undefined;
  /** Drops everything about a host (it was removed), including changes not written yet. */
  forget(hostname: string): void;
  /** The status thresholds of an agent with this report interval (undefined: the default). */
  thresholds(reportIntervalMs?: number): { staleMs: number; offlineMs: number };
  /** Called for agents offline longer than cleanupAfterMs; set once by whoever can remove agents. */
  setCleanup(fn: (hostname: string) => Promise<void>): void;
  /** One run of the background job (tests call it directly). */
  tick(): Promise<void>;
  /** Writes pending status changes and every unsaved last contact now. */
  flush(): Promise<void>;
  /** Loads the known agents and their latest stored status, and starts the background job (when `timer`). */
  start(timer?: boolean): Promise<void>;
  /** Stops the job and writes what is pending. */
  stop(): Promise<void>;
}

interface Entry {
  hostname: string;
  lastContactMs: number;
  /** Silence counts from here at the earliest (the server's start, for agents loaded then). */
  notBeforeMs: number;
  persistedContactMs: number;
  persistedAtMs: number;
  collectorStatus?: CollectorStatus[];
  collectorStatusDirty: boolean;
  intervalMs?: number;
  status?: AgentStatusName;
  sinceMs: number;
  /** Whether the host is a registered agent; undefined until looked up. */
  known: boolean | undefined;
  /** When `known` was last confirmed. */
  knownAtMs: number;
}

const RANK: Record<AgentStatusName, number> = { online: 0, stale: 1, offline: 2 };
const rank = (s: AgentStatusName | undefined) => (s === undefined ? -1 : RANK[s]);
/** Lookups, store checks and cleanups per run, each. */
const MAX_LOOKUPS = 1_000;
const MAX_CLEANUPS = 100;

/** Creates the presence tracker. */
export function createPresence(deps: {
  store: Store;
  logger: Logger;
  clock: () => number;
  options?: Partial<PresenceOptions>;
}): Presence {
  const { store, clock } = deps;
  const logger = deps.logger.child({ component: "presence" });
  const opts = { ...DEFAULT_PRESENCE_OPTIONS, ...deps.options };
  const entries = new Map<string, Entry>();
  let pending: AgentStatusChange[] = [];
  let cleanup: ((hostname: string) => Promise<void>) | undefined;
  let startedAt = clock();
  let lastSync = -Infinity;
  let cursor: string[] = [];
  let cursorAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<unknown> = Promise.resolve();
  let ticking = false;

  /** Runs `fn` after the work queued before it (tick, flush and stop never overlap). */
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = busy.then(fn);
    busy = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };

  const thresholds = (intervalMs?: number) => {
    const i = intervalMs ?? opts.defaultIntervalMs;
    return { staleMs: Math.round(i * opts.staleAfter), offlineMs: Math.round(i * opts.offlineAfter) };
  };

  const level = (silentMs: number, t: { staleMs: number; offlineMs: number }): AgentStatusName =>
    silentMs >= t.offlineMs ? "offline" : silentMs >= t.staleMs ? "stale" : "online";

  const newEntry = (hostname: string, lastContactMs: number): Entry => ({
    hostname,
    lastContactMs,
    notBeforeMs: 0,
    persistedContactMs: -Infinity,
    persistedAtMs: -Infinity,
    collectorStatusDirty: false,
    sinceMs: -Infinity,
    known: undefined,
    knownAtMs: -Infinity,
  });

  const setStatus = (e: Entry, status: AgentStatusName, atMs: number) => {
    e.status = status;
    e.sinceMs = atMs;
    pending.push({ hostname: e.hostname, status, atMs });
  };

  /** Online again when a contact newer than the current status is recent enough. */
  const recover = (e: Entry, now: number) => {
    if (e.status === "online" || !Number.isFinite(e.lastContactMs)) return;
    if (e.status !== undefined && e.lastContactMs <= e.sinceMs) return;
    if (level(now - e.lastContactMs, thresholds(e.intervalMs)) !== "online") return;
    setStatus(e, "online", e.lastContactMs);
  };

  /** The worse status silence has earned (undefined: none), counted from the last contact or the server's start. */
  const degradeTo = (e: Entry, now: number): AgentStatusName | undefined => {
    const ref = Math.max(e.lastContactMs, e.notBeforeMs);
    const want = level(now - ref, thresholds(e.intervalMs));
    return RANK[want] > rank(e.status) ? want : undefined;
  };

  const degrade = (e: Entry, now: number) => {
    const want = degradeTo(e, now);
    if (!want) return;
    const ref = Math.max(e.lastContactMs, e.notBeforeMs);
    const t = thresholds(e.intervalMs);
    if (rank(e.status) < RANK.stale) setStatus(e, "stale", ref + t.staleMs);
    if (want === "offline") setStatus(e, "offline", ref + t.offlineMs);
  };

  const due = (e: Entry, now: number) =>
    e.known === true &&
    (e.lastContactMs > e.persistedContactMs || e.collectorStatusDirty) &&
    now - e.persistedAtMs >= opts.persistEveryMs;

  /**
   * Writes the pending status changes in order, up to STATUS_WRITE_BATCH per transaction (a fleet whose agents change
   * status together, after a network split say, is not written one transaction per agent); stops at the first
   * failure (retried at the next run).
   */
  async function writePending(): Promise<void> {
    while (pending.length > 0) {
      const group = pending.slice(0, STATUS_WRITE_BATCH);
      let stored: boolean[];
      try {
        stored = await store.recordAgentStatuses(group);
      } catch (err) {
        logger.warn({ err, agents: group.length, first: group[0]!.hostname }, "cannot store agent status changes; retrying");
        return;
      }
      // changes queued meanwhile are behind the group (pending only grows at its end, or is emptied by forget)
      for (const c of group) if (pending[0] === c) pending.shift();
      group.forEach((c, i) => {
        if (stored[i]) logger.info({ agent: c.hostname, status: c.status, at: new Date(c.atMs).toISOString() }, "agent status changed");
      });
    }
  }

  /**
   * Writes the last contact (and changed collector status) of the given entries, PERSIST_BATCH per transaction with
   * the event loop free between them: one transaction for a fleet's worth (each status encoded as JSON) held the
   * loop for ~300 ms at 1,000 agents. Stops at the first failure (the rest is retried at the next run).
   */
  async function persist(list: Entry[]): Promise<void> {
    for (let i = 0; i < list.length; i += PERSIST_BATCH) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const group = list.slice(i, i + PERSIST_BATCH);
      const now = clock();
      const contacts: AgentContact[] = group.map((e) => ({
        hostname: e.hostname,
        atMs: e.lastContactMs,
        ...(e.collectorStatusDirty && e.collectorStatus ? { collectorStatus: e.collectorStatus } : {}),
      }));
      try {
        await store.touchAgents(contacts);
      } catch (err) {
        logger.warn({ err, agents: list.length - i }, "cannot store agents' last contact; retrying");
        return;
      }
      group.forEach((e, k) => {
        e.persistedContactMs = Math.max(e.persistedContactMs, contacts[k]!.atMs);
        e.persistedAtMs = now;
        if (contacts[k]!.collectorStatus === e.collectorStatus) e.collectorStatusDirty = false;
      });
    }
  }

  /** Loads the registered agents, their report intervals and latest stored status (start, then every syncEveryMs). */
  async function sync(first: boolean): Promise<void> {
    const started = clock();
    const [agents, statuses, access] = await Promise.all([
      store.listAgentContacts(),
      store.latestAgentStatuses(),
      store.listAgentAccess(),
    ]);
    const stored = new Map(statuses.map((s) => [s.hostname, s]));
    const intervals = new Map(access.map((a) => [a.hostname, a.reportIntervalMs]));
    const waiting = new Set(pending.map((p) => p.hostname));
    const seen = new Set<string>();
    const now = clock();
    for (const a of agents) {
      const h = a.hostname;
      seen.add(h);
      let e = entries.get(h);
      if (!e) {
        e = newEntry(h, a.lastSeenMs);
        if (first) e.notBeforeMs = startedAt;
        entries.set(h, e);
      }
      e.known = true;
      e.knownAtMs = started;
      if (a.lastSeenMs > e.lastContactMs) e.lastContactMs = a.lastSeenMs;
      if (a.lastSeenMs > e.persistedContactMs) e.persistedContactMs = a.lastSeenMs;
      const interval = intervals.get(h);
      if (interval !== undefined) e.intervalMs = interval;
      const s = stored.get(h);
      // Another server's newer change (or the state before a restart) is taken over, unless ours is still unwritten.
      if (s && !waiting.has(h) && (e.status === undefined || s.atMs > e.sinceMs)) {
        e.status = s.status;
        e.sinceMs = s.atMs;
      }
      recover(e, now);
    }
    // Agents removed meanwhile (here or by another server) are forgotten.
    for (const e of [...entries.values()]) {
      if (e.known === true && !seen.has(e.hostname) && e.knownAtMs < started) entries.delete(e.hostname);
    }
    lastSync = started;
  }

  /** One run of the job; returns the agents due for cleanup (removed after the run, outside the lock). */
  async function runTick(): Promise<string[]> {
    const now = clock();
    if (now - lastSync >= opts.syncEveryMs) {
      try {
        await sync(false);
      } catch (err) {
        logger.warn({ err }, "cannot reload agents for status evaluation");
      }
    }
    if (cursorAt >= cursor.length) {
      cursor = [...entries.keys()];
      cursorAt = 0;
    }
    const lookups: Entry[] = [];
    const checks: Entry[] = [];
    const toPersist: Entry[] = [];
    const end = Math.min(cursor.length, cursorAt + opts.maxPerTick);
    for (; cursorAt < end; cursorAt++) {
      const e = entries.get(cursor[cursorAt]!);
      if (!e) continue;
      if (e.known === false) {
        // Contact from a host that is not a registered agent: kept only while it keeps calling.
        if (now - e.lastContactMs > thresholds(e.intervalMs).offlineMs) entries.delete(e.hostname);
        continue;
      }
      if (e.known === undefined) {
        if (lookups.length < MAX_LOOKUPS) lookups.push(e);
        continue;
      }
      if (due(e, now)) toPersist.push(e);
      const cleanupDue =
        cleanup !== undefined && opts.cleanupAfterMs !== undefined && e.status === "offline" && now - e.sinceMs >= opts.cleanupAfterMs;
      if ((degradeTo(e, now) !== undefined || cleanupDue) && checks.length < MAX_LOOKUPS) checks.push(e);
    }

    for (const e of lookups) {
      try {
        const rec = await store.getAgent(e.hostname);
        if (entries.get(e.hostname) !== e) continue;
        if (!rec) {
          e.known = false;
          continue;
        }
        const acc = await store.getAgentAccess(e.hostname);
        if (acc?.reportIntervalMs !== undefined && e.intervalMs === undefined) e.intervalMs = acc.reportIntervalMs;
        if (rec.lastSeenMs > e.lastContactMs) e.lastContactMs = rec.lastSeenMs;
        e.persistedContactMs = Math.max(e.persistedContactMs, rec.lastSeenMs);
        e.known = true;
        e.knownAtMs = clock();
        recover(e, clock());
      } catch (err) {
        logger.warn({ err, agent: e.hostname }, "cannot look an agent up");
      }
    }

    const cleanups: string[] = [];
    for (const e of checks) {
      // Any server may have seen the agent since: its persisted last contact decides.
      let rec;
      try {
        rec = await store.getAgent(e.hostname);
      } catch (err) {
        logger.warn({ err, agent: e.hostname }, "cannot check an agent's last contact");
        continue;
      }
      if (entries.get(e.hostname) !== e) continue;
      if (!rec) {
        entries.delete(e.hostname); // removed meanwhile
        continue;
      }
      if (rec.lastSeenMs > e.lastContactMs) e.lastContactMs = rec.lastSeenMs;
      const t = clock();
      recover(e, t);
      degrade(e, t);
      if (
        opts.cleanupAfterMs !== undefined &&
        e.status === "offline" &&
        t - e.sinceMs >= opts.cleanupAfterMs &&
        cleanups.length < MAX_CLEANUPS
      ) {
        cleanups.push(e.hostname);
      }
    }

    await writePending();
    await persist(toPersist);
    return cleanups;
  }

  /** Removes agents offline too long (the removal flushes and forgets through this tracker: not under its lock). */
  async function runCleanups(hosts: string[]): Promise<void> {
    for (const h of hosts) {
      if (!cleanup) break;
      logger.info({ agent: h, cleanupAfterMs: opts.cleanupAfterMs }, "removing an agent offline longer than --agent-cleanup-after");
      try {
        await cleanup(h);
      } catch (err) {
        logger.warn({ err, agent: h }, "automatic cleanup of an offline agent failed");
      }
      entries.delete(h);
    }
  }

  const presence: Presence = {
    contact(hostname, collectorStatus) {
      const now = clock();
      let e = entries.get(hostname);
      if (!e) {
        e = newEntry(hostname, now);
        entries.set(hostname, e);
      }
      if (now > e.lastContactMs) e.lastContactMs = now;
      if (collectorStatus && collectorStatus.length > 0) {
        e.collectorStatus = collectorStatus;
        e.collectorStatusDirty = true;
      }
      if (e.known === true && e.status !== "online") setStatus(e, "online", now);
    },

    registered(hostname, reportIntervalMs) {
      let e = entries.get(hostname);
      if (!e) {
        e = newEntry(hostname, clock());
        entries.set(hostname, e);
      }
      e.known = true;
      e.knownAtMs = clock();
      if (reportIntervalMs !== undefined) e.intervalMs = reportIntervalMs;
      presence.contact(hostname);
    },

    view(hostname) {
      const e = entries.get(hostname);
      if (!e || e.known === false) return undefined;
      return {
        ...(e.status !== undefined ? { status: e.status, sinceMs: e.sinceMs } : {}),
        lastContactMs: e.lastContactMs,
        ...(e.collectorStatus ? { collectorStatus: e.collectorStatus } : {}),
      };
    },

    forget(hostname) {
      entries.delete(hostname);
      pending = pending.filter((p) => p.hostname !== hostname);
    },

    thresholds,

    setCleanup(fn) {
      cleanup = fn;
    },

    async tick() {
      // A run still going when the timer fires again is not queued twice.
      if (ticking) return;
      ticking = true;
      try {
        await runCleanups(await exclusive(runTick));
      } finally {
        ticking = false;
      }
    },

    flush() {
      return exclusive(async () => {
        await writePending();
        await persist([...entries.values()].filter((e) => e.known === true && (e.lastContactMs > e.persistedContactMs || e.collectorStatusDirty)));
      });
    },

    async start(withTimer = true) {
      startedAt = clock();
      await exclusive(() => sync(true));
      if (!withTimer) return;
      timer = setInterval(() => {
        presence.tick().catch((err: unknown) => logger.error({ err }, "agent status evaluation failed"));
      }, opts.evaluateEveryMs);
      timer.unref();
    },

    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await presence.flush().catch((err: unknown) => logger.warn({ err }, "cannot store agents' last contact at shutdown"));
    },
  };
  return presence;
}
