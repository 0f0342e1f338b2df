/** Writing legacy REST responses the way the original Go server did, over HTTP/1.1 and HTTP/2 alike. */
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import http2 from "node:http2";

/** The Connect adapter's `fallback` handler: every request Connect did not route, HTTP/1.1 or HTTP/2. */
export type LegacyHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
/** A request as the fallback receives it (`http.IncomingMessage` or `http2.Http2ServerRequest`). */
export type LegacyRequest = Parameters<LegacyHandler>[0];
/** A response as the fallback receives it (`http.ServerResponse` or `http2.Http2ServerResponse`). */
export type LegacyResponse = Parameters<LegacyHandler>[1];

// The two response classes share this much; their overloads do not unify, so they are driven through it.
interface ResponseLike {
  headersSent: boolean;
  writableEnded: boolean;
  destroyed?: boolean;
  socket?: { destroyed: boolean } | null;
  stream?: http2.ServerHttp2Stream;
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(chunk?: string | Buffer, cb?: () => void): unknown;
}

/** The HTTP/2 stream behind a response, or undefined for HTTP/1.1. */
function h2Stream(res: LegacyResponse): http2.ServerHttp2Stream | undefined {
  return "stream" in res ? (res as unknown as ResponseLike).stream : undefined;
}

/** True once the client cannot receive a response any more (connection or stream gone, or already answered). */
export function isGone(res: LegacyResponse): boolean {
  if (res.writableEnded) return true;
  const stream = h2Stream(res);
  if (stream) return stream.destroyed || stream.closed;
  const r = res as unknown as ResponseLike;
  return r.destroyed === true || !r.socket || r.socket.destroyed;
}

/** Options for {@link send}. */
export interface SendOptions {
  /**
   * The request body was not read to its end (refused as too large or too slow): the rest must not be read. HTTP/1.1
   * closes the connection after the response; HTTP/2 resets the stream with NO_ERROR after it (RFC 9113 §8.1), which
   * asks the client to stop sending without failing the response.
   */
  abandonBody?: boolean;
  /** More headers (e.g. Retry-After). */
  headers?: Record<string, string>;
}

/** Sends a complete response unless the client is gone or it was already answered. */
export function send(
  res: LegacyResponse,
  status: number,
  headers: Record<string, string>,
  body?: string | Buffer,
  opts: SendOptions = {},
): void {
  if (isGone(res) || res.headersSent) return;
  const stream = h2Stream(res);
  const all: Record<string, string> = { ...headers };
  if (status !== 204) all["content-length"] = String(body === undefined ? 0 : Buffer.byteLength(body));
  // "Connection" is a forbidden header in HTTP/2.
  if (opts.abandonBody && !stream) all["connection"] = "close";
  const r = res as unknown as ResponseLike;
  r.writeHead(status, all);
  r.end(body, () => {
    if (opts.abandonBody && stream && !stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  });
}

/**
 * Go's `http.Error`: `text/plain; charset=utf-8`, `X-Content-Type-Options: nosniff`, the message and a newline.
 */
export function sendError(res: LegacyResponse, status: number, message: string, opts: SendOptions = {}): void {
  send(
    res,
    status,
    { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff", ...opts.headers },
    message + "\n",
    opts,
  );
}

/** Go's `fmt.Fprintln(w, msg)` success text (content type as Go sniffs it). */
export function sendText(res: LegacyResponse, status: number, text: string): void {
  send(res, status, { "content-type": "text/plain; charset=utf-8" }, text + "\n");
}

/** Go's `respondJSON`: `application/json`, the JSON document and the newline `json.Encoder` appends. */
export function sendJsonText(res: LegacyResponse, status: number, json: string): void {
  send(res, status, { "content-type": "application/json" }, json + "\n");
}

/** A status without a body (202, 200, 204). */
export function sendEmpty(res: LegacyResponse, status: number): void {
  send(res, status, {});
}
