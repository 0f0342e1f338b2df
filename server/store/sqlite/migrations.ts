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
  // 4: access control (issue 7): admin tokens, enrollment tokens, per-agent access records. Secrets are never
  // stored, only their SHA-256 (server/auth/credentials.ts).
  `
  CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    secret_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    last_used_ms INTEGER,
    revoked_ms INTEGER
  ) WITHOUT ROWID;

  CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    single_use INTEGER NOT NULL,
    auto_approve INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    labels TEXT NOT NULL,
    uses INTEGER NOT NULL DEFAULT 0,
    revoked_ms INTEGER,
    created_by TEXT NOT NULL
  );
  CREATE INDEX enrollment_tokens_created ON enrollment_tokens (created_ms);

  CREATE TABLE agent_access (
    hostname TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'revoked')),
    enrollment_id TEXT UNIQUE,
    enrollment_secret_hash TEXT,
    token_id TEXT,
    labels TEXT NOT NULL,
    requested_host BLOB,
    key_id TEXT UNIQUE,
    key_hash TEXT,
    key_used INTEGER NOT NULL,
    key_pickup INTEGER NOT NULL,
    next_key_id TEXT UNIQUE,
    next_key_hash TEXT,
    next_key_issued_ms INTEGER,
    rotation_requested_ms INTEGER,
    report_interval_ms INTEGER,
    diagnostics TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 5: agent status timeline (issue 7): every online / stale / offline change of every agent, so a history query can
  // tell "the agent was offline" from "no data".
  `
  CREATE TABLE agent_status (
    id INTEGER PRIMARY KEY,
    hostname TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('online', 'stale', 'offline'))
  );
  CREATE INDEX agent_status_host_at ON agent_status (hostname, at_ms, id);
  `,
  // 6: mutual TLS (issue 7): the SHA-256 fingerprint of the client certificate an agent is pinned to.
  `
  ALTER TABLE agent_access ADD COLUMN cert_fingerprint TEXT;
  `,
  // 7: compact chunks (issue 6, "Compact storage"): one b-tree clustered by (series_id, max_t, id) holds the rows,
  // instead of a rowid table with an index on (series_id, max_t) and one on (max_t): a series' chunks are stored
  // together in time order and the two index entries per chunk are gone (retention walks the series). Chunk ids,
  // which the time-series engine keeps to rewrite a growing chunk, come from chunk_ids. Existing chunks are copied.
  `
  CREATE TABLE chunks_v7 (
    series_id INTEGER NOT NULL,
    max_t INTEGER NOT NULL,
    id INTEGER NOT NULL,
    min_t INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (series_id, max_t, id)
  ) WITHOUT ROWID;
  INSERT INTO chunks_v7 (series_id, max_t, id, min_t, count, data)
    SELECT series_id, max_t, id, min_t, count, data FROM chunks ORDER BY series_id, max_t, id;
  CREATE TABLE chunk_ids (next_id INTEGER NOT NULL);
  INSERT INTO chunk_ids (next_id) SELECT coalesce(max(id), 0) + 1 FROM chunks;
  DROP TABLE chunks;
  ALTER TABLE chunks_v7 RENAME TO chunks;
  `,
];
