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
});
