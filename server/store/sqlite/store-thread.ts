/**
 * The SQLite store's thread (started by threaded-store.ts): it opens the store on its own connection and runs every
 * call the server's main thread posts, in the order posted, answering each with its result or error. Only this
 * thread touches the database (besides the checkpointer the store starts), so SQLite's work never runs on the
 * server's event loop.
 */
import { parentPort, workerData } from "node:worker_threads";
import { openSqliteStore, type SqliteStore, type SqliteStoreOptions } from "./sqlite-store.js";
import { describeError, type StoreThreadCall, type StoreThreadData, type StoreThreadReply } from "./thread-protocol.js";

const port = parentPort;
if (!port) throw new Error("store-thread.ts runs as a worker thread (see threaded-store.ts)");
const data = workerData as StoreThreadData;

let store: SqliteStore | undefined;
try {
  const options: SqliteStoreOptions = { groupCommitMs: data.groupCommitMs };
  if (data.checkpointIntervalMs !== undefined) options.checkpointIntervalMs = data.checkpointIntervalMs;
  store = openSqliteStore(data.path, options);
  port.postMessage({ id: 0, value: "ready" } satisfies StoreThreadReply);
} catch (err) {
  port.postMessage({ id: 0, error: describeError(err) } satisfies StoreThreadReply);
  port.close();
}

/** Runs one call on the store (writeBatch arrives as writePrepared: the batch encoded by the caller). */
function run(s: SqliteStore, call: StoreThreadCall): Promise<unknown> {
  const fn = (s as unknown as Record<string, unknown>)[call.method];
  if (typeof fn !== "function") return Promise.reject(new Error(`no store method ${call.method}`));
  return (fn as (...a: unknown[]) => Promise<unknown>).apply(s, call.args);
}

if (store) {
  const s = store;
  port.on("message", (call: StoreThreadCall) => {
    let result: Promise<unknown>;
    try {
      result = run(s, call);
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (value) => {
        try {
          port.postMessage({ id: call.id, value } satisfies StoreThreadReply);
        } catch (err) {
          port.postMessage({ id: call.id, error: describeError(err) } satisfies StoreThreadReply); // not cloneable
        }
        if (call.method === "close") port.close(); // the thread then ends
      },
      (err: unknown) => port.postMessage({ id: call.id, error: describeError(err) } satisfies StoreThreadReply),
    );
  });
}
