import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { randomUUID } from "node:crypto";
import type { Logger } from "../../common/logger.js";
import {
  CommandInfoSchema,
  CommandSchema,
  CommandState,
  type CommandInfo,
  type CommandOutcome,
} from "../../gen/spectra/v1/diagnostics_pb.js";
import { AgentNotRegisteredError, InvalidInputError, NotFoundError } from "../errors.js";
import type { CommandRecord, Store } from "../store/store.js";
import { normalizeParams, type CommandParams } from "./command-params.js";

/** Settings of the command queue. */
export interface CommandQueueOptions {
  /** Most queued (not yet delivered) commands per host; the legacy server allowed 10. */
  maxQueued: number;
  /** Commands not finished this long after they were queued become expired. */
  ttlMs: number;
  /** How often the expiry job runs. */
  expireEveryMs: number;
}

/** The one command queue shared by the Connect API and the legacy REST routes. */
export interface CommandQueue {
  /** Validates, fills defaults and queues a command for a registered host. Wakes that host's waiting pollers. */
  enqueue(hostname: string, params: CommandParams, requestedBy: string): Promise<CommandRecord>;
  /** The audit trail: commands newest first. */
  list(q: { hostname?: string; limit: number }): Promise<CommandRecord[]>;
  /**
   * Waits until a command for `hostname` is available and claims it (state delivered). Resolves undefined when
   * `timeoutMs` passes or `signal` aborts first. A claimed command goes to exactly one poller.
   */
  next(hostname: string, opts: { signal?: AbortSignal; timeoutMs?: number }): Promise<CommandRecord | undefined>;
  /** Returns a claimed command to the queue when it could not be handed over (the poller left). */
  release(rec: CommandRecord): Promise<void>;
  /** Stores an agent's outcome; the command must belong to that agent. */
  complete(hostname: string, outcome: CommandOutcome): Promise<CommandRecord>;
  get(id: string): Promise<CommandRecord>;
  /** Yields the command now and after every change; ends once it is completed, failed or expired. */
  watch(id: string, signal: AbortSignal): AsyncGenerator<CommandRecord>;
  /** Expires overdue commands now; returns how many. */
  expireOverdue(): Promise<number>;
  /** These commands changed in the store behind the queue's back (an agent was removed): their watchers look again. */
  changed(ids: readonly string[]): void;
  /** Starts the periodic expiry job. */
  start(): void;
  /** Stops the expiry job and releases every waiter. */
  stop(): void;
}

const FINAL = new Set([CommandState.COMPLETED, CommandState.FAILED, CommandState.EXPIRED]);

/** Whether a command reached a final state. */
export function isFinal(state: CommandState): boolean {
  return FINAL.has(state);
}

/** Converts a stored command into the API's CommandInfo. */
export function toCommandInfo(rec: CommandRecord): CommandInfo {
  return create(CommandInfoSchema, {
    command: rec.command,
    hostname: rec.hostname,
    state: rec.state,
    deliveredAt: rec.deliveredAtMs === undefined ? undefined : timestampFromMs(rec.deliveredAtMs),
    finishedAt: rec.finishedAtMs === undefined ? undefined : timestampFromMs(rec.finishedAtMs),
    outcome: rec.outcome,
    requestedBy: rec.requestedBy,
  });
}

/**
 * Creates the command queue. Waiting is in memory; the queue itself lives in the store and survives restarts.
 * When the store reports changes made by other server processes on the same database (Store.subscribe), those wake
 * this process's pollers and watchers too, so a command queued anywhere reaches the agent wherever it is connected.
 */
export function createCommandQueue(deps: {
  store: Store;
  logger: Logger;
  clock: () => number;
  options: CommandQueueOptions;
}): CommandQueue {
  const { store, logger, clock, options } = deps;
  // Wake-ups per host (pollers) and per command (watchers).
  const hostWaiters = new Map<string, Set<() => void>>();
  const commandWaiters = new Map<string, Set<() => void>>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const wake = (map: Map<string, Set<() => void>>, key: string) => {
    const set = map.get(key);
    if (set) for (const fn of [...set]) fn();
  };
  const wakeAll = (map: Map<string, Set<() => void>>) => {
    for (const key of [...map.keys()]) wake(map, key);
  };
  // Another process queued or changed a command (key null: notifications may have been missed, so every waiter
  // looks again). A wake-up is only a hint: pollers claim through the store, which hands a command out once.
  const storeSubscriptions: (() => void)[] = [];
  if (store.subscribe) {
    storeSubscriptions.push(
      store.subscribe("command_queued", (host) => (host === null ? wakeAll(hostWaiters) : wake(hostWaiters, host))),
      store.subscribe("command_updated", (id) => (id === null ? wakeAll(commandWaiters) : wake(commandWaiters, id))),
    );
  }
  const subscribe = (map: Map<string, Set<() => void>>, key: string, fn: () => void) => {
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) map.delete(key);
    };
  };

  /** Resolves when `key` is woken, the timeout passes or the signal aborts; subscribe happens synchronously. */
  const waitFor = (map: Map<string, Set<() => void>>, key: string, signal: AbortSignal | undefined, ms: number) => {
    let done!: () => void;
    const woken = new Promise<void>((r) => (done = r));
    const unsubscribe = subscribe(map, key, () => done());
    const t = Number.isFinite(ms) ? setTimeout(() => done(), Math.max(0, ms)) : undefined;
    const onAbort = () => done();
    signal?.addEventListener("abort", onAbort, { once: true });
    return {
      woken,
      dispose() {
        unsubscribe();
        if (t) clearTimeout(t);
        signal?.removeEventListener("abort", onAbort);
      },
    };
  };

  const queue: CommandQueue = {
    async enqueue(hostname, params, requestedBy) {
      const { type, params: normalized } = normalizeParams(params);
      if (!(await store.getAgent(hostname))) throw new AgentNotRegisteredError(hostname);
      const now = clock();
      const command = create(CommandSchema, {
        id: randomUUID(),
        type,
        params: normalized,
        createdAt: timestampFromMs(now),
      });
      await store.enqueueCommand({ command, hostname, createdAtMs: now, requestedBy }, options.maxQueued);
      logger.info({ agent: hostname, command: command.id, type: normalized.case, by: requestedBy }, "command queued");
      wake(hostWaiters, hostname);
      return { command, hostname, state: CommandState.QUEUED, createdAtMs: now, requestedBy };
    },

    async list(q) {
      return store.listCommands(q);
    },

    async next(hostname, { signal, timeoutMs = Infinity }) {
      const deadline = clock() + timeoutMs;
      while (!stopped && !signal?.aborted) {
        // Subscribe before looking, so a command queued in between is not missed.
        const w = waitFor(hostWaiters, hostname, signal, deadline - clock());
        try {
          const rec = await store.claimNextCommand(hostname, clock());
          if (rec) {
            wake(commandWaiters, rec.command.id);
            return rec;
          }
          if (clock() >= deadline) return undefined;
          await w.woken;
        } finally {
          w.dispose();
        }
        if (clock() >= deadline) return undefined;
      }
      return undefined;
    },

    async release(rec) {
      if (await store.requeueCommand(rec.command.id, rec.hostname)) {
        logger.debug({ agent: rec.hostname, command: rec.command.id }, "command returned to the queue");
        wake(hostWaiters, rec.hostname);
        wake(commandWaiters, rec.command.id);
      }
    },

    async complete(hostname, outcome) {
      if (outcome.commandId === "") throw new InvalidInputError("missing command id");
      const state = outcome.error !== "" ? CommandState.FAILED : CommandState.COMPLETED;
      const rec = await store.finishCommand(outcome.commandId, hostname, state, outcome, clock());
      if (!rec) throw new NotFoundError(`command ${outcome.commandId} is unknown for ${hostname}`);
      logger.info({ agent: hostname, command: outcome.commandId, state: CommandState[rec.state] }, "command finished");
      wake(commandWaiters, outcome.commandId);
      return rec;
    },

    async get(id) {
      const rec = await store.getCommand(id);
      if (!rec) throw new NotFoundError(`command ${id} not found`);
      return rec;
    },

    async *watch(id, signal) {
      let last: CommandState | undefined;
      while (!signal.aborted) {
        const w = waitFor(commandWaiters, id, signal, Infinity);
        try {
          const rec = await queue.get(id);
          if (rec.state !== last) {
            last = rec.state;
            yield rec;
          }
          if (isFinal(rec.state)) return;
          await w.woken;
        } finally {
          w.dispose();
        }
      }
    },

    async expireOverdue() {
      const ids = await store.expireCommands(clock() - options.ttlMs, clock());
      for (const id of ids) wake(commandWaiters, id);
      if (ids.length > 0) logger.info({ count: ids.length }, "commands expired");
      return ids.length;
    },

    changed(ids) {
      for (const id of ids) wake(commandWaiters, id);
    },

    start() {
      timer = setInterval(() => {
        queue.expireOverdue().catch((err: unknown) => logger.error({ err }, "command expiry failed"));
      }, options.expireEveryMs);
      timer.unref();
    },

    stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      for (const off of storeSubscriptions.splice(0)) off();
      wakeAll(hostWaiters);
      wakeAll(commandWaiters);
    },
  };
  return queue;
}
