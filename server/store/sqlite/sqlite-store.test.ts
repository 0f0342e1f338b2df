import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { describeStoreContract } from "../store-contract.js";
import { openSqliteStore } from "./sqlite-store.js";
import Database from "better-sqlite3";
import { sqliteMigrations } from "./migrations.js";

const dir = mkdtempSync(join(tmpdir(), "spectra-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
let current = "";

describeStoreContract("sqlite (file)", {
  async open() {
    current = join(dir, `store-${++n}.db`);
    return openSqliteStore(current);
  },
  async reopen() {
    return openSqliteStore(current);
  },
});

describe("sqlite store specifics", () => {
  it("runs in WAL mode and records the schema version", async () => {
    const path = join(dir, "wal.db");
    await openSqliteStore(path).close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("user_version", { simple: true })).toBe(sqliteMigrations.length);
    db.close();
  });

  it("refuses a database written by a newer server", () => {
    const path = join(dir, "newer.db");
    const db = new Database(path);
    db.pragma(`user_version = ${sqliteMigrations.length + 1}`);
    db.close();
    expect(() => openSqliteStore(path)).toThrow(/newer than this server/);
  });

  it("with groupCommitMs, commits batches that arrive within that time of the previous commit together", async () => {
    // Which event-loop turn each write resolved in: one group commit resolves its writes in one turn.
    let turn = 0;
    let ticking = true;
    const tick = () => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    tick();
    const write = (store: ReturnType<typeof openSqliteStore>, seq: number) =>
      store
        .writeBatch({ hostname: "h", sessionId: "s", sequence: BigInt(seq), envelopes: [], collectorStatus: [], receivedAtMs: 1 })
        .then(() => turn);
    const run = async (groupCommitMs: number) => {
      const store = openSqliteStore(join(dir, `group-${groupCommitMs}.db`), { groupCommitMs });
      const first = await write(store, 1); // nothing committed before: at once
      const second = write(store, 2);
      await new Promise((r) => setTimeout(r, 20));
      const third = write(store, 3); // 20 ms later, still within 1 s of the first commit
      const turns = [first, await second, await third];
      await store.close();
      return turns;
    };
    const [a1, b1, c1] = await run(1_000);
    expect(b1).toBe(c1); // one transaction for both
    expect(b1).toBeGreaterThan(a1!);
    const [, b0, c0] = await run(0);
    expect(c0).toBeGreaterThan(b0!); // without a window: a commit per turn with writes
    ticking = false;
  });
});
