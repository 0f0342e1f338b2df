import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import { clientCertificateOf } from "./client-cert.js";
import { listen, type ListenOptions, type RequestHandler, type SpectraListener } from "./listener.js";
import { makeTestPki, type TestCert, type TestPki } from "./testing/certs.js";

/** Routes used by the tests; the same function serves h1, h2c and TLS. */
const handler: RequestHandler = (req, res) => {
  const r = res as http.ServerResponse; // same API at runtime; the union's overloads are not callable in TS
  switch (req.url) {
    case "/stream": // never ends, like a command stream
      r.writeHead(200);
      r.write("tick");
      return;
    case "/slow": // headers out at once, body done later
      r.writeHead(200);
      r.write("a");
      setTimeout(() => r.end("b"), 300);
      return;
    case "/cert": // the verified client certificate (mutual TLS)
      r.end(clientCertificateOf(req.socket) ?? "none");
      return;
    case "/late": // nothing at all for a second
      setTimeout(() => r.end("late"), 1_000);
      return;
    default:
      r.end(`v${req.httpVersion}`);
  }
};

let current: SpectraListener | undefined;
afterEach(async () => {
  await current?.close(100);
  current = undefined;
});

async function start(extra: Partial<ListenOptions> = {}): Promise<SpectraListener> {
  current = await listen({ host: "127.0.0.1", port: 0, handler, logger: silentLogger(), ...extra });
  return current;
}

/** GET over HTTP/1.1; resolves with status, body and headers. */
function get1(url: string, opts: https.RequestOptions = {}) {
  const mod = url.startsWith("https:") ? https : http;
  return new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders; alpn: unknown }>(
    (resolve, reject) => {
      mod
        .get(url, opts, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body,
              headers: res.headers,
              alpn: (res.socket as { alpnProtocol?: unknown } | null)?.alpnProtocol,
            }),
          );
        })
        .on("error", reject);
    },
  );
}

/** GET over an h2 session; resolves with status and body. */
function get2(session: http2.ClientHttp2Session, path: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const stream = session.request({ ":path": path });
    let status = 0;
    let body = "";
    stream.setEncoding("utf8");
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("data", (d: string) => (body += d));
    stream.on("end", () => resolve({ status, body }));
    stream.on("error", reject);
  });
}

/** Resolves with the milliseconds until the socket closes. */
function closedWithin(socket: net.Socket): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve) => socket.once("close", () => resolve(Date.now() - t0)));
}

/**
 * A connection for `http2.connect` that cuts the client's first 24 bytes (the preface) into three TCP writes
 * 30 ms apart, so the server sees it split.
 */
function splitPrefaceConnection(port: number): Duplex {
  const socket = net.connect({ host: "127.0.0.1", port, noDelay: true });
  const cuts = [5, 14, 24];
  let sent = 0;
  const duplex = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      void (async () => {
        for (const cut of cuts) {
          if (sent >= cut || chunk.length === 0) continue;
          const part = chunk.subarray(0, cut - sent);
          socket.write(part);
          sent += part.length;
          chunk = chunk.subarray(part.length);
          await sleep(30);
        }
        if (chunk.length) socket.write(chunk);
        cb();
      })();
    },
    read() {
      socket.resume();
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  socket.on("data", (d: Buffer) => {
    if (!duplex.push(d)) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("error", (err) => duplex.destroy(err));
  return duplex;
}

describe("listen (cleartext)", () => {
  it("serves HTTP/1.1 and h2c with the same handler on one port", async () => {
    const l = await start();
    expect(l.url).toBe(`http://127.0.0.1:${l.port}`);
    expect(await get1(`${l.url}/`)).toMatchObject({ status: 200, body: "v1.1" });
    const session = http2.connect(l.url);
    try {
      expect(await get2(session, "/")).toEqual({ status: 200, body: "v2.0" });
    } finally {
      session.close();
    }
  });

  it("routes a preface split across TCP writes to h2", async () => {
    const l = await start();
    const session = http2.connect(l.url, { createConnection: () => splitPrefaceConnection(l.port) });
    try {
      expect(await get2(session, "/")).toEqual({ status: 200, body: "v2.0" });
    } finally {
      session.close();
    }
  });

  it("drops a silent connection, and one that stops inside the preface, after the peek timeout", async () => {
    await start({ peekTimeoutMs: 200 });
    const silent = net.connect(current!.port, "127.0.0.1");
    const partial = net.connect(current!.port, "127.0.0.1", () => partial.write("PRI * HTTP/2"));
    const [a, b] = await Promise.all([closedWithin(silent), closedWithin(partial)]);
    expect(a).toBeGreaterThanOrEqual(150);
    expect(a).toBeLessThan(2_000);
    expect(b).toBeLessThan(2_000);
  });

  it("keeps slowloris protection on HTTP/1.1 headers (408) and answers garbage with 400", async () => {
    const l = await start({ headersTimeoutMs: 300 });
    const slow = net.connect(l.port, "127.0.0.1", () => slow.write("GET / HTTP/1.1\r\nHost: x\r\n"));
    let slowReply = "";
    slow.on("data", (d: Buffer) => (slowReply += d.toString()));
    expect(await closedWithin(slow)).toBeLessThan(2_000);
    expect(slowReply).toMatch(/^HTTP\/1\.1 408/);

    const junk = net.connect(l.port, "127.0.0.1", () => junk.write("\x00\x01 nonsense\r\n\r\n"));
    let junkReply = "";
    junk.on("data", (d: Buffer) => (junkReply += d.toString()));
    await closedWithin(junk);
    expect(junkReply).toMatch(/^HTTP\/1\.1 400/);

    // A valid preface followed by an invalid frame kills that session only.
    const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    const badH2 = net.connect(l.port, "127.0.0.1", () => badH2.write(Buffer.concat([preface, Buffer.alloc(30, 0xff)])));
    badH2.on("error", () => {});
    badH2.resume();
    expect(await closedWithin(badH2)).toBeLessThan(2_000);
    expect(await get1(`${l.url}/`)).toMatchObject({ body: "v1.1" });
  });

  it("requestTimeout bounds receiving the request, not a slow response", async () => {
    const l = await start({ headersTimeoutMs: 200, requestTimeoutMs: 300 });
    expect(await get1(`${l.url}/late`)).toMatchObject({ status: 200, body: "late" });
  });

  it("drops connections beyond maxConnections", async () => {
    const l = await start({ maxConnections: 1 });
    const first = net.connect(l.port, "127.0.0.1");
    await new Promise((r) => first.once("connect", r));
    await sleep(50); // let the server account for it
    const second = net.connect(l.port, "127.0.0.1");
    second.on("error", () => {}); // a reset is as good as a close here
    expect(await closedWithin(second)).toBeLessThan(1_000);
    expect(first.destroyed).toBe(false);
    first.destroy();
  });
});

describe("close", () => {
  it("ends an open h2 stream within the grace period", async () => {
    const l = await start();
    const session = http2.connect(l.url);
    session.on("error", () => {});
    const stream = session.request({ ":path": "/stream" });
    stream.on("error", () => {});
    await new Promise((r) => stream.once("data", r));
    const streamClosed = new Promise((r) => stream.once("close", r));
    const t0 = Date.now();
    await l.close(300);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250); // it did wait for the stream...
    expect(took).toBeLessThan(1_500); // ...but not past the grace period
    await streamClosed;
    current = undefined;
  });

  it("closes idle connections at once and lets in-flight HTTP/1.1 requests finish", async () => {
    const l = await start({ keepAliveTimeoutMs: 60_000 });
    const agent = new http.Agent({ keepAlive: true });
    // An idle keep-alive h1 connection and an idle h2 session must not hold close() up.
    await get1(`${l.url}/`, { agent });
    const session = http2.connect(l.url);
    await get2(session, "/");
    // An in-flight h1 response whose headers are already out.
    const slow = get1(`${l.url}/slow`, { agent });
    await sleep(50);
    const t0 = Date.now();
    await l.close(5_000);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(await slow).toMatchObject({ status: 200, body: "ab" });
    agent.destroy();
    session.destroy();
    current = undefined;
  });
});

const openssl = spawnSync("openssl", ["version"]).status === 0;
describe.skipIf(!openssl)(`listen (TLS)${openssl ? "" : " — skipped: the openssl CLI is not installed"}`, () => {
  it("negotiates h2 for an h2 client and http/1.1 for an https client", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spectra-listener-"));
    try {
      execFileSync("openssl", [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
      ], { stdio: "ignore", timeout: 20_000 });
      const cert = readFileSync(join(dir, "cert.pem"));
      const key = readFileSync(join(dir, "key.pem"));
      const l = await start({ tls: { cert, key } });
      expect(l.url).toBe(`https://127.0.0.1:${l.port}`);

      const session = http2.connect(l.url, { ca: cert });
      try {
        expect(await get2(session, "/")).toEqual({ status: 200, body: "v2.0" });
        expect(session.alpnProtocol).toBe("h2");
      } finally {
        session.close();
      }
      const agent = new https.Agent({ ca: cert, ALPNProtocols: ["http/1.1"] });
      expect(await get1(`${l.url}/`, { agent })).toMatchObject({ status: 200, body: "v1.1", alpn: "http/1.1" });
      agent.destroy();
      // A client without ALPN falls back to HTTP/1.1 as well.
      expect(await get1(`${l.url}/`, { ca: cert, agent: false })).toMatchObject({ body: "v1.1" });
      // Plain text on the TLS port fails that handshake only.
      const plain = net.connect(l.port, "127.0.0.1", () => plain.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      plain.on("error", () => {});
      plain.resume();
      expect(await closedWithin(plain)).toBeLessThan(2_000);
      expect(await get1(`${l.url}/`, { ca: cert, agent: false })).toMatchObject({ body: "v1.1" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!openssl)(`listen (mutual TLS)${openssl ? "" : " — skipped: the openssl CLI is not installed"}`, () => {
  let dir = "";
  let pki: TestPki;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "spectra-mtls-"));
    pki = makeTestPki(dir, ["agent-a"]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** GET /cert over h2 with an optional client certificate; rejects when the connection fails. */
  async function whoAmI(l: SpectraListener, client?: TestCert): Promise<string> {
    const session = http2.connect(l.url, {
      ca: pki.ca.cert,
      ...(client ? { cert: client.cert, key: client.key } : {}),
    });
    const failed = new Promise<never>((_, reject) => {
      session.once("error", reject);
      session.once("close", () => reject(new Error("session closed")));
    });
    try {
      const r = await Promise.race([get2(session, "/cert"), failed]);
      if (r.status !== 200) throw new Error(`no answer (status ${r.status})`);
      return r.body;
    } finally {
      session.destroy();
    }
  }

  it("require: only clients with a certificate from the client CA get through; handlers see its fingerprint", async () => {
    const l = await start({ tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca.cert } });
    const a = pki.clients["agent-a"]!;
    expect(await whoAmI(l, a)).toBe(a.fingerprint);
    expect(a.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    await expect(whoAmI(l)).rejects.toThrow();
    await expect(whoAmI(l, pki.foreignClient)).rejects.toThrow();
    // HTTP/1.1 the same.
    const ok = await get1(`${l.url}/cert`, { ca: pki.ca.cert, cert: a.cert, key: a.key, agent: false });
    expect(ok).toMatchObject({ status: 200, body: a.fingerprint });
    await expect(get1(`${l.url}/cert`, { ca: pki.ca.cert, agent: false })).rejects.toThrow();
  });

  it("optional: no certificate is served (none seen), a certificate from another CA is refused", async () => {
    const l = await start({ tls: { cert: pki.server.cert, key: pki.server.key, clientCa: pki.ca.cert, clientAuth: "optional" } });
    const a = pki.clients["agent-a"]!;
    expect(await whoAmI(l)).toBe("none");
    expect(await whoAmI(l, a)).toBe(a.fingerprint);
    await expect(whoAmI(l, pki.foreignClient)).rejects.toThrow();
    await expect(get1(`${l.url}/cert`, { ca: pki.ca.cert, cert: pki.foreignClient.cert, key: pki.foreignClient.key, agent: false })).rejects.toThrow();
    expect(await get1(`${l.url}/cert`, { ca: pki.ca.cert, agent: false })).toMatchObject({ body: "none" });
  });

  it("without a client CA no certificate is asked for, and none is reported", async () => {
    const l = await start({ tls: { cert: pki.server.cert, key: pki.server.key } });
    expect(await whoAmI(l, pki.clients["agent-a"]!)).toBe("none");
  });
});
