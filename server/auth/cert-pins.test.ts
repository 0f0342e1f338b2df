import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import { createAgentStreams } from "../agents/agent-streams.js";
import { PermissionDeniedError } from "../errors.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { AgentAccessRecord, Store } from "../store/store.js";
import { clearCertPin, createCertPins } from "./cert-pins.js";
import type { AgentPrincipal } from "./principal.js";

const FP_A = `sha256:${"aa".repeat(32)}`;
const FP_B = `sha256:${"bb".repeat(32)}`;
const web01: AgentPrincipal = { kind: "agent", hostname: "web-01", keyId: "00000000000000a1" };

const dirs: string[] = [];
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), "spectra-pins-"));
  dirs.push(dir);
  const store = openSqliteStore(join(dir, "s.db"));
  stores.push(store);
  const rec: AgentAccessRecord = {
    hostname: "web-01",
    version: 0,
    state: "approved",
    labels: {},
    keyId: web01.keyId,
    keyHash: "cd".repeat(32),
    keyUsed: true,
    keyPickup: false,
    diagnostics: [],
    createdAtMs: 1,
    updatedAtMs: 1,
  };
  await store.putAgentAccess(rec, undefined);
  const streams = createAgentStreams();
  let reads = 0;
  const get = (h: string) => {
    reads++;
    return store.getAgentAccess(h);
  };
  const pins = createCertPins({ store, get, streams, logger: silentLogger(), clock: () => 5_000 });
  return { store, streams, pins, reads: () => reads };
}

const refusal = async (p: Promise<void>) => {
  try {
    await p;
    return "ok";
  } catch (err) {
    expect(err).toBeInstanceOf(PermissionDeniedError);
    return (err as Error).message;
  }
};

describe("certificate pins", () => {
  it("pins the first certificate, then refuses another one or none", async () => {
    const { store, pins } = await setup();
    expect(await refusal(pins.check(web01, undefined))).toBe("ok"); // no pin, no certificate: as before mTLS
    expect((await store.getAgentAccess("web-01"))?.certFingerprint).toBeUndefined();
    expect(await refusal(pins.check(web01, FP_A))).toBe("ok");
    expect(await store.getAgentAccess("web-01")).toMatchObject({ certFingerprint: FP_A, version: 2, updatedAtMs: 5_000 });
    expect(await refusal(pins.check(web01, FP_A))).toBe("ok");
    expect(await refusal(pins.check(web01, FP_B))).toBe('the key of "web-01" is pinned to another client certificate');
    expect(await refusal(pins.check(web01, undefined))).toMatch(/pinned to a client certificate; connect with it/);
  });

  it("reads a host's pin once, and again after its access record changed (here or, via notifications, elsewhere)", async () => {
    const { store, streams, pins, reads } = await setup();
    await pins.check(web01, FP_A); // pins it (a change of the record: the cache forgets the host)
    await pins.check(web01, FP_A); // reads it
    const after = reads();
    for (let i = 0; i < 5; i++) await pins.check(web01, FP_A);
    expect(reads()).toBe(after);
    // An admin clears the pin: the cache forgets it, and the next certificate is pinned.
    expect(await clearCertPin(store, streams, "web-01", () => 6_000)).toBe(FP_A);
    expect(await clearCertPin(store, streams, "web-01", () => 6_000)).toBeUndefined();
    expect(await refusal(pins.check(web01, FP_B))).toBe("ok");
    expect((await store.getAgentAccess("web-01"))?.certFingerprint).toBe(FP_B);
    await pins.check(web01, FP_B); // cached again
    // Another server pinned differently (written behind this one's back, then announced): the next check sees it.
    const rec = (await store.getAgentAccess("web-01"))!;
    await store.putAgentAccess({ ...rec, certFingerprint: FP_A }, rec.version);
    expect(await refusal(pins.check(web01, FP_B))).toBe("ok"); // still cached: no notification yet
    streams.changed(null); // notifications may have been missed: everything is read again
    expect(await refusal(pins.check(web01, FP_B))).toMatch(/another client certificate/);
  });

  it("of two certificates racing to be pinned first, one wins and the other is refused", async () => {
    const { store, pins } = await setup();
    const results = await Promise.all([refusal(pins.check(web01, FP_A)), refusal(pins.check(web01, FP_B))]);
    expect(results.filter((r) => r === "ok")).toHaveLength(1);
    const pinned = (await store.getAgentAccess("web-01"))?.certFingerprint;
    expect(results[pinned === FP_A ? 1 : 0]).toMatch(/another client certificate/);
  });
});
