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
  // 3: time-series storage (issue 6). Numeric payloads go to series (compressed chunks and rollup windows) through
  // the write-ahead log; the envelopes table keeps only snapshot payloads from now on (rows written before stay).
  `
  CREATE TABLE wal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    payload BLOB NOT NULL
  );

  CREATE TABLE host_counters (
    hostname TEXT PRIMARY KEY,
    envelopes INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO host_counters (hostname, envelopes) SELECT hostname, count(*) FROM envelopes GROUP BY hostname;

  CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    hostname TEXT NOT NULL,
    metric TEXT NOT NULL,
    labels TEXT NOT NULL,
    flushed_wal_id INTEGER NOT NULL DEFAULT 0,
    last_t INTEGER,
    last_v REAL,
    UNIQUE (hostname, metric, labels)
  );
  CREATE INDEX series_metric ON series (metric, hostname);

  CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    min_t INTEGER NOT NULL,
    max_t INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL
  );
  CREATE INDEX chunks_series_max ON chunks (series_id, max_t);
  CREATE INDEX chunks_max ON chunks (max_t);

  CREATE TABLE rollups (
    tier TEXT NOT NULL,
    series_id INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tier, series_id, window_start)
  ) WITHOUT ROWID;
  CREATE INDEX rollups_start ON rollups (tier, window_start);

  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;

  DROP INDEX envelopes_host_type_ts;
  CREATE INDEX envelopes_host_ts ON envelopes (hostname, ts_ms);
  CREATE INDEX envelopes_ts ON envelopes (ts_ms);
  `,
];
