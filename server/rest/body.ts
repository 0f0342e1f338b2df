/**
 * Reading legacy request bodies with hard caps: gunzip only when `Content-Encoding` is exactly `gzip` (as the
 * original's `r.Header.Get("Content-Encoding") == "gzip"`), then JSON.
 */
import { gunzipBounded } from "../../common/gzip.js";
import type { LegacyRequest } from "./respond.js";

/** A request the legacy routes answer with a plain-text error (Go's `http.Error`). */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    message: string,
    /** The body was left unread: the connection (HTTP/1.1) or stream (HTTP/2) must not be read any further. */
    readonly abandonBody = false,
  ) {
    super(message);
  }
}

/** The client went away before its body arrived: there is nobody left to answer. */
export class ClientGoneError extends Error {
  override name = "ClientGoneError";
}

/** Caps on one request body. */
export interface BodyLimits {
  /** Bytes accepted as received (before gunzip). */
  maxBodyBytes: number;
  /** Bytes accepted after gunzip: the gzip-bomb cap. */
  maxInflatedBytes: number;
  /** The whole body must arrive within this; default 30 s (the original server's read timeout). */
  timeoutMs?: number;
}

const DEFAULT_BODY_TIMEOUT_MS = 30_000;

/**
 * Reads the raw body. Refuses with 413 (before reading, when `Content-Length` already says so) or as soon as more than
 * `maxBodyBytes` arrived, and stops reading at once: the rest of the body is never buffered. 408 when the body is
 * not complete within the timeout. Rejects with ClientGoneError when the client disconnects mid-body.
 */
export function readRawBody(req: LegacyRequest, limits: BodyLimits): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limits.maxBodyBytes) {
    return Promise.reject(tooLarge(limits.maxBodyBytes));
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: Error | undefined, body?: Buffer) => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      req.off("close", onGone);
      if (err) {
        // Stop pulling bytes off the connection; the response is sent with `abandonBody`.
        req.pause();
        reject(err);
      } else {
        resolve(body!);
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limits.maxBodyBytes) return finish(tooLarge(limits.maxBodyBytes));
      chunks.push(chunk);
    };
    const onEnd = () => finish(undefined, Buffer.concat(chunks, size));
    const onGone = () => finish(new ClientGoneError("client closed the connection while sending the body"));
    const timer = setTimeout(
      () => finish(new HttpError(408, "request body not received in time", true)),
      limits.timeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
    );
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onGone);
    req.on("close", onGone);
  });
}

function tooLarge(max: number): HttpError {
  return new HttpError(413, `request body too large: more than ${max} bytes`, true);
}

/**
 * Gunzips a body with its inflated size capped. Decision: a body that inflates beyond the cap (a gzip bomb) is
 * answered `413` like any oversized body — it is valid gzip, just too big, and the status tells the client so —
 * while corrupt gzip is `400 bad gzip body: <detail>`. zlib's `maxOutputLength` aborts inflation as soon as the cap
 * is passed, so a bomb costs at most `maxInflatedBytes` of memory and the matching CPU. Small bodies (an agent's
 * tick) are inflated in place, larger ones off the event loop (common/gzip.ts: `gunzipBounded`).
 */
export async function gunzipCapped(body: Buffer, maxInflatedBytes: number): Promise<Buffer> {
  // Go's gzip.NewReader fails on an empty body (EOF); zlib would return an empty buffer.
  if (body.length === 0) throw new HttpError(400, "bad gzip body: EOF");
  try {
    const out = await gunzipBounded(body, maxInflatedBytes);
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ERR_BUFFER_TOO_LARGE" || e instanceof RangeError) {
      throw new HttpError(413, `request body too large: more than ${maxInflatedBytes} bytes after gunzip`);
    }
    throw new HttpError(400, `bad gzip body: ${e.message}`);
  }
}

/**
 * Reads the body, gunzips it when `Content-Encoding` is exactly `gzip` (anything else is read as plain JSON, as the
 * original did) and parses it as JSON. Throws HttpError: 413 (too large, raw or inflated), 408, `400 bad gzip body:
 * <detail>`, `400 invalid json: <detail>`; ClientGoneError when the client left.
 */
export async function readJsonBody(req: LegacyRequest, limits: BodyLimits): Promise<unknown> {
  let body = await readRawBody(req, limits);
  if (req.headers["content-encoding"] === "gzip") body = await gunzipCapped(body, limits.maxInflatedBytes);
  else if (body.length > limits.maxInflatedBytes) throw tooLarge(limits.maxInflatedBytes);
  if (body.length === 0) throw new HttpError(400, "invalid json: EOF"); // Go's json.Decoder on an empty body
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch (err) {
    throw new HttpError(400, `invalid json: ${(err as Error).message}`);
  }
}
