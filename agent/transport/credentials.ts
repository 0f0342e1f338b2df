import fs from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "../../common/logger.js";

/*
 * The agent's own key (`spa_<id>_<secret>`), issued by the server when an admin approves its enrollment and sent as
 * `Authorization: Bearer <key>` on every AgentService call but Enroll.
 *
 *   <data-dir>/agent.key   the key and a newline, mode 0600, replaced atomically (see writeSecretFile)
 *
 * The key is read once at start and kept in memory; the interceptor reads it per call, so a rotated key applies to
 * the next call without reconnecting. A key the server refuses (revoked, or issued to another host name) is kept:
 * an admin may approve the agent again, and deleting it is the operator's decision (then enroll again with a token).
 */

/** File name of the key in the data directory. */
export const KEY_FILE = "agent.key";

/** Longest key accepted; the server's keys are far shorter. */
const MAX_KEY_CHARS = 4096;

/** True when `key` can be sent in an HTTP header: 1-4096 visible ASCII characters. */
export function isUsableKey(key: string): boolean {
  return key.length > 0 && key.length <= MAX_KEY_CHARS && /^[\x21-\x7e]+$/.test(key);
}

/**
 * Replaces `path` atomically with `text`, readable by the owner only (mode 0600): a temporary file is created with
 * mode 0600 (never wider, not even for a moment), written and fsynced, renamed over `path`, and the directory is
 * fsynced so the rename survives a power cut. The directory is created (0700) when missing.
 */
export async function writeSecretFile(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  // A leftover temporary file from a crash may have another mode; O_EXCL below needs it gone.
  await fs.promises.rm(tmp, { force: true });
  const fh = await fs.promises.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    await fh.writeFile(text, "utf8");
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fs.promises.rename(tmp, path);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(dir, "r");
  } catch {
    return; // Windows cannot open a directory; its renames are durable without it
  }
  try {
    await fh.sync();
  } catch (err) {
    // Some filesystems refuse fsync on a directory; the rename itself has happened.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EINVAL" && code !== "EPERM" && code !== "EISDIR") throw err;
  } finally {
    await fh.close();
  }
}

/**
 * Reads a secret file written by {@link writeSecretFile}; undefined when it does not exist. Warns (never fails)
 * when other users may read it.
 */
export function readSecretFile(path: string, logger: Logger): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`read ${path}`, { cause: err });
  }
  if (process.platform !== "win32") {
    try {
      const mode = fs.statSync(path).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        logger.warn({ file: path, mode: `0${mode.toString(8)}` }, `${basename(path)} is readable by other users; run chmod 600 on it`);
      }
    } catch {
      // The read worked; a failed stat only costs the warning.
    }
  }
  return text;
}

/** Where the agent's key stands, as the transport and the retry loops see it. */
export interface Credential {
  /** Path of the key file. */
  readonly keyPath: string;
  /** The key for `Authorization: Bearer`, or undefined while the agent has none. */
  current(): string | undefined;
  /**
   * Stores a key atomically in the key file, then uses it for the next calls. `how` says why, for the log:
   * "enrolled" (approval) or "rotated" (CommandPoll's new_agent_key). The same key again is a no-op. Throws when the
   * key is unusable or cannot be written; the previous key then stays in use.
   */
  store(key: string, how: "enrolled" | "rotated"): Promise<void>;
  /** A call was refused with Unauthenticated or PermissionDenied: logged once until the next accepted call. */
  refused(reason: string): void;
  /** A call went through: ends a refusal (logged once). */
  accepted(): void;
}

/** Options for {@link openCredential}. */
export interface CredentialOptions {
  dataDir: string;
  logger: Logger;
  /** For the hint when the server wants a credential the agent does not have: the enroll-token settings. */
  enrollHint?: string;
  /** How long the retry loops wait after a refusal, for the log line. */
  retryHint?: string;
}

/**
 * Loads `<dataDir>/agent.key` if it exists. Throws (the agent cannot start) when the file exists but cannot be read
 * or holds no usable key, with a message that says which file and what to do.
 */
export function openCredential(opts: CredentialOptions): Credential {
  const log = opts.logger;
  const keyPath = join(opts.dataDir, KEY_FILE);
  const text = readSecretFile(keyPath, log);
  let key: string | undefined;
  if (text !== undefined) {
    key = text.trim();
    if (!isUsableKey(key)) {
      throw new Error(`${keyPath} holds no usable agent key; delete it to enroll again (--enroll-token)`);
    }
  }
  let refusedSince: number | undefined;
  let writes: Promise<void> = Promise.resolve();

  return {
    keyPath,
    current: () => key,
    store(next, how) {
      const run = async (): Promise<void> => {
        if (next === key) return;
        if (!isUsableKey(next)) throw new Error("the server sent an unusable agent key");
        await writeSecretFile(keyPath, `${next}\n`);
        key = next;
        refusedSince = undefined;
        // Never the key itself.
        if (how === "rotated") log.info({ keyFile: keyPath }, "agent key rotated");
        else log.info({ keyFile: keyPath }, "enrollment approved; agent key stored");
      };
      // One write at a time, in order: the file always ends up holding the key in use.
      const p = writes.then(run, run);
      writes = p.catch(() => undefined);
      return p;
    },
    refused(reason) {
      if (refusedSince !== undefined) return;
      refusedSince = Date.now();
      const retry = opts.retryHint ? `; retrying every ${opts.retryHint}` : "";
      if (key === undefined) {
        log.error(
          { reason },
          `the server requires a credential and this agent has none: enroll it with ${opts.enrollHint ?? "--enroll-token"}${retry}`,
        );
      } else {
        log.error(
          { reason, keyFile: keyPath },
          `the server refused this agent's key (revoked, or issued to another host name); batches stay in the spool and the key is kept${retry}. ` +
            `An admin can approve the agent again; to enroll anew, delete ${KEY_FILE} and start with ${opts.enrollHint ?? "--enroll-token"}`,
        );
      }
    },
    accepted() {
      if (refusedSince === undefined) return;
      refusedSince = undefined;
      log.info("the server accepts this agent's credential again");
    },
  };
}

/**
 * The Connect interceptor that sends `Authorization: Bearer <key>` on every call but Enroll (which carries its
 * token or enrollment secret in the request). The key is read from `credential` per call.
 */
export function authInterceptor(credential: Pick<Credential, "current">): Interceptor {
  return (next) => async (req) => {
    const key = credential.current();
    if (key !== undefined && req.method.name !== "Enroll") req.header.set("authorization", `Bearer ${key}`);
    return await next(req);
  };
}
