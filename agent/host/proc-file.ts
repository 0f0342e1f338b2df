import fs from "node:fs";

/**
 * A procfs/sysfs file kept open and re-read from offset 0 into a reused buffer.
 *
 * Why synchronous: these files are generated in memory by the kernel when read, so a `pread` takes a few µs,
 * while `fs.promises.readFile` costs ~150-200 µs of thread-pool round trips (open, fstat, read, close) per call,
 * measured on the project's VM. Keeping the descriptor saves the open/close, and seq_file regenerates the content
 * whenever a read starts at offset 0. Do NOT use this for anything that can block: statfs, network filesystems,
 * sysfs attributes that take locks (`/sys/class/net/<if>/speed` takes RTNL) stay asynchronous.
 */
export class ProcFile {
  private fd: number | undefined;
  private buf: Buffer;

  /** `path` is opened lazily on the first read. */
  constructor(
    readonly path: string,
    initialBytes = 4096,
  ) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** The whole file as latin1 text (procfs is ASCII). Throws `Error("read <path>", { cause })`. */
  read(): string {
    try {
      return this.readOnce();
    } catch (first) {
      // A stale descriptor (file re-created, e.g. a test rewriting it, or ENODEV): reopen once.
      this.close();
      try {
        return this.readOnce();
      } catch (cause) {
        this.close();
        throw new Error(`read ${this.path}`, { cause: cause ?? first });
      }
    }
  }

  private readOnce(): string {
    if (this.fd === undefined) this.fd = fs.openSync(this.path, "r");
    for (;;) {
      const n = fs.readSync(this.fd, this.buf, 0, this.buf.length, 0);
      if (n < this.buf.length) return this.buf.toString("latin1", 0, n);
      // Filled the buffer: the file may be longer; grow and read again from the start for a consistent snapshot.
      this.buf = Buffer.allocUnsafe(this.buf.length * 2);
    }
  }

  /** Releases the descriptor; a later read reopens it. */
  close(): void {
    if (this.fd === undefined) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      /* nothing useful to do */
    }
    this.fd = undefined;
  }
}
