import { createHash } from "node:crypto";
import https from "node:https";
import { isIP } from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";

/**
 * Certificate pinning for `--server-fingerprint sha256:<hex>`: the agent accepts the server's certificate only when
 * the SHA-256 of its DER encoding equals the pin, whoever issued it (a self-signed certificate is fine when pinned).
 * Without a pin the agent verifies certificates against the system's CAs as usual; nothing here is used.
 */

/**
 * The agent's own TLS material (`--tls-cert`/`--tls-key`: a client certificate for servers with mutual TLS;
 * `--tls-ca`: a CA bundle that verifies the server instead of the system's CAs), PEM contents.
 */
export interface ClientTls {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
}

/** The TLS options of `tls` for a client connection (the CA only when no pin replaces verification). */
export function clientTlsOptions(tls: ClientTls | undefined, pinned: boolean): tls.SecureContextOptions {
  if (!tls) return {};
  return {
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
    ...(tls.ca && !pinned ? { ca: tls.ca } : {}),
  };
}

/** A parsed pin: the setting it came from (for messages) and the fingerprint as "sha256:<64 lowercase hex>". */
export interface ServerPin {
  fingerprint: string;
  /** The setting as the user wrote it: `--server-fingerprint`, `SPECTRA_SERVER_FINGERPRINT` or `server_fingerprint`. */
  setting: string;
}

/**
 * Parses "sha256:<64 hex digits>" into "sha256:<64 lowercase hex>". Upper case and the colon-separated form that
 * `openssl x509 -fingerprint -sha256` prints (after the "sha256:" prefix) are accepted. Undefined when not a pin.
 */
export function parseFingerprint(text: string): string | undefined {
  const m = /^sha256:([0-9a-f:]+)$/i.exec(text.trim());
  if (!m) return undefined;
  const hex = (m[1] ?? "").replace(/:/g, "").toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? `sha256:${hex}` : undefined;
}

/** "sha256:<hex>" of a DER-encoded certificate. */
export function certificateFingerprint(der: Uint8Array): string {
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

/** The server presented a certificate other than the pinned one. */
export class PinMismatchError extends Error {
  readonly code = "ERR_SPECTRA_CERT_PIN_MISMATCH";
  constructor(
    readonly pin: ServerPin,
    readonly actual: string | undefined,
  ) {
    super(
      actual === undefined
        ? `the server presented no certificate; ${pin.setting} requires ${pin.fingerprint}`
        : `the server's certificate ${actual} does not match ${pin.setting} ${pin.fingerprint}`,
    );
    this.name = "PinMismatchError";
  }
}

/** Returns the mismatch, or undefined when the socket's peer certificate is the pinned one. */
export function checkPin(socket: tls.TLSSocket, pin: ServerPin): PinMismatchError | undefined {
  const der = socket.getPeerCertificate(false)?.raw as Buffer | undefined;
  if (!der || der.length === 0) return new PinMismatchError(pin, undefined);
  const actual = certificateFingerprint(der);
  return actual === pin.fingerprint ? undefined : new PinMismatchError(pin, actual);
}

/**
 * Opens a TLS connection that becomes usable only if the server's certificate matches the pin.
 *
 * Node verifies the chain before it calls `checkServerIdentity`, and skips that call when the chain does not verify
 * (a self-signed certificate), so the pin cannot live there. Instead the chain check is switched off
 * (`rejectUnauthorized: false`) and the pin is checked when the handshake is done, *before* the socket announces
 * `secureConnect`: HTTP/2 and HTTP/1.1 start using a TLS socket only on that event, so with a wrong certificate not
 * a byte of a request (nor the `Authorization` header) is written; the socket is destroyed with a
 * {@link PinMismatchError} instead, which the caller's request fails with.
 */
export function connectPinned(options: tls.ConnectionOptions & { host: string; port: number }, pin: ServerPin): tls.TLSSocket {
  const servername = isIP(options.host) === 0 ? options.host : undefined;
  const socket = tls.connect({
    ...options,
    ...(servername !== undefined ? { servername } : {}),
    rejectUnauthorized: false,
    // The pin replaces the host name check: the certificate is the one we were told to trust.
    checkServerIdentity: () => undefined,
  });
  const emit = socket.emit;
  socket.emit = function (this: tls.TLSSocket, event: string | symbol, ...args: unknown[]): boolean {
    if (event === "secureConnect") {
      const mismatch = checkPin(this, pin);
      if (mismatch) {
        this.destroy(mismatch);
        return false;
      }
    }
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as typeof socket.emit;
  return socket;
}

/**
 * `http2.connect` options that pin the server certificate (for connect-node's Http2SessionManager), presenting the
 * client certificate of `client` when given.
 */
export function pinnedHttp2Options(pin: ServerPin, client?: ClientTls): { createConnection: (authority: URL) => tls.TLSSocket } {
  const own = clientTlsOptions(client, true);
  return {
    createConnection: (authority: URL) =>
      connectPinned({ ...own, host: stripBrackets(authority.hostname), port: Number(authority.port || 443), ALPNProtocols: ["h2"] }, pin),
  };
}

/**
 * An https.Agent whose connections pin the server certificate. The socket is handed to the request only after the
 * pin matched (the asynchronous form of `createConnection`), so a request never starts on an unverified socket.
 */
export function pinnedHttpsAgent(pin: ServerPin, client?: ClientTls): https.Agent {
  return new PinnedAgent(pin, clientTlsOptions(client, true));
}

class PinnedAgent extends https.Agent {
  constructor(
    private readonly pin: ServerPin,
    private readonly own: tls.SecureContextOptions,
  ) {
    super({ keepAlive: true });
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    const host = stripBrackets(options.hostname ?? options.host ?? "localhost");
    const socket = connectPinned({ ...this.own, host, port: Number(options.port || 443), ALPNProtocols: ["http/1.1"] }, this.pin);
    const onError = (err: Error): void => callback?.(err, socket);
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      socket.off("error", onError);
      callback?.(null, socket);
    });
    return undefined;
  }
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
