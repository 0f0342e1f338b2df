/**
 * Versioned schema of the PostgreSQL store. Append new steps; never edit a released one.
 * `schema_migrations` records every step that ran (version = its 1-based index); each step runs in its own
 * transaction, under an advisory lock so that two servers starting at once do not both migrate.
 *
 * Text columns use the "C" collation: byte order, the same order as SQLite's, and cheaper comparisons.
 * Timestamps are bigint milliseconds. Chunks are range-partitioned by `max_t`, one partition per UTC day
 * (`chunks_d<days since epoch>`, created on demand by the store), rollups by tier and then by `window_start`, one
 * partition per UTC month (`rollups_<tier>_m<YYYYMM>`); each has a DEFAULT partition for rows outside any day or
 * month partition. Retention drops whole partitions.
 */
export const postgresMigrations: readonly string[] = [
  `
  CREATE TABLE metric_batches (
    hostname text COLLATE "C" NOT NULL,
    session_id text COLLATE "C" NOT NULL,
    sequence bigint NOT NULL,
    received_ms bigint NOT NULL,
    PRIMARY KEY (hostname, session_id, sequence)
  );

  -- The ingest write-ahead log: a batch stays here until its samples are in chunks. Each server instance replays
  -- only its own rows.
  CREATE TABLE wal (
    id bigserial PRIMARY KEY,
    instance text COLLATE "C" NOT NULL,
    hostname text COLLATE "C" NOT NULL,
    received_ms bigint NOT NULL,
    payload bytea NOT NULL
  );
  CREATE INDEX wal_instance_id ON wal (instance, id);

  -- Snapshot envelopes only (process and service lists, containers, ...); numeric payloads live in series.
  CREATE TABLE envelopes (
    id bigserial PRIMARY KEY,
    hostname text COLLATE "C" NOT NULL,
    type text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    ts_ms bigint NOT NULL,
    received_ms bigint NOT NULL,
    payload bytea NOT NULL
  );
  CREATE INDEX envelopes_host_ts ON envelopes (hostname, ts_ms);
  CREATE INDEX envelopes_host_type_ts ON envelopes (hostname, type, ts_ms);
  CREATE INDEX envelopes_ts ON envelopes (ts_ms);

  CREATE TABLE latest (
    hostname text COLLATE "C" NOT NULL,
    type text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    ts_ms bigint NOT NULL,
    payload bytea NOT NULL,
    PRIMARY KEY (hostname, type, key)
  );

  CREATE TABLE host_counters (
    hostname text COLLATE "C" PRIMARY KEY,
    envelopes bigint NOT NULL
  );

  CREATE TABLE agents (
    hostname text COLLATE "C" PRIMARY KEY,
    host_info bytea NOT NULL,
    collectors text NOT NULL,
    registered_ms bigint NOT NULL,
    last_seen_ms bigint NOT NULL,
    collector_status text
  );

  CREATE TABLE commands (
    id text COLLATE "C" PRIMARY KEY,
    seq bigserial NOT NULL,
    hostname text COLLATE "C" NOT NULL,
    state integer NOT NULL,
    command bytea NOT NULL,
    created_ms bigint NOT NULL,
    delivered_ms bigint,
    finished_ms bigint,
    outcome bytea,
    requested_by text NOT NULL DEFAULT ''
  );
  CREATE INDEX commands_host_state ON commands (hostname, state, created_ms, seq);
  CREATE INDEX commands_created ON commands (created_ms, seq);
  CREATE INDEX commands_open ON commands (created_ms) WHERE state IN (1, 2);

  CREATE TABLE series (
    id bigserial PRIMARY KEY,
    hostname text COLLATE "C" NOT NULL,
    metric text COLLATE "C" NOT NULL,
    labels text COLLATE "C" NOT NULL,
    flushed_wal_id bigint NOT NULL DEFAULT 0,
    last_t bigint,
    last_v double precision,
    UNIQUE (hostname, metric, labels)
  );
  CREATE INDEX series_metric ON series (metric, hostname);

  CREATE TABLE chunks (
    id bigserial NOT NULL,
    series_id bigint NOT NULL,
    min_t bigint NOT NULL,
    max_t bigint NOT NULL,
    count integer NOT NULL,
    data bytea NOT NULL
  ) PARTITION BY RANGE (max_t);
  CREATE TABLE chunks_default PARTITION OF chunks DEFAULT;
  CREATE INDEX chunks_series_max ON chunks (series_id, max_t);

  CREATE TABLE rollups (
    tier text COLLATE "C" NOT NULL,
    series_id bigint NOT NULL,
    window_start bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tier, series_id, window_start)
  ) PARTITION BY LIST (tier);
  CREATE TABLE rollups_1m PARTITION OF rollups FOR VALUES IN ('1m') PARTITION BY RANGE (window_start);
  CREATE TABLE rollups_1m_default PARTITION OF rollups_1m DEFAULT;
  CREATE TABLE rollups_1h PARTITION OF rollups FOR VALUES IN ('1h') PARTITION BY RANGE (window_start);
  CREATE TABLE rollups_1h_default PARTITION OF rollups_1h DEFAULT;
  CREATE TABLE rollups_default PARTITION OF rollups DEFAULT;

  -- Small engine state written with each flush (getMeta), per server instance like the WAL.
  CREATE TABLE meta (
    instance text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (instance, key)
  );
  `,
  // 2: access control (issue 7): admin tokens, enrollment tokens, per-agent access records. Secrets are never
  // stored, only their SHA-256 (server/auth/credentials.ts).
  `
  CREATE TABLE admin_tokens (
    id text COLLATE "C" PRIMARY KEY,
    name text COLLATE "C" NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    secret_hash text NOT NULL,
    created_ms bigint NOT NULL,
    created_by text NOT NULL,
    last_used_ms bigint,
    revoked_ms bigint
  );

  CREATE TABLE enrollment_tokens (
    id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    secret_hash text NOT NULL,
    single_use boolean NOT NULL,
    auto_approve boolean NOT NULL,
    created_ms bigint NOT NULL,
    expires_ms bigint,
    labels text NOT NULL,
    uses integer NOT NULL DEFAULT 0,
    revoked_ms bigint,
    created_by text NOT NULL
  );
  CREATE INDEX enrollment_tokens_created ON enrollment_tokens (created_ms);

  CREATE TABLE agent_access (
    hostname text COLLATE "C" PRIMARY KEY,
    version integer NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'revoked')),
    enrollment_id text COLLATE "C" UNIQUE,
    enrollment_secret_hash text,
    token_id text COLLATE "C",
    labels text NOT NULL,
    requested_host bytea,
    key_id text COLLATE "C" UNIQUE,
    key_hash text,
    key_used boolean NOT NULL,
    key_pickup boolean NOT NULL,
    next_key_id text COLLATE "C" UNIQUE,
    next_key_hash text,
    next_key_issued_ms bigint,
    rotation_requested_ms bigint,
    report_interval_ms bigint,
    diagnostics text NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL
  );
  `,
  // 3: agent status timeline (issue 7): every online / stale / offline change of every agent, so a history query can
  // tell "the agent was offline" from "no data".
  `
  CREATE TABLE agent_status (
    id bigserial PRIMARY KEY,
    hostname text COLLATE "C" NOT NULL,
    at_ms bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('online', 'stale', 'offline'))
  );
  CREATE INDEX agent_status_host_at ON agent_status (hostname, at_ms, id);
  `,
  // 4: mutual TLS (issue 7): the SHA-256 fingerprint of the client certificate an agent is pinned to.
  `
  ALTER TABLE agent_access ADD COLUMN cert_fingerprint text;
  `,
  // 5: compact chunks (issue 6, "Compact storage"). Chunks are indexed and day-partitioned on t_end, the end of the
  // aligned 2-hour window holding the chunk's first sample (or max_t when the chunk reaches past it: out-of-order
  // chunks), instead of max_t. t_end >= max_t > t_end - 2 h, so reads and retention stay exact, and t_end does not
  // change while an open chunk grows: the rewrite at every flush touches no indexed column and can be a HOT update
  // (no new index entry; the old version is pruned within its page when the page has room). Existing chunks are
  // copied; ids and the id sequence are kept.
  `
  ALTER SEQUENCE chunks_id_seq OWNED BY NONE;
  ALTER TABLE chunks RENAME TO chunks_v4;
  DO $$
  DECLARE r record;
  BEGIN
    FOR r IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'chunks_v4'::regclass LOOP
      EXECUTE format('ALTER TABLE %I RENAME TO %I', r.relname, r.relname || '_v4');
    END LOOP;
  END $$;
  ALTER INDEX chunks_series_max RENAME TO chunks_series_max_v4;

  CREATE TABLE chunks (
    id bigint NOT NULL DEFAULT nextval('chunks_id_seq'),
    series_id bigint NOT NULL,
    t_end bigint NOT NULL,
    min_t bigint NOT NULL,
    max_t bigint NOT NULL,
    count integer NOT NULL,
    data bytea NOT NULL
  ) PARTITION BY RANGE (t_end);
  ALTER SEQUENCE chunks_id_seq OWNED BY chunks.id;
  CREATE TABLE chunks_default PARTITION OF chunks DEFAULT;
  CREATE INDEX chunks_series_end ON chunks (series_id, t_end);

  CREATE TEMPORARY TABLE chunks_copy ON COMMIT DROP AS
    SELECT id, series_id, min_t, max_t, count, data,
           CASE WHEN max_t <= min_t - ((min_t % 7200000) + 7200000) % 7200000 + 7199999
                THEN min_t - ((min_t % 7200000) + 7200000) % 7200000 + 7199999
                ELSE max_t END AS t_end
    FROM chunks_v4;
  DO $$
  DECLARE d bigint;
  BEGIN
    FOR d IN SELECT DISTINCT t_end / 86400000 FROM chunks_copy WHERE t_end >= 0 AND t_end < 253402300800000 LOOP
      EXECUTE format('CREATE TABLE %I PARTITION OF chunks FOR VALUES FROM (%s) TO (%s)',
                     'chunks_d' || d, d * 86400000, (d + 1) * 86400000);
    END LOOP;
  END $$;
  INSERT INTO chunks (id, series_id, t_end, min_t, max_t, count, data)
    SELECT id, series_id, t_end, min_t, max_t, count, data FROM chunks_copy ORDER BY t_end, series_id, id;
  DROP TABLE chunks_v4;
  `,
  // 6: enqueueing a command in one round trip (issue 8: command delivery p99 at 1,000 agents was 429 ms, the
  // enqueue being six statements on a shared pool behind a busy event loop). The function does what
  // enqueueCommand did statement by statement: the per-host advisory lock, the queue-size check (a statement after
  // the lock: in READ COMMITTED each statement of a volatile function sees what committed before it), the insert
  // and the notification, all in the caller's transaction. Returns false, inserting nothing, when the queue is full.
  `
  CREATE FUNCTION spectra_enqueue_command(
    lock_class integer, cmd_id text, cmd_hostname text, queued_state integer, cmd bytea, cmd_created_ms bigint,
    cmd_requested_by text, max_queued integer, notify_payload text
  ) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
  BEGIN
    PERFORM pg_advisory_xact_lock(lock_class, hashtext(cmd_hostname));
    IF (SELECT count(*) FROM commands WHERE hostname = cmd_hostname AND state = queued_state) >= max_queued THEN
      RETURN false;
    END IF;
    INSERT INTO commands (id, hostname, state, command, created_ms, requested_by)
      VALUES (cmd_id, cmd_hostname, queued_state, cmd, cmd_created_ms, cmd_requested_by);
    PERFORM pg_notify('command_queued', notify_payload);
    RETURN true;
  END
  $$;
  `,
];

/** Advisory lock held while migrating (any constant unique to Spectra). */
const MIGRATION_LOCK = 0x5350_4543_0001;

/** The subset of a pg client the migration runner needs. */
export interface MigrationClient {
  query<R extends object = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/**
 * Brings the schema to the newest version: takes the migration advisory lock (a second server starting at the same
 * time waits here, then finds nothing to do), runs each missing step in its own transaction and records it.
 * Throws when the database was migrated by a newer server.
 */
export async function runPostgresMigrations(client: MigrationClient, steps: readonly string[] = postgresMigrations): Promise<void> {
  await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
  try {
    await client.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_ms bigint NOT NULL)",
    );
    const { rows } = await client.query<{ v: number }>("SELECT coalesce(max(version), 0)::integer AS v FROM schema_migrations");
    const current = rows[0]?.v ?? 0;
    if (current > steps.length) {
      throw new Error(`database schema version ${current} is newer than this server (${steps.length})`);
    }
    for (let v = current; v < steps.length; v++) {
      await client.query("BEGIN");
      try {
        await client.query(steps[v]!);
        await client.query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)", [v + 1, Date.now()]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw new Error(`schema migration ${v + 1} failed`, { cause: err });
      }
    }
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
  }
}
