import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { UnauthenticatedError } from "../errors.js";
import { untilRevoked } from "./agent-service.js";
import { compact, compactGzip } from "./compression.js";

describe("compactGzip", () => {
  it("inflates into a plain Uint8Array of exactly the message's size", async () => {
    const msg = new Uint8Array(2_000).map((_, i) => (i * 7) % 251);
    const out = await compactGzip.decompress(gzipSync(msg), 1 << 20);
    expect(out).toEqual(msg);
    expect(Buffer.isBuffer(out)).toBe(false);
    expect(out.buffer.byteLength).toBe(2_000);
    // so a piece's slice() is a copy, not a view holding the whole message
    expect(out.subarray(10, 20).slice().buffer.byteLength).toBe(10);
  });

  it("keeps connect's limits and errors, and compresses as connect does", async () => {
    await expect(compactGzip.decompress(gzipSync(new Uint8Array(5_000)), 1_000)).rejects.toSatisfy(
      (e: unknown) => e instanceof ConnectError && e.code === Code.ResourceExhausted,
    );
    await expect(compactGzip.decompress(new Uint8Array([1, 2, 3]), 1_000)).rejects.toSatisfy(
      (e: unknown) => e instanceof ConnectError && e.code === Code.InvalidArgument,
    );
    expect((await compactGzip.decompress(new Uint8Array(0), 10)).length).toBe(0);
    const msg = new TextEncoder().encode("x".repeat(3_000));
    expect(await compactGzip.decompress(await compactGzip.compress(msg), 1 << 20)).toEqual(msg);
  });

  it("compact() leaves an exact plain array alone and copies views and Buffers", () => {
    const exact = new Uint8Array(8);
    expect(compact(exact)).toBe(exact);
    const view = new Uint8Array(new ArrayBuffer(64), 8, 8);
    expect(compact(view).buffer.byteLength).toBe(8);
    const buf = Buffer.alloc(8) as unknown as Uint8Array<ArrayBuffer>;
    expect(Buffer.isBuffer(compact(buf))).toBe(false);
  });
});

describe("untilRevoked", () => {
  const watch = () => {
    let cb: ((reason: string) => void) | undefined;
    return { onRevoked: (f: (reason: string) => void) => (cb = f), revoke: (reason: string) => cb?.(reason) };
  };

  it("passes every message through and ends with the source", async () => {
    async function* src() {
      yield 1;
      yield 2;
      yield 3;
    }
    const out: number[] = [];
    for await (const x of untilRevoked(src(), watch())) out.push(x);
    expect(out).toEqual([1, 2, 3]);
  });

  it("ends with UnauthenticatedError while waiting for the next message, and closes the source", async () => {
    let returned = false;
    let release!: () => void;
    const src: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => {
        let n = 0;
        return {
          next: () => (n++ === 0 ? Promise.resolve({ value: 1, done: false }) : new Promise((r) => (release = () => r({ value: 2, done: false })))),
          return: async () => {
            returned = true;
            return { value: undefined, done: true };
          },
        };
      },
    };
    const w = watch();
    const it = untilRevoked(src, w);
    expect(await it.next()).toEqual({ value: 1, done: false });
    const waiting = it.next();
    w.revoke("agent key revoked");
    await expect(waiting).rejects.toBeInstanceOf(UnauthenticatedError);
    expect(returned).toBe(true);
    release();
  });

  it("ends before reading when the key was revoked between two messages", async () => {
    const w = watch();
    async function* src() {
      yield 1;
      w.revoke("gone");
      yield 2;
    }
    const it = untilRevoked(src(), w);
    expect(await it.next()).toEqual({ value: 1, done: false });
    // the revocation came while the consumer held message 1: message 2 is read, then the wait after it fails
    const seen: number[] = [];
    await expect(
      (async () => {
        for (;;) {
          const r = await it.next();
          if (r.done) break;
          seen.push(r.value);
        }
      })(),
    ).rejects.toBeInstanceOf(UnauthenticatedError);
    expect(seen.length).toBeLessThanOrEqual(1);
  });

  it("does not keep the messages it passed on while the stream stays open", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const refs: Array<WeakRef<object>> = [];
    let more!: () => void;
    const gate = () => new Promise<void>((r) => (more = r));
    async function* src() {
      for (let i = 0; i < 20; i++) {
        const msg = { i, body: new Uint8Array(1_000) };
        refs.push(new WeakRef(msg));
        yield msg;
      }
      await gate(); // the stream stays open
    }
    const it = untilRevoked(src(), watch());
    for (let i = 0; i < 20; i++) await it.next();
    const last = it.next(); // waiting, as a stream between two batches
    await new Promise((r) => setTimeout(r, 10));
    gc();
    await new Promise((r) => setTimeout(r, 10));
    gc();
    expect(refs.filter((r) => r.deref() !== undefined).length).toBeLessThanOrEqual(2);
    more();
    await last;
  });
});

