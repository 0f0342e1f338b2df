/**
 * A fresh PostgreSQL database per benchmark run (created, measured, dropped), like server/testing/postgres.ts does
 * for tests. Admin connection: SPECTRA_BENCH_PG, default postgres://postgres@127.0.0.1:5432/postgres (loopback).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { onInterrupt } from "./proc.js";

export const PG_ADMIN_URL = process.env["SPECTRA_BENCH_PG"] ?? "postgres://postgres@127.0.0.1:5432/postgres";

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  c.on("error", () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Why PostgreSQL cannot be used, or undefined. */
export async function postgresProblem(): Promise<string | undefined> {
  try {
    await withClient(PG_ADMIN_URL, (c) => c.query("SELECT 1"));
    return undefined;
  } catch (err) {
    return (err as Error).message || String(err);
  }
}

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function createBenchDatabase(prefix = "spectra_bench"): Promise<BenchDatabase> {
  const name = `${prefix}_${randomBytes(5).toString("hex")}`;
  await withClient(PG_ADMIN_URL, (c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  let dropped = false;
  const unregister = onInterrupt(() => withClient(PG_ADMIN_URL, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)));
  return {
    name,
    url: u.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      unregister();
      await withClient(PG_ADMIN_URL, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/** Runs queries against a database. */
export function onDatabase<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return withClient(url, fn);
}

/** pg_database_size and the size of every top-level table (partitions, indexes and TOAST included), largest first. */
export async function databaseSizes(url: string, name: string): Promise<{ total: number; tables: Array<{ name: string; bytes: number }> }> {
  return withClient(url, async (c) => {
    const total = Number((await c.query("SELECT pg_database_size($1) AS n", [name])).rows[0].n);
    const rows = (
      await c.query(`
        SELECT c.relname AS name,
               CASE WHEN c.relkind = 'p'
                    THEN (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t)
                    ELSE pg_total_relation_size(c.oid) END AS bytes
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        ORDER BY 2 DESC`)
    ).rows as Array<{ name: string; bytes: string }>;
    return { total, tables: rows.map((r) => ({ name: r.name, bytes: Number(r.bytes) })) };
  });
}
