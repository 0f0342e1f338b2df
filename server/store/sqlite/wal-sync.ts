import { closeSync, fsync as nodeFsync, openSync } from "node:fs";

/** How the WAL file is flushed to disk: `fs.fsync` (libuv's thread pool), injectable for tests. */
export type FsyncFn = (fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => void;

/**
 * Makes SQLite commits durable off the event loop.
 *
 * The store's connection runs with `synchronous = NORMAL`, so a commit writes its WAL frames without waiting for the
 * disk; this class then fsyncs the WAL file from libuv's thread pool and resolves `barrier()` only when every commit
 * made before the call is on disk. Callers (the store's write methods) resolve their own promises after the barrier,
 * so a write reported done has the durability of `synchronous = FULL`, without the event loop blocking in the fsync
 * (with the checkpointer: SQLite's commit went from 19 % to 4 % of the server's main thread under `bench:ingest`, and
 * the ingest rate up 1.18-1.36x; docs/benchmarks.md, "SQLite commits off the event loop").
 *
 * Sound because SQLite keeps writing the same WAL file (it is reset and reused in place, never replaced while the
 * connection is open), `fsync` flushes every dirty page of the file whoever wrote it, and SQLite itself syncs the
 * WAL before each checkpoint and the database after it under NORMAL. Concurrent barriers share one fsync: a barrier
 * asked while one runs waits for the next, which starts after the running one ends.
 *
 * An fsync error is final: the kernel may have dropped the pages it could not write, so a later successful fsync
 * would prove nothing. Every waiting and later barrier rejects with it.
 */
export class WalSync {
  private running = false;
  private current: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private next: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private failed: unknown;
  private closed = false;

  private constructor(
    private readonly fd: number,
    private readonly fsync: FsyncFn,
  ) {}

  /** Opens `walPath` (which must exist: SQLite creates it when the connection enters WAL mode). */
  static open(walPath: string, fsync: FsyncFn = nodeFsync): WalSync {
    return new WalSync(openSync(walPath, "r"), fsync);
  }

  /** Resolves once every commit made before this call is on disk. */
  barrier(): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.closed) return Promise.reject(new Error("store is closed"));
    return new Promise((resolve, reject) => {
      this.next.push({ resolve, reject });
      if (!this.running) this.start();
    });
  }

  private start(): void {
    this.running = true;
    this.current = this.next;
    this.next = [];
    this.fsync(this.fd, (err) => {
      const done = this.current;
      this.current = [];
      this.running = false;
      if (err) {
        this.failed = new Error(`fsync of the SQLite WAL failed: ${err.message}`, { cause: err });
        for (const w of [...done, ...this.next]) w.reject(this.failed);
        this.next = [];
        return;
      }
      for (const w of done) w.resolve();
      if (this.next.length > 0) this.start();
    });
  }

  /** Waits for the barriers asked so far, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.running || this.next.length > 0) await this.barrier().catch(() => undefined);
    this.closed = true;
    closeSync(this.fd);
  }
}
