import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/logger.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Store } from "../store/store.js";
import { createAdminTokens } from "./admin-tokens.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function open(): Store {
  const dir = mkdtempSync(join(tmpdir(), "spectra-tokens-"));
  const store = openSqliteStore(join(dir, "s.db"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }), () => store.close());
  return store;
}

/** Resolves with the reason once `cb` is called. */
function called() {
  let resolve!: (reason: string) => void;
  const p = new Promise<string>((r) => (resolve = r));
  return { cb: resolve, p };
}

describe("admin token watches (streams opened with a token)", () => {
  it("are told once when their token is revoked; others and stopped watches are not", async () => {
    const store = open();
    const tokens = createAdminTokens({ store, logger: silentLogger(), clock: () => 1_000 });
    const a = (await tokens.create("a", "viewer", "test")).record;
    const b = (await tokens.create("b", "viewer", "test")).record;
    const calls: string[] = [];
    tokens.watch(a.id, (r) => calls.push(`a1:${r}`));
    tokens.watch(a.id, (r) => calls.push(`a2:${r}`));
    const stopped = tokens.watch(a.id, () => calls.push("stopped"));
    tokens.watch(b.id, () => calls.push("b"));
    stopped();
    await new Promise((r) => setTimeout(r, 20)); // the watches' own check of the token finds it valid
    expect(calls).toEqual([]);
    await tokens.revoke("a", "test");
    expect(calls).toEqual(["a1:admin token revoked", "a2:admin token revoked"]);
    await tokens.revoke("a", "test"); // again: nobody is watching any more
    expect(calls).toHaveLength(2);
  });

  it("catch a revocation that happened before the watch began (another process, no notification)", async () => {
    const store = open();
    const tokens = createAdminTokens({ store, logger: silentLogger(), clock: () => 1_000 });
    const { record } = await tokens.create("late", "viewer", "test");
    await store.revokeAdminToken(record.id, 2_000); // behind this instance's back
    const w = called();
    tokens.watch(record.id, w.cb);
    expect(await w.p).toBe("admin token revoked");
  });
});
