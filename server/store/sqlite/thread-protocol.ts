/** Messages between the server's main thread and the SQLite store's thread (threaded-store.ts, store-thread.ts). */
import { QueueFullError } from "../../errors.js";

/** Domain errors the store throws, rebuilt as their class on the calling side (the services test with instanceof). */
const DOMAIN_ERRORS: Record<string, { prototype: Error }> = { QueueFullError };

/** What the thread is started with. */
export interface StoreThreadData {
  path: string;
  groupCommitMs: number;
  checkpointIntervalMs?: number;
}

/** A store method to run, with its arguments (structured-cloned). */
export interface StoreThreadCall {
  id: number;
  method: string;
  args: unknown[];
}

/** The answer to call `id` (0: the thread's start, value "ready" once the store is open). */
export type StoreThreadReply = { id: number; value: unknown } | { id: number; error: ThreadError };

/** An error as it crosses threads: the message, name and SQLite code are kept. */
export interface ThreadError {
  message: string;
  name: string;
  code?: string;
}

export function describeError(err: unknown): ThreadError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { message: err.message, name: err.name, ...(typeof code === "string" ? { code } : {}) };
  }
  return { message: String(err), name: "Error" };
}

export function rebuildError(e: ThreadError): Error {
  const err = new Error(e.message);
  const cls = DOMAIN_ERRORS[e.name];
  if (cls) Object.setPrototypeOf(err, cls.prototype);
  err.name = e.name;
  if (e.code !== undefined) Object.assign(err, { code: e.code });
  return err;
}
