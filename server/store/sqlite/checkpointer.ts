import type { Worker } from "node:worker_threads";
import { startModuleWorker } from "../../../common/threads/module-worker.js";

/** A worker thread that checkpoints one SQLite database's WAL (checkpoint-thread.ts). */
export class Checkpointer {
  private readonly worker: Worker;
  private stopping = false;

  /**
   * `onFailure` runs once if the worker stops or errs unexpectedly (the caller then checkpoints on its own
   * connection again, so the WAL stays bounded).
   */
  constructor(path: string, intervalMs: number, onFailure: (err: Error) => void) {
    this.worker = startModuleWorker(new URL("./checkpoint-thread.js", import.meta.url), { workerData: { path, intervalMs } });
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
