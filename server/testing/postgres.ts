import { randomBytes } from "node:crypto";
import pg from "pg";
import { redactUrl } from "../config.js";
import { it } from "vitest";

/** Admin connection of the PostgreSQL tests (creates and drops their databases). */
export const PG_ADMIN_URL = process.env["SPECTRA_TEST_PG"] ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** Why the PostgreSQL tests cannot run (no server answers), or undefined when they can. */
export async function postgresProblem(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3_000 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    await c.query("SELECT 1");
    return undefined;
  } catch (err) {
    return `no PostgreSQL at ${redactUrl(PG_ADMIN_URL)} (${(err as Error).message || String(err)})`;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** What a test file does when PostgreSQL is missing: fail under CI=true, otherwise skip, saying why. */
export function postgresMissing(problem: string, file: string): { fail: boolean; message: string } {
  if (process.env["CI"] === "true") {
    return { fail: true, message: `CI=true but ${problem}: CI must provide PostgreSQL (or set SPECTRA_TEST_PG)` };
  }
  return {
    fail: false,
    message: `${file} skipped: ${problem}; start PostgreSQL on 127.0.0.1:5432 or set SPECTRA_TEST_PG to run it`,
  };
}

/**
 * Registers, in the current describe block, what a suite does without PostgreSQL: a failing test under CI=true,
 * otherwise a skipped one, with the reason also printed (a skipped test is easy to miss in the summary).
 */
export function itPostgresMissing(problem: string, file: string): void {
  const { fail, message } = postgresMissing(problem, file);
  if (fail) {
    it("has PostgreSQL (CI=true)", () => {
      throw new Error(message);
    });
  } else {
    console.warn(message);
    it.skip(message, () => undefined);
  }
}

/** Databases made by {@link createTestDatabase}, dropped by {@link dropTestDatabases}. */
const made: string[] = [];

/** The URL of another database on the admin URL's server. */
export function databaseUrl(name: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5_000 });
  c.on("error", () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Creates an empty database `spectra_test_<random>` and returns its URL. */
export async function createTestDatabase(): Promise<string> {
  const name = `spectra_test_${randomBytes(6).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  made.push(name);
  return databaseUrl(name);
}

/** Drops every database this process created (connections still open to them are terminated). */
export async function dropTestDatabases(): Promise<void> {
  const names = made.splice(0);
  if (names.length === 0) return;
  await admin(async (c) => {
    for (const name of names) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
}

/** Runs SQL against one test database (inspection in tests). */
export async function withDatabase<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  c.on("error", () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}
