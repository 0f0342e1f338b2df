import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Logger } from "../../common/logger.js";

/** One request handler for every protocol (typically a `connectNodeAdapter` handler). */
export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Options for {@link listen}. */
export interface ListenOptions {
  host: string;
  /** 0 picks a free port; read the result from {@link SpectraListener.port}. */
  port: number;
  handler: RequestHandler;
  logger: Logger;
  /**
   * When set, the port speaks TLS only and negotiates h2 or http/1.1 by ALPN; otherwise cleartext h1 + h2c.
   * With `clientCa` (mutual TLS) every client is asked for a certificate chaining to that CA bundle: with
   * `clientAuth` "require" (the default) the handshake fails without one; with "optional" a client may send none,
   * but a connection whose certificate does not verify is closed at once. Handlers read the verified certificate
   * with clientCertificateOf (server/http/client-cert.ts).
   */
  tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer; clientAuth?: "optional" | "require" };
  /** HTTP/1.1: time to receive the request headers (slowloris protection); default 30 s. */
  headersTimeoutMs?: number;
  /**
   * HTTP/1.1: time to receive the whole request (headers and body, not the response); 0 = none.
   * Default 300 s. Long polls and server streams are not affected once their request body is in.
   */
  requestTimeoutMs?: number;
  /** HTTP/1.1: how long an idle keep-alive connection is kept; default 5 s. */
  keepAliveTimeoutMs?: number;
  /** Connections beyond this are dropped at accept; default unlimited. */
  maxConnections?: number;
  /** A new connection must send its first bytes (cleartext) or finish the TLS handshake within this; default 10 s. */
  peekTimeoutMs?: number;
}

/** A listening server; see {@link listen}. */
export interface SpectraListener {
  readonly port: number;
  readonly host: string;
  /** `http://host:port` or `https://host:port` (IPv6 hosts in brackets). */
  readonly url: string;
  /**
   * Stops accepting, sends GOAWAY to h2 sessions, closes idle HTTP/1.1 connections, waits up to `graceMs`
   * (default 5 s) for in-flight requests and streams, then destroys what is left. Resolves once every
   * connection is closed. Calling it again returns the same promise.
   */
  close(graceMs?: number): Promise<void>;
}

function hasPeerCertificate(socket: { getPeerCertificate(detailed?: boolean): object }): boolean {
  return Object.keys(socket.getPeerCertificate(false)).length > 0;
}

/** The client connection preface every HTTP/2 connection starts with (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const EMPTY = Buffer.alloc(0);
/**
 * Flow-control window of each HTTP/2 connection for what clients send (RFC 9113 §6.9), raised from the protocol's
 * 64 KiB to Go's net/http2 server default of 1 MiB. A stream still gets 64 KiB: this matters to clients that carry
 * many streams on one connection (a relay, the ingest bench's 1,000 agents over 16 connections). With 64 KiB, the
 * batches waiting on streams whose previous batch is being committed filled the window, and the connection stalled
 * while the server had CPU to spare (docs/benchmarks.md, "Storage", fifth session).
 */
const H2_CONNECTION_WINDOW = 1024 * 1024;

/** The HTTP/1.1 bits of Node's http2 secure server with `allowHTTP1`, missing from @types/node. */
type Http1Part = Pick<http.Server, "closeIdleConnections">;

/**
 * Serves `opts.handler` on one TCP port. Cleartext: HTTP/1.1 and h2c with prior knowledge, told apart by
 * peeking at the first bytes of each connection (Node's `allowHTTP1` only works with TLS). With `opts.tls`:
 * TLS with ALPN h2 + http/1.1. HTTP/2 streams never time out (command streams live for hours); HTTP/1.1
 * keeps header/request timeouts. Errors on single connections are logged at debug level and never thrown.
 */
export async function listen(opts: ListenOptions): Promise<SpectraListener> {
  const log = opts.logger.child({ component: "http" });
  const requestTimeout = opts.requestTimeoutMs ?? 300_000;
  // Node refuses headersTimeout > requestTimeout when both are on.
  const headersTimeout = Math.min(opts.headersTimeoutMs ?? 30_000, requestTimeout || Infinity);
  const h1Timeouts = {
    headersTimeout,
    requestTimeout,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000,
    // Node checks header/request timeouts on this interval, so it bounds how late they fire.
    connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(headersTimeout / 4))),
  };
  const peekTimeout = opts.peekTimeoutMs ?? 10_000;

  let closing = false;
  const sockets = new Set<net.Socket>(); // every accepted TCP socket, for the forced end of close()
  const peeking = new Set<net.Socket>(); // cleartext sockets not yet routed to h1 or h2
  const sessions = new Set<http2.ServerHttp2Session>();

  const onRequest: RequestHandler = (req, res) => {
    if (!(res instanceof http2.Http2ServerResponse)) {
      // While closing, HTTP/1.1 responses end their connection (h2 got GOAWAY instead).
      if (closing) res.setHeader("connection", "close");
      // A response that was under way when close() began leaves an idle keep-alive connection behind.
      res.once("close", () => {
        if (closing) setImmediate(() => h1Part.closeIdleConnections());
      });
    }
    try {
      opts.handler(req, res);
    } catch (err) {
      // A throwing handler must not take the process down with it (it runs inside a socket event).
      log.error({ err }, "request handler threw");
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      } else res.destroy();
    }
  };

  const trackSession = (session: http2.ServerHttp2Session): void => {
    sessions.add(session);
    session.on("error", (err) => log.debug({ err }, "h2 session error"));
    try {
      session.setLocalWindowSize(H2_CONNECTION_WINDOW);
    } catch (err) {
      log.debug({ err }, "h2 connection window not raised"); // a session already closing
    }
    session.once("close", () => sessions.delete(session));
    if (closing) session.close(); // a TLS handshake that finished after close() began
  };

  let route: (socket: net.Socket) => void;
  let h1Part: Http1Part;
  let stopServers: () => void;
  if (opts.tls) {
    const clientCa = opts.tls.clientCa;
    const requireCert = clientCa !== undefined && opts.tls.clientAuth !== "optional";
    const secure = http2.createSecureServer(
      {
        allowHTTP1: true,
        cert: opts.tls.cert,
        key: opts.tls.key,
        handshakeTimeout: peekTimeout,
        ...(clientCa ? { ca: clientCa, requestCert: true, rejectUnauthorized: requireCert } : {}),
      },
      onRequest,
    );
    // The http/1.1 side reads these like an http.Server does (Node leaves keepAliveTimeout unset: never idle out).
    Object.assign(secure, h1Timeouts);
    secure.on("session", trackSession);
    secure.on("secureConnection", (tlsSocket) => {
      tlsSocket.on("error", (err: Error) => log.debug({ err }, "tls socket error"));
      // Optional client certificates: none is fine, one that does not verify is not (a stolen key with a
      // self-made certificate must not pass as "no certificate").
      if (clientCa && !tlsSocket.authorized && hasPeerCertificate(tlsSocket)) {
        log.debug({ remote: tlsSocket.remoteAddress, reason: String(tlsSocket.authorizationError) }, "client certificate refused");
        tlsSocket.destroy();
        return;
      }
      log.debug({ remote: tlsSocket.remoteAddress, alpn: tlsSocket.alpnProtocol }, "tls connection");
    });
    secure.on("tlsClientError", (err) => log.debug({ err }, "tls handshake failed"));
    // Sockets are injected, so the server never "listens" by itself; this event starts Node's h1 timeout checks.
    secure.emit("listening");
    route = (socket) => secure.emit("connection", socket);
    h1Part = secure as unknown as Http1Part;
    stopServers = () => secure.close(); // closes idle h1 connections and stops the timeout checks
  } else {
    const h1 = http.createServer(h1Timeouts, onRequest);
    const h2 = http2.createServer({}, onRequest);
    h2.on("session", trackSession);
    h1.emit("listening"); // as above: without it headersTimeout/requestTimeout and idle closing stay off
    route = (socket) => peek(socket, h1, h2);
    h1Part = h1;
    stopServers = () => h1.close();
  }

  /** Reads until the bytes either diverge from the h2 preface (HTTP/1.1) or contain all of it (h2c). */
  const peek = (socket: net.Socket, h1: http.Server, h2: http2.Http2Server): void => {
    peeking.add(socket);
    let seen: Buffer = EMPTY;
    const timer = setTimeout(() => {
      log.debug({ remote: socket.remoteAddress }, "silent connection dropped");
      socket.destroy();
    }, peekTimeout);
    // Everything the peek holds is let go once the connection is routed: its "close" listener stayed on the socket
    // for the connection's life, and with it (through the closure) the first chunk read, ~4 KiB per connection.
    const stop = (): void => {
      clearTimeout(timer);
      peeking.delete(socket);
      seen = EMPTY;
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", stop);
    };
    const onEnd = (): void => {
      stop();
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      seen = seen.length ? Buffer.concat([seen, chunk]) : chunk;
      const n = Math.min(seen.length, H2_PREFACE.length);
      const isH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (isH2 && n < H2_PREFACE.length) return; // a preface split across TCP writes: wait for the rest
      const bytes = seen;
      stop();
      socket.pause();
      socket.unshift(bytes);
      log.debug({ remote: socket.remoteAddress, protocol: isH2 ? "h2c" : "http/1.1" }, "connection");
      if (isH2) {
        // Not resumed: the h2 session drains the unshifted bytes itself, a flowing socket would lose them.
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume(); // the h1 parser only reads a flowing socket
      }
    };
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", stop);
  };

  const front = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", (err) => log.debug({ err }, "socket error"));
    if (closing) socket.destroy();
    else route(socket);
  });
  if (opts.maxConnections) front.maxConnections = opts.maxConnections;
  front.on("drop", (d) => log.debug({ remote: d?.remoteAddress }, "connection dropped: maxConnections"));

  try {
    await new Promise<void>((resolve, reject) => {
      front.once("error", reject);
      front.listen({ host: opts.host, port: opts.port }, () => {
        front.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    stopServers();
    throw err;
  }
  // After listening, accept errors (e.g. EMFILE) are reported, not thrown.
  front.on("error", (err) => log.error({ err }, "listener error"));

  const port = (front.address() as net.AddressInfo).port;
  const urlHost = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  let closed: Promise<void> | undefined;

  return {
    port,
    host: opts.host,
    url: `${opts.tls ? "https" : "http"}://${urlHost}:${port}`,
    close(graceMs = 5_000) {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        const timer = setTimeout(() => {
          for (const session of sessions) session.destroy();
          for (const socket of sockets) socket.destroy();
        }, graceMs);
        // The callback runs once every accepted socket is closed, whichever server it went to.
        front.close(() => {
          clearTimeout(timer);
          resolve();
        });
        for (const socket of peeking) socket.destroy();
        for (const session of sessions) session.close(); // GOAWAY; the session ends after its open streams
        stopServers();
      });
      return closed;
    },
  };
}
