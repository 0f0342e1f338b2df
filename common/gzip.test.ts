import { gunzipSync, gzipSync } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionGzip } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { gzip, SYNC_COMPRESS_BYTES, SYNC_GUNZIP_BYTES, SYNC_INFLATED_BYTES } from "./gzip.js";
import { prng } from "./prng.js";

/** Bytes that compress about as an agent's batch does (repeated field tags, varying numbers). */
function batchLike(n: number, seed = 1): Uint8Array {
  const rnd = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = i % 9 < 3 ? 0x0a + (i % 9) : Math.floor(rnd() * 256) & (i % 5 === 0 ? 0xff : 0x0f);
  return out;
}

/** A plain Uint8Array that is the whole of its buffer (not a view into a zlib chunk). */
function expectOwnBuffer(b: Uint8Array): void {
  expect(Buffer.isBuffer(b)).toBe(false);
  expect(b.byteOffset).toBe(0);
  expect(b.buffer.byteLength).toBe(b.byteLength);
}

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

describe("gzip (Connect compression)", () => {
  it("round-trips small messages (in place) and large ones (thread pool), readable by connect-node's gzip and back", async () => {
    for (const size of [1, 1024, 2500, SYNC_COMPRESS_BYTES, SYNC_COMPRESS_BYTES + 1, 300 * 1024]) {
      const msg = batchLike(size, size);
      const z = await gzip.compress(msg);
      if (size <= SYNC_COMPRESS_BYTES) expectOwnBuffer(z);
      expect(new Uint8Array(gunzipSync(z))).toEqual(msg);
      expect(new Uint8Array(await compressionGzip.decompress(z, 1 << 24))).toEqual(msg);
      const zz = await compressionGzip.compress(msg);
      const back = await gzip.decompress(zz, 1 << 24);
      if (zz.byteLength <= SYNC_GUNZIP_BYTES) expectOwnBuffer(back);
      expect(new Uint8Array(back)).toEqual(msg);
    }
  });

  it("names itself gzip and inflates an empty message to nothing", async () => {
    expect(gzip.name).toBe("gzip");
    expect(await gzip.decompress(new Uint8Array(0), 100)).toEqual(new Uint8Array(0));
  });

  it("rejects a message over readMaxBytes after inflating as resource_exhausted, small or large", async () => {
    const small = gzipSync(batchLike(5000));
    expect(small.byteLength).toBeLessThanOrEqual(SYNC_GUNZIP_BYTES);
    const e1 = await rejection(gzip.decompress(small, 4999));
    expect(e1.code).toBe(Code.ResourceExhausted);
    expect(e1.rawMessage).toBe("message is larger than configured readMaxBytes 4999 after decompression");
    expect(await gzip.decompress(small, 5000)).toEqual(batchLike(5000));

    const large = gzipSync(batchLike(200 * 1024, 7));
    expect(large.byteLength).toBeGreaterThan(SYNC_GUNZIP_BYTES);
    expect((await rejection(gzip.decompress(large, 100 * 1024))).code).toBe(Code.ResourceExhausted);
  });

  it("inflates a small message that grows past the in-place bound again up to readMaxBytes, and no further", async () => {
    const big = new Uint8Array(SYNC_INFLATED_BYTES * 3).fill(7); // 3 MiB of one byte: a few KiB compressed
    const bomb = gzipSync(big);
    expect(bomb.byteLength).toBeLessThanOrEqual(SYNC_GUNZIP_BYTES);
    const out = await gzip.decompress(bomb, 4 * SYNC_INFLATED_BYTES);
    expect(out.byteLength).toBe(big.byteLength);
    expect(out.every((b) => b === 7)).toBe(true);
    const err = await rejection(gzip.decompress(bomb, 2 * SYNC_INFLATED_BYTES));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toContain(`readMaxBytes ${2 * SYNC_INFLATED_BYTES}`);
  });

  it("rejects data that is not gzip as invalid_argument, as connect-node does", async () => {
    const z = gzipSync(batchLike(3000));
    const corrupt = new Uint8Array(z);
    corrupt.fill(0xff, 10, 40);
    for (const bad of [new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), corrupt]) {
      const ours = await rejection(gzip.decompress(bad, 1 << 20));
      const theirs = await rejection(compressionGzip.decompress(bad, 1 << 20));
      expect(ours.code).toBe(theirs.code);
      expect(ours.code).toBe(Code.InvalidArgument);
    }
  });
});
