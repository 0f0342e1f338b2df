import http from "node:http";
import http2 from "node:http2";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/spectra/v1/agent_service_pb.js";
import { createAgentConnection } from "./client.js";
import { KEY_FILE, openCredential, writeSecretFile } from "./credentials.js";

const posix = process.platform !== "win32";

function captureLogger() {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { logger: pino({ level: "debug" }, stream), text: () => text };
}

let dir: string;
const cleanups: (() => unknown)[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "spectra-cred-"));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

describe("writeSecretFile", () => {
  it("replaces a file atomically with mode 0600 and leaves no temporary file", async () => {
    const path = join(dir, "sub", "agent.key");
    await writeSecretFile(path, "one\n");
    expect(readFileSync(path, "utf8")).toBe("one\n");
    if (posix) {
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, "sub")).mode & 0o777).toBe(0o700);
    }
    // An existing file readable by everyone is replaced (a new inode), not rewritten in place with its old mode.
    chmodSync(path, 0o644);
    const before = statSync(path).ino;
    await writeSecretFile(path, "two\n");
    expect(readFileSync(path, "utf8")).toBe("two\n");
    expect(statSync(path).ino).not.toBe(before);
    if (posix) expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(dir, "sub"))).toEqual(["agent.key"]);
  });

  it("is not widened by a leftover temporary file or a permissive umask", async () => {
    const path = join(dir, "agent.key");
    writeFileSync(join(dir, `.agent.key.${process.pid}.tmp`), "stale", { mode: 0o666 });
    const old = process.umask(0);
    try {
      await writeSecretFile(path, "k\n");
    } finally {
      process.umask(old);
    }
    if (posix) expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["agent.key"]);
  });
});

describe("openCredential", () => {
  it("loads the key file, warns when others can read it, and stores new keys in order", async () => {
    writeFileSync(join(dir, KEY_FILE), "spa_1_old\n", { mode: 0o644 });
    if (posix) chmodSync(join(dir, KEY_FILE), 0o644);
    const log = captureLogger();
    const cred = openCredential({ dataDir: dir, logger: log.logger });
    expect(cred.current()).toBe("spa_1_old");
    if (posix) expect(log.text()).toContain("agent.key is readable by other users");

    await Promise.all([cred.store("spa_1_new", "rotated"), cred.store("spa_1_newer", "rotated")]);
    expect(cred.current()).toBe("spa_1_newer");
    expect(readFileSync(join(dir, KEY_FILE), "utf8")).toBe("spa_1_newer\n");
    // The same key again is not a rotation.
    await cred.store("spa_1_newer", "rotated");
    expect(log.text().match(/agent key rotated/g)).toHaveLength(2);

    // An unusable key is refused and the current one stays.
    await expect(cred.store("bad key\nX-Evil: 1", "rotated")).rejects.toThrow("unusable agent key");
    expect(cred.current()).toBe("spa_1_newer");
    expect(readFileSync(join(dir, KEY_FILE), "utf8")).toBe("spa_1_newer\n");
    expect(log.text()).not.toContain("spa_1_");
  });

  it("starts without a key when the file is missing and refuses a broken one", () => {
    expect(openCredential({ dataDir: dir, logger: pino({ level: "silent" }) }).current()).toBeUndefined();
    writeFileSync(join(dir, KEY_FILE), "two words\n");
    expect(() => openCredential({ dataDir: dir, logger: pino({ level: "silent" }) })).toThrow(/holds no usable agent key/);
  });

  it("logs a refusal once until a call is accepted again", () => {
    writeFileSync(join(dir, KEY_FILE), "spa_1_k\n", { mode: 0o600 });
    const log = captureLogger();
    const cred = openCredential({ dataDir: dir, logger: log.logger, retryHint: "5 min" });
    cred.refused("[unauthenticated] key revoked");
    cred.refused("[unauthenticated] key revoked");
    expect(log.text().match(/the server refused this agent's key/g)).toHaveLength(1);
    expect(log.text()).toContain("retrying every 5 min");
    cred.accepted();
    cred.accepted();
    expect(log.text().match(/accepts this agent's credential again/g)).toHaveLength(1);
    cred.refused("[permission_denied] hostname mismatch");
    expect(log.text().match(/the server refused this agent's key/g)).toHaveLength(2);
  });
});

describe("the Authorization header", () => {
  it("carries the current key on every call but Enroll, over HTTP/2 and HTTP/1.1", async () => {
    const seen: [string, string | null][] = [];
    const impl: Partial<ServiceImpl<typeof AgentService>> = {
      async enroll(_req, ctx) {
        seen.push(["Enroll", ctx.requestHeader.get("authorization")]);
        return {};
      },
      async register(_req, ctx) {
        seen.push(["Register", ctx.requestHeader.get("authorization")]);
        return {};
      },
    };
    const handler = connectNodeAdapter({ routes: (r) => r.service(AgentService, impl) });
    const listen = async (server: http.Server | http2.Http2Server): Promise<string> => {
      const sockets = new Set<Socket>();
      server.on("connection", (s: Socket) => sockets.add(s));
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            for (const s of sockets) s.destroy();
            server.close(() => resolve());
          }),
      );
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    };
    const urls = { h2: await listen(http2.createServer(handler)), http1: await listen(http.createServer(handler)) };
    let key: string | undefined;
    const credential = { current: () => key, refused: () => undefined, accepted: () => undefined };
    for (const initialMode of ["h2", "http1"] as const) {
      seen.length = 0;
      key = undefined;
      const connection = createAgentConnection({ baseUrl: urls[initialMode], logger: pino({ level: "silent" }), credential, initialMode });
      cleanups.push(() => connection.close());
      await connection.client().register({});
      key = "spa_1_a";
      await connection.client().register({});
      await connection.client().enroll({});
      key = "spa_1_b";
      await connection.client().register({});
      expect(seen, initialMode).toEqual([
        ["Register", null],
        ["Register", "Bearer spa_1_a"],
        ["Enroll", null],
        ["Register", "Bearer spa_1_b"],
      ]);
    }
  });
});
