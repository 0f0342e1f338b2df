/** Space per table (indexes folded into their table) of a SQLite database, from the dbstat virtual table. */
import Database from "better-sqlite3";

export interface SqliteSpace {
  pageSize: number;
  pages: number;
  freePages: number;
  /** Largest first; empty when dbstat is not compiled in. */
  tables: Array<{ name: string; bytes: number }>;
}

export function sqliteSpace(db: Database.Database): SqliteSpace {
  const pages = db.pragma("page_count", { simple: true }) as number;
  const freePages = db.pragma("freelist_count", { simple: true }) as number;
  const pageSize = db.pragma("page_size", { simple: true }) as number;
  let tables: Array<{ name: string; bytes: number }> = [];
  try {
    const rows = db.prepare("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name").all() as Array<{ name: string; bytes: number }>;
    const owner = new Map<string, string>();
    for (const r of db.prepare("SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')").all() as Array<{ name: string; tbl_name: string }>) {
      owner.set(r.name, r.tbl_name);
    }
    const sum = new Map<string, number>();
    for (const r of rows) {
      const t = owner.get(r.name) ?? (r.name.startsWith("sqlite_autoindex_") ? r.name.replace(/^sqlite_autoindex_(.*)_\d+$/, "$1") : r.name);
      sum.set(t, (sum.get(t) ?? 0) + r.bytes);
    }
    tables = [...sum].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes);
  } catch {
    tables = [];
  }
  return { pageSize, pages, freePages, tables };
}

export function openReadOnly(path: string): Database.Database {
  return new Database(path, { readonly: true });
}
