/**
 * Versioned schema of the SQLite store. Append new steps; never edit a released one.
 * The database's `user_version` records how many steps ran.
 */
export const sqliteMigrations: readonly string[] = [
  `
  CREATE TABLE metric_batches (
    hostname TEXT NOT NULL,
    session_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (hostname, session_id, sequence)
  ) WITHOUT ROWID;

  CREATE TABLE envelopes (
    id INTEGER PRIMARY KEY,
    hostname TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    payload BLOB NOT NULL
  );
  CREATE INDEX envelopes_host_type_ts ON envelopes (hostname, type, ts_ms);

  CREATE TABLE latest (
    hostname TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (hostname, type, key)
  ) WITHOUT ROWID;

  CREATE TABLE agents (
    hostname TEXT PRIMARY KEY,
    host_info BLOB NOT NULL,
    collectors TEXT NOT NULL,
    registered_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    collector_status TEXT
  );

  CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    state INTEGER NOT NULL,
    command BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    delivered_ms INTEGER,
    finished_ms INTEGER,
    outcome BLOB
  );
  CREATE INDEX commands_host_state ON commands (hostname, state, created_ms);
  `,
  // 2: who triggered each command (audit trail), and listing newest first.
  `
  ALTER TABLE commands ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
  CREATE INDEX commands_created ON commands (created_ms);
  `,
];
