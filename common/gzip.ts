import { promisify } from "node:util";
import { gunzip as gunzipAsync, gunzipSync, gzipSync } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionGzip } from "@connectrpc/connect-node";
import type { Compression } from "@connectrpc/connect/protocol";

/**
 * gzip for Connect (agent and server), done synchronously for the small messages that make up nearly all traffic.
 *
 * connect-node's `compressionGzip` runs every message through zlib's asynchronous API: a zlib stream set up per
 * message, its work handed to libuv's thread pool and back. For an agent's 2.1 KB batch that cost 137–813 µs of
 * CPU per gzip (one at a time / 50 in flight) and 52–81 µs per gunzip on this project's 2-core VM, against 64–66 and
 * 23 µs done synchronously (`npm run bench:gzip`; docs/benchmarks.md, "Fleet scale", fourth session): the hand-off
 * to another thread, not the compression, was the cost. A 5,000-agent fleet simulator spent a third of its time there.
 *
 * Synchronous work blocks the event loop, so it is bounded: messages of up to {@link SYNC_COMPRESS_BYTES} are
 * compressed in place (about a millisecond at most), larger ones asynchronously as before; a message up to
 * {@link SYNC_GUNZIP_BYTES} compressed is inflated in place into at most {@link SYNC_INFLATED_BYTES} (a message that
 * inflates to more is inflated again asynchronously, up to the caller's `readMaxBytes`, so a small "zip bomb" costs
 * the event loop at most one bounded attempt). Errors are connect-node's: a message over `readMaxBytes` after
 * inflating is `resource_exhausted`, corrupt data `invalid_argument`.
 */
export const SYNC_COMPRESS_BYTES = 64 * 1024;
export const SYNC_GUNZIP_BYTES = 16 * 1024;
export const SYNC_INFLATED_BYTES = 1024 * 1024;

const gunzipInPool = promisify(gunzipAsync);

/**
 * Inflates gzip `bytes` into at most `maxOutputLength` bytes, in place when small (see above), else on libuv's thread
 * pool. Rejects with zlib's own errors (`ERR_BUFFER_TOO_LARGE` past the cap, `Z_DATA_ERROR` and the like for
 * corrupt data); the Connect compression below and the legacy REST API's body reader map them to their errors.
 */
export function gunzipBounded(bytes: Uint8Array, maxOutputLength: number): Promise<Uint8Array> {
  if (bytes.byteLength > SYNC_GUNZIP_BYTES) return gunzipInPool(bytes, { maxOutputLength });
  const limit = Math.min(maxOutputLength, SYNC_INFLATED_BYTES);
  try {
    return Promise.resolve(own(gunzipSync(bytes, { maxOutputLength: limit })));
  } catch (err) {
    if ((err as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE" && maxOutputLength > limit) return gunzipInPool(bytes, { maxOutputLength });
    return Promise.reject(err);
  }
}

export const gzip: Compression = {
  name: compressionGzip.name,
  compress(bytes) {
    if (bytes.byteLength > SYNC_COMPRESS_BYTES) return compressionGzip.compress(bytes);
    try {
      return Promise.resolve(own(gzipSync(bytes)));
    } catch (err) {
      return Promise.reject(new ConnectError("compression failed", Code.Internal, undefined, undefined, err));
    }
  },
  decompress(bytes, readMaxBytes) {
    if (bytes.byteLength === 0) return Promise.resolve(new Uint8Array(0));
    return gunzipBounded(bytes, readMaxBytes).then(asArrayBuffer, (err: unknown) => Promise.reject(inflateError(err, readMaxBytes)));
  },
};

/** The same bytes typed as over an ArrayBuffer (zlib's Buffers are; Connect's interface says so). */
function asArrayBuffer(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer ? (b as Uint8Array<ArrayBuffer>) : new Uint8Array(b);
}

/** The ConnectError connect-node gives for the same zlib failure. */
function inflateError(err: unknown, readMaxBytes: number): ConnectError {
  const code = (err as { code?: unknown }).code;
  if (code === "ERR_BUFFER_TOO_LARGE") {
    return new ConnectError(
      `message is larger than configured readMaxBytes ${readMaxBytes} after decompression`,
      Code.ResourceExhausted,
      undefined,
      undefined,
      err,
    );
  }
  const invalid = code === "Z_DATA_ERROR" || code === "ERR_PADDING_2" || (typeof code === "string" && code.startsWith("ERR__ERROR_FORMAT_"));
  return new ConnectError("decompression failed", invalid ? Code.InvalidArgument : Code.Internal, undefined, undefined, err);
}

/**
 * `buf` as a Uint8Array over a buffer of exactly its size. zlib's synchronous API returns a Buffer that views its
 * output chunk (16 KiB), so a message kept for long (a host's latest envelope is a piece of one) would keep the
 * chunk with it; a plain Uint8Array also makes `.slice()` a copy, as callers expect.
 */
function own(buf: Buffer): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(buf.byteLength);
  out.set(buf);
  return out;
}
