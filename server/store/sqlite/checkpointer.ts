import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/**
 * The worker's code. It opens its own connection to the database and runs a PASSIVE checkpoint every `intervalMs`
 * (the store's default: 10 s): WAL pages are copied into the database file (and both synced) on this thread, not
 * on the event loop of the connection that writes (which runs with `wal_autocheckpoint = 0`). PASSIVE never blocks the writer; the writer
 * starts the WAL over from its beginning once a checkpoint has copied all of it. A string, not a file, so that the
 * same code runs from `dist/` and under the test runner (which cannot start a worker from a `.ts` file).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma("busy_timeout = 1000");
const checkpoint = () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on("message", (m) => {
  if (m === "stop") { clearInterval(timer); db.close(); parentPort.close(); }
});
`;

/** A worker thread that checkpoints one SQLite database's WAL (see WORKER_SOURCE). */
export class Checkpointer {
  private readonly worker: Worker;
  private stopping = false;

  /**
   * `onFailure` runs once if the worker stops or errs unexpectedly (the caller then checkpoints on its own
   * connection again, so the WAL stays bounded).
   */
  constructor(path: string, intervalMs: number, onFailure: (err: Error) => void) {
    const driver = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, intervalMs, driver } });
    this.worker.unref();
    let failed = false;
    const fail = (err: Error): void => {
      if (failed || this.stopping) return;
      failed = true;
      onFailure(err);
    };
    this.worker.on("message", (m: { error: string }) => fail(new Error(`SQLite checkpoint failed: ${m.error}`)));
    this.worker.on("error", fail);
    this.worker.on("exit", (code) => fail(new Error(`SQLite checkpointer exited (code ${code})`)));
  }

  /** Stops the worker and closes its connection. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.worker.ref(); // an unref'd worker would let the process exit while its caller still awaits this
    const exited = new Promise<void>((resolve) => this.worker.once("exit", () => resolve()));
    this.worker.postMessage("stop");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2_000).unref())]);
    await this.worker.terminate();
  }
}
