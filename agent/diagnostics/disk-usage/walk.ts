// Only node: built-ins and ./top-n.js here: a test transpiles these two files and runs them as an unprivileged user.
import { lstat, opendir, statfs } from "node:fs/promises";
import path from "node:path";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { TopN } from "./top-n.js";

/** The part of `fs.Stats` the walk reads. */
export interface WalkStats {
  dev: number;
  ino: number;
  nlink: number;
  /** 512-byte blocks allocated. */
  blocks: number;
  isDirectory(): boolean;
  isFile(): boolean;
}

/** An open directory (`fs.Dir`). */
export interface WalkDir {
  read(): Promise<{ name: string } | null>;
  close(): Promise<void>;
}

/** File system calls of the walk, injectable in tests (fault injection, slow disks). */
export interface WalkFs {
  opendir(p: string): Promise<WalkDir>;
  lstat(p: string): Promise<WalkStats>;
  statfs(p: string): Promise<{ type: number }>;
}

/** Entries read from a directory per round (also opendir's buffer size). */
const BATCH = 128;

/** The real file system: opendir with a 128-entry buffer, lstat (never stat: symlinks are not followed). */
export const nodeWalkFs: WalkFs = {
  opendir: (p) => opendir(p, { bufferSize: BATCH }),
  lstat: (p) => lstat(p),
  statfs: (p) => statfs(p),
};

/**
 * Linux pseudo and trigger filesystems (statfs f_type) never descended into, even with cross_filesystems: proc,
 * sysfs, devpts, cgroup v1/v2, debugfs, tracefs, securityfs, pstore, bpf, configfs, fusectl, binfmt_misc, mqueue,
 * nsfs, efivarfs, selinuxfs, and autofs (walking it would trigger mounts).
 */
export const PSEUDO_FS_TYPES: ReadonlySet<number> = new Set([
  0x9fa0, 0x62656572, 0x1cd1, 0x27e0eb, 0x63677270, 0x64626720, 0x74726163, 0x73636673, 0x6165676c, 0xcafe4a11,
  0x62656570, 0x65735543, 0x42494e4d, 0x19800202, 0x6e736673, 0xde5e81e4, 0xf97cff8c, 0x0187,
]);

/** A directory in the result: its subtree's allocated bytes and file count. */
export interface DirItem {
  path: string;
  size: number;
  count: number;
}

/** A file in the result: its allocated bytes. */
export interface FileItem {
  path: string;
  size: number;
}

/** Which bound stopped the walk. */
export type StopReason = "max_files" | "timeout" | "aborted";

/** Options of {@link walk}. */
export interface WalkOptions {
  /** Absolute path to scan (a directory, not a symlink). */
  root: string;
  topN: number;
  /** Entries (files, directories and others) examined at most. */
  maxEntries: number;
  timeoutMs: number;
  crossFilesystems: boolean;
  signal?: AbortSignal;
  fs?: WalkFs;
  /** path.posix or path.win32; default the host's. */
  pathModule?: path.PlatformPath;
  /** lstat calls in flight; default 16. */
  concurrency?: number;
  /** Directories deeper than this are counted as errors, not entered (each level holds an open directory); default 256. */
  maxDepth?: number;
  /** Skip {@link PSEUDO_FS_TYPES} when crossing filesystems (Linux); default true. */
  skipPseudoFs?: boolean;
  /** Hard-linked files remembered for counting once; default 100 000 (beyond, they are counted each time). */
  maxHardLinks?: number;
  /** Turns a scanned path into the reported one (strip a host-root prefix); default identity. */
  display?: (p: string) => string;
  now?: () => number;
}

/** Outcome of {@link walk}. */
export interface WalkResult {
  topDirs: DirItem[];
  topFiles: FileItem[];
  /** Allocated bytes under the root (a lower bound when stopped). */
  totalSize: number;
  scannedDirs: number;
  scannedFiles: number;
  errorCount: number;
  /** Set when a bound stopped the walk (then partial). */
  stopped: StopReason | undefined;
  /** Directories on other filesystems (or pseudo filesystems) that were not entered. */
  skippedMounts: number;
}

interface Pending {
  path: string;
  st: WalkStats;
}

interface Frame {
  path: string;
  dev: number;
  depth: number;
  dir: WalkDir;
  /** Running total: own blocks plus finished children and files. */
  size: number;
  files: number;
  /** Subdirectories of the last batch, entered one by one before the next batch is read. */
  subdirs: Pending[];
  next: number;
  exhausted: boolean;
}

type Lstat = { st: WalkStats } | { err: unknown };

const STOP = Symbol("stop");

const bytes = (st: WalkStats): number => st.blocks * 512;
const betterDir = (a: DirItem, b: DirItem): boolean => a.size > b.size || (a.size === b.size && a.path < b.path);
const betterFile = (a: FileItem, b: FileItem): boolean => a.size > b.size || (a.size === b.size && a.path < b.path);

/**
 * Finds the largest directories (by allocated bytes of their subtree, with file counts) and files under `root`.
 *
 * Depth-first and post-order with an explicit stack: each stack frame holds one open directory, a running total and
 * at most one batch (128) of pending subdirectories, so memory is O(depth × 128 + topN) however big the tree; a
 * directory's total is final when its frame is popped, and is then offered to the top-N heap and added to its
 * parent. Sizes are allocated bytes (`blocks × 512`, du semantics, the directories' own blocks included); a file with
 * several hard links counts once. Symlinks are never followed (lstat only; a symlink is a small file). Without
 * `crossFilesystems`, directories whose st_dev differs from the root's are not entered. lstat runs `concurrency` at
 * a time and the walk yields to the event loop between batches.
 *
 * Unreadable entries add to `errorCount` and the walk goes on (an entry that vanished meanwhile is not an error).
 * The walk stops, with the totals so far, at `maxEntries` entries, at `timeoutMs` or when `signal` aborts — a hung
 * file system call included; directories still open then report what was summed (lower bounds). Throws only when
 * the root itself is not a readable directory.
 */
export async function walk(opts: WalkOptions): Promise<WalkResult> {
  const fs = opts.fs ?? nodeWalkFs;
  const p = opts.pathModule ?? path;
  const now = opts.now ?? Date.now;
  const concurrency = Math.max(1, opts.concurrency ?? 16);
  const maxDepth = opts.maxDepth ?? 256;
  const maxHardLinks = opts.maxHardLinks ?? 100_000;
  const skipPseudo = opts.skipPseudoFs ?? true;
  const display = opts.display ?? ((s: string) => s);

  const topDirs = new TopN<DirItem>(opts.topN, betterDir);
  const topFiles = new TopN<FileItem>(opts.topN, betterFile);
  const hardLinks = new Set<string>();
  const pseudoByDev = new Map<number, boolean>();
  let scannedDirs = 0;
  let scannedFiles = 0;
  let errorCount = 0;
  let skippedMounts = 0;
  let entries = 0;
  let totalSize = 0;
  let sinceYield = 0;
  let stopped: StopReason | undefined;

  // One promise that settles when a bound is hit, raced against every file system call so a hung one cannot hold
  // the walk past its time budget.
  const deadline = now() + opts.timeoutMs;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopSignal = new Promise<typeof STOP>((resolve) => {
    timer = setTimeout(() => {
      stopped ??= "timeout";
      resolve(STOP);
    }, Math.max(0, opts.timeoutMs));
    onAbort = () => {
      stopped ??= "aborted";
      resolve(STOP);
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
  });
  const bounded = async <T>(op: Promise<T>): Promise<T | typeof STOP> => {
    // A call that loses the race may reject later: keep that from becoming an unhandled rejection.
    op.catch(() => {});
    return Promise.race([op, stopSignal]);
  };
  const outOfTime = (): boolean => {
    if (stopped) return true;
    if (opts.signal?.aborted) stopped = "aborted";
    else if (now() >= deadline) stopped = "timeout";
    return stopped !== undefined;
  };

  const stack: Frame[] = [];
  try {
    const noAnswer = (): Error =>
      new Error(stopped === "aborted" ? `scan of ${display(opts.root)} aborted` : `${display(opts.root)}: no answer within the time budget`);
    const rootSt = await bounded(
      fs.lstat(opts.root).catch((cause: unknown) => {
        throw new Error(`${display(opts.root)}: ${code(cause)}`, { cause });
      }),
    );
    if (rootSt === STOP) throw noAnswer();
    if (!rootSt.isDirectory()) throw new Error(`${display(opts.root)} is not a directory${rootSt.isFile() ? "" : " (a symbolic link or special file)"}`);
    const opening = fs.opendir(opts.root).catch((cause: unknown) => {
      throw new Error(`${display(opts.root)}: ${code(cause)}`, { cause });
    });
    const rootDir = await bounded(opening);
    if (rootDir === STOP) {
      void opening.then((d) => d.close().catch(() => {}), () => {});
      throw noAnswer();
    }
    const rootDev = rootSt.dev;
    scannedDirs++;
    stack.push(frame(opts.root, rootSt, 0, rootDir));

    const isPseudo = async (dir: string, dev: number): Promise<boolean> => {
      if (!skipPseudo) return false;
      const known = pseudoByDev.get(dev);
      if (known !== undefined) return known;
      let pseudo = false;
      try {
        pseudo = PSEUDO_FS_TYPES.has((await fs.statfs(dir)).type);
      } catch {
        pseudo = false;
      }
      if (pseudoByDev.size < 4096) pseudoByDev.set(dev, pseudo);
      return pseudo;
    };

    /** Reads the next batch of `f` and lstats it; touches no shared state, so a batch that loses the race is inert. */
    const fetchBatch = async (f: Frame): Promise<{ names: string[]; stats: Lstat[]; exhausted: boolean; readError: boolean; pseudo: Set<string> }> => {
      const room = opts.maxEntries - entries;
      const want = Math.min(BATCH, room + 1);
      const names: string[] = [];
      let exhausted = false;
      let readError = false;
      try {
        while (names.length < want) {
          const d = await f.dir.read();
          if (d === null) {
            exhausted = true;
            break;
          }
          names.push(d.name);
        }
      } catch {
        readError = true;
        exhausted = true;
      }
      const kept = names.slice(0, Math.max(0, room));
      const stats = await mapLimit(kept, concurrency, async (name): Promise<Lstat> => {
        try {
          return { st: await fs.lstat(p.join(f.path, name)) };
        } catch (err) {
          return { err };
        }
      });
      const pseudo = new Set<string>();
      if (opts.crossFilesystems) {
        for (let i = 0; i < kept.length; i++) {
          const s = stats[i]!;
          if ("st" in s && s.st.isDirectory() && s.st.dev !== f.dev && (await isPseudo(p.join(f.path, kept[i]!), s.st.dev))) pseudo.add(kept[i]!);
        }
      }
      return { names, stats, exhausted, readError, pseudo };
    };

    const enter = async (parent: Frame, sub: Pending): Promise<void> => {
      if (parent.depth + 1 > maxDepth) {
        errorCount++;
        parent.size += bytes(sub.st);
        return;
      }
      const opening = fs.opendir(sub.path).then(
        (d) => d,
        () => undefined,
      );
      const dir = await bounded(opening);
      if (dir === STOP) {
        // Close it should it open after all.
        void opening.then((d) => d?.close().catch(() => {}));
        return;
      }
      if (dir === undefined) {
        // Unreadable (EACCES) or gone: its own blocks still count, its content is unknown.
        errorCount++;
        parent.size += bytes(sub.st);
        return;
      }
      if (stopped) {
        void dir.close().catch(() => {});
        return;
      }
      scannedDirs++;
      stack.push(frame(sub.path, sub.st, parent.depth + 1, dir));
    };

    const finish = async (f: Frame, wait: boolean): Promise<void> => {
      stack.pop();
      // A stopped walk does not wait: the directory may be stuck behind a hung read.
      const closing = f.dir.close().catch(() => {});
      if (wait) await closing;
      // Subdirectories never entered (the walk stopped): their own blocks at least.
      for (let i = f.next; i < f.subdirs.length; i++) f.size += bytes(f.subdirs[i]!.st);
      topDirs.offer({ path: display(f.path), size: f.size, count: f.files });
      const parent = stack[stack.length - 1];
      if (parent) {
        parent.size += f.size;
        parent.files += f.files;
      } else {
        totalSize = f.size;
      }
    };

    while (stack.length > 0 && !outOfTime()) {
      const f = stack[stack.length - 1]!;
      if (f.next < f.subdirs.length) {
        await enter(f, f.subdirs[f.next++]!);
        continue;
      }
      f.subdirs = [];
      f.next = 0;
      if (f.exhausted) {
        await finish(f, true);
        continue;
      }
      const batch = await bounded(fetchBatch(f));
      if (batch === STOP) break;
      f.exhausted = batch.exhausted;
      if (batch.readError) errorCount++;
      const room = opts.maxEntries - entries;
      if (batch.names.length > room) stopped = "max_files";
      for (let i = 0; i < batch.stats.length; i++) {
        entries++;
        const s = batch.stats[i]!;
        const name = batch.names[i]!;
        if ("err" in s) {
          if (code(s.err) !== "ENOENT") errorCount++;
          continue;
        }
        const st = s.st;
        const full = p.join(f.path, name);
        const foreign = st.dev !== rootDev && !opts.crossFilesystems;
        if (st.isDirectory()) {
          if (foreign || batch.pseudo.has(name)) skippedMounts++;
          else f.subdirs.push({ path: full, st });
          continue;
        }
        scannedFiles++;
        if (foreign) continue; // a file bind-mounted from elsewhere
        f.files++;
        let size = bytes(st);
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          if (hardLinks.has(key)) size = 0;
          else if (hardLinks.size < maxHardLinks) hardLinks.add(key);
        }
        f.size += size;
        if (size > 0 && st.isFile()) topFiles.offer({ path: display(full), size });
      }
      sinceYield += batch.stats.length;
      if (sinceYield >= 2048) {
        sinceYield = 0;
        await yieldToLoop();
      }
    }
    // Stopped early: fold what the open directories summed into their parents.
    while (stack.length > 0) await finish(stack[stack.length - 1]!, false);
  } finally {
    clearTimeout(timer);
    if (onAbort) opts.signal?.removeEventListener("abort", onAbort);
    for (const f of stack) void f.dir.close().catch(() => {});
  }

  return {
    topDirs: topDirs.sorted(),
    topFiles: topFiles.sorted(),
    totalSize,
    scannedDirs,
    scannedFiles,
    errorCount,
    stopped,
    skippedMounts,
  };
}

function frame(p: string, st: WalkStats, depth: number, dir: WalkDir): Frame {
  return { path: p, dev: st.dev, depth, dir, size: bytes(st), files: 0, subdirs: [], next: 0, exhausted: false };
}

function code(err: unknown): string {
  const c = (err as { code?: unknown } | undefined)?.code;
  return typeof c === "string" ? c : String(err);
}

/** Maps `items` through `fn` with at most `limit` calls in flight, keeping order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
