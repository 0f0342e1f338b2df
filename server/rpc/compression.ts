import { gzip } from "../../common/gzip.js";
import type { Compression } from "@connectrpc/connect/protocol";

/**
 * The project's gzip (common/gzip.ts: small messages in place, larger ones through zlib's thread pool), with each
 * inflated message in a Uint8Array of its own size. Node's zlib inflates into 16 KiB output chunks and hands back a
 * Buffer view into the first one when the message fits (an agent's batch inflates to ~2 KiB), so whatever kept a
 * piece of a message (the envelope bytes the store and the head keep as a host's latest envelope; a batch waiting
 * for its commit) kept 16 KiB with it. A plain Uint8Array also makes
 * `.slice()` of a piece a copy (on a Buffer it is a view). The copy costs a memcpy of the message, next to the
 * inflate itself.
 */
export const compactGzip: Compression = {
  name: gzip.name,
  compress: (bytes) => gzip.compress(bytes),
  async decompress(bytes, readMaxBytes) {
    return compact(await gzip.decompress(bytes, readMaxBytes));
  },
};

/** `bytes` as a plain Uint8Array over a buffer of exactly its size (copied unless it already is one). */
export function compact(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && !Buffer.isBuffer(bytes)) return bytes;
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out;
}
