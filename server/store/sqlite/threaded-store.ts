import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Worker } from "node:worker_threads";
import { startModuleWorker } from "../../../common/threads/module-worker.js";
import { prepareWrite } from "../prepared-write.js";
import type { BatchWrite, BatchWriteResult, Store } from "../store.js";
import { rebuildError, type StoreThreadCall, type StoreThreadData, type StoreThreadReply } from "./thread-protocol.js";

/**
 * Every Store method but writeBatch and close, run as is on the store's thread. The type below fails to compile
 * when Store gains a method this list lacks.
 */
const FORWARDED = [
  "listEnvelopes",
  "latest",
  "countEnvelopes",
  "readWal",
  "ensureSeries",
  "listSeries",
  "getMeta",
  "commitFlush",
  "readChunks",
  "readRollups",
  "applyRetention",
  "sizeBytes",
  "upsertAgent",
  "touchAgent",
  "touchAgents",
  "recordAgentStatuses",
  "agentTimeline",
  "latestAgentStatuses",
  "removeAgent",
  "getAgent",
  "listAgents",
  "listAgentContacts",
  "enqueueCommand",
  "listCommands",
  "claimNextCommand",
  "requeueCommand",
  "finishCommand",
  "getCommand",
  "countPendingCommands",
  "expireCommands",
  "createAdminToken",
  "getAdminToken",
  "listAdminTokens",
  "countAdminTokens",
  "revokeAdminToken",
  "touchAdminToken",
  "createEnrollmentToken",
  "getEnrollmentToken",
  "listEnrollmentTokens",
  "revokeEnrollmentToken",
  "getAgentAccess",
  "findAgentAccessByKeyId",
  "findAgentAccessByEnrollmentId",
  "listAgentAccess",
  "putAgentAccess",
  "deleteAgentAccess",
] as const satisfies readonly (keyof Store)[];
type Unlisted = Exclude<keyof Store, (typeof FORWARDED)[number] | "writeBatch" | "close" | "subscribe">;
const everyMethodListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyMethodListed;

/** The store's worker thread, on the Store openThreadedSqliteStore returns (for tests that stop it). */
export const STORE_THREAD = Symbol("SQLite store thread");

export interface ThreadedSqliteStoreOptions {
  /** As SqliteStoreOptions.groupCommitMs, on the thread. */
  groupCommitMs?: number;
  checkpointIntervalMs?: number;
  /** Longest wait for the thread to open the store (it migrates the schema first). */
  startTimeoutMs?: number;
}

/**
 * Opens the SQLite store (sqlite-store.ts) on a thread of its own and returns a Store whose methods post to it.
 *
 * Why: under `bench:ingest` the store's SQLite work (batch commits, flush slices, series ids) was about a fifth of
 * the server's main thread, which is what limits the ingest rate; on the thread it runs beside the event loop, on
 * the machine's other core (docs/benchmarks.md, "Storage", fifth session).
 *
 * What stays the same: one connection writes, in the order the calls were made, with the store's own group commit,
 * durability (a write resolves once it is on disk) and checkpointer. The main thread encodes each batch
 * (prepareWrite, so the request's decoded messages are not kept) and posts it at once: its MetricBatch payload and a
 * few columns, structured-cloned. (Posting the batches of a whole event-loop turn as one message made the two
 * threads take turns: a commit's hundreds of acknowledgements released hundreds of streams' next batches in one
 * turn, which the thread then waited for.) Results and errors come back the same way (the store's domain errors as
 * their own class). If the thread dies, every waiting and later call
 * fails with that reason: nothing is acknowledged that was not committed.
 */
export async function openThreadedSqliteStore(path: string, opts: ThreadedSqliteStoreOptions = {}): Promise<Store> {
  mkdirSync(dirname(path), { recursive: true });
  const data: StoreThreadData = { path, groupCommitMs: opts.groupCommitMs ?? 0 };
  if (opts.checkpointIntervalMs !== undefined) data.checkpointIntervalMs = opts.checkpointIntervalMs;
  const thread = new StoreThread(startModuleWorker(new URL("./store-thread.js", import.meta.url), { workerData: data }));
  await thread.started(opts.startTimeoutMs ?? 60_000);
  const store: Partial<Record<keyof Store, unknown>> = {
    writeBatch: (batch: BatchWrite) => thread.call("writePrepared", [prepareWrite(batch)]) as Promise<BatchWriteResult>,
    close: () => thread.close(),
  };
  for (const method of FORWARDED) store[method] = (...args: unknown[]) => thread.call(method, args);
  Object.defineProperty(store, STORE_THREAD, { value: thread.worker });
  return store as Store;
}

interface Waiter {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** The main thread's side of the store thread: calls by id, answered in any order. */
class StoreThread {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private failed: Error | undefined;
  private closing: Promise<void> | undefined;
  private ready: Waiter | undefined;
  private readonly exited: Promise<void>;

  constructor(readonly worker: Worker) {
    worker.unref(); // referenced only while calls wait (see track)
    worker.on("message", (m: StoreThreadReply) => this.onReply(m));
    worker.on("error", (err) => this.fail(new Error(`SQLite store thread failed: ${err.message}`, { cause: err })));
    this.exited = new Promise((resolve) =>
      worker.once("exit", (code) => {
        this.fail(new Error(`SQLite store thread exited (code ${code})`));
        resolve();
      }),
    );
  }

  /** Resolves once the thread has opened the store; rejects with its error (e.g. a newer schema). */
  started(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`SQLite store thread did not open the store within ${timeoutMs} ms`));
        void this.worker.terminate();
      }, timeoutMs);
      this.worker.ref();
      this.ready = {
        resolve: () => {
          clearTimeout(timer);
          this.worker.unref();
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          void this.worker.terminate();
          reject(err);
        },
      };
    });
  }

  call(method: string, args: unknown[]): Promise<unknown> {
    if (this.closing) return Promise.reject(new Error("store is closed"));
    if (this.failed) return Promise.reject(this.failed);
    return this.post(method, args);
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        if (!this.failed) await this.post("close", []);
      } finally {
        // The thread ends by itself once its store is closed; terminate it if it does not.
        const timer = setTimeout(() => void this.worker.terminate(), 5_000);
        await this.exited;
        clearTimeout(timer);
      }
    })();
    return this.closing;
  }

  private post(method: string, args: unknown[]): Promise<unknown> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(id, { resolve, reject });
      try {
        this.worker.postMessage({ id, method, args } satisfies StoreThreadCall);
      } catch (err) {
        this.settle(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  private onReply(m: StoreThreadReply): void {
    if (m.id === 0) {
      const ready = this.ready;
      this.ready = undefined;
      if ("error" in m) ready?.reject(rebuildError(m.error));
      else ready?.resolve(undefined);
      return;
    }
    const w = this.settle(m.id);
    if (!w) return;
    if ("error" in m) w.reject(rebuildError(m.error));
    else w.resolve(m.value);
  }

  private settle(id: number): Waiter | undefined {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    if (this.waiting.size === 0) this.worker.unref();
    return w;
  }

  /** The thread is gone: every waiting and later call fails with `err`. */
  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    this.ready?.reject(err);
    this.ready = undefined;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}
