/**
 * The checkpointer's thread (started by checkpointer.ts). It opens its own connection to the database and runs a
 * PASSIVE checkpoint every `intervalMs` (the store's default: 10 s): WAL pages are copied into the database file
 * (and both synced) on this thread, not on the thread of the connection that writes (which runs with
 * `wal_autocheckpoint = 0`). PASSIVE never blocks the writer; the writer starts the WAL over from its beginning once
 * a checkpoint has copied all of it. A failed checkpoint is reported to the parent, which then checkpoints itself.
 */
import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";

const port = parentPort;
if (!port) throw new Error("checkpoint-thread.ts runs as a worker thread (see checkpointer.ts)");
const { path, intervalMs } = workerData as { path: string; intervalMs: number };

const db = new Database(path, { fileMustExist: true });
db.pragma("busy_timeout = 1000");
const timer = setInterval(() => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch (err) {
    port.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
}, intervalMs);
port.on("message", (m: unknown) => {
  if (m !== "stop") return;
  clearInterval(timer);
  db.close();
  port.close();
});
