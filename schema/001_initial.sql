-- Scion coordinator store, version 1. The coordinator is the only writer.
-- Times are Unix seconds (REAL). States are the lowercase names of docs/PROTOCOL.md.

CREATE TABLE jobs (
  id            INTEGER PRIMARY KEY,
  name          TEXT NOT NULL,
  kind          TEXT NOT NULL,
  state         TEXT NOT NULL,
  priority      INTEGER NOT NULL,
  attempt       INTEGER NOT NULL,       -- current (or last) attempt, 1-based; 0 before the first
  max_attempts  INTEGER NOT NULL,
  worker        TEXT,                   -- worker id of the current attempt
  gpus          TEXT NOT NULL DEFAULT '[]',  -- GPU indices of the current attempt (JSON)
  created       REAL NOT NULL,
  queued        REAL,                   -- when it last entered the ready queue
  started       REAL,
  ended         REAL,
  reason        TEXT NOT NULL DEFAULT '',
  progress      REAL NOT NULL DEFAULT 0,
  spec          TEXT NOT NULL,          -- normalised spec (JSON)
  -- From the spec, as columns so a restart loads 100k jobs without parsing 100k JSON documents.
  req_gpus      INTEGER NOT NULL DEFAULT 0,
  req_gpu_memory_gb REAL NOT NULL DEFAULT 0,
  req_min_cc    REAL NOT NULL DEFAULT 0,
  req_cpu_ok    INTEGER NOT NULL DEFAULT 1,
  timeout_s     REAL NOT NULL DEFAULT 0,
  after_ids     TEXT NOT NULL DEFAULT '[]', -- parents: `after` plus the jobs named in `inputs` (JSON)
  summary       TEXT NOT NULL DEFAULT '{}',  -- {metric: value} from the final RESULT
  artifacts     TEXT NOT NULL DEFAULT '{}'   -- {name: {sha256, size}} outputs
);

-- Every state change, for audit and for `scion show`.
CREATE TABLE job_events (
  id          INTEGER PRIMARY KEY,
  job         INTEGER NOT NULL,
  time        REAL NOT NULL,
  from_state  TEXT NOT NULL,             -- '' for the creation event
  to_state    TEXT NOT NULL,
  reason      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX job_events_by_job ON job_events(job, id);

CREATE TABLE attempts (
  job      INTEGER NOT NULL,
  attempt  INTEGER NOT NULL,
  worker   TEXT NOT NULL,
  gpus     TEXT NOT NULL DEFAULT '[]',
  started  REAL NOT NULL,
  ended    REAL,
  outcome  TEXT,                         -- succeeded | failed | cancelled | requeued | lost | rejected
  reason   TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job, attempt)
) WITHOUT ROWID;

CREATE TABLE workers (
  id          TEXT PRIMARY KEY,
  hostname    TEXT NOT NULL,
  state       TEXT NOT NULL,            -- ready | lost | draining | gone
  info        TEXT NOT NULL,            -- the last READY body (JSON)
  first_seen  REAL NOT NULL,
  last_seen   REAL NOT NULL
);

-- Metric points reported by running jobs. seq is global and increasing (pagination cursor).
CREATE TABLE metrics (
  seq      INTEGER PRIMARY KEY,
  job      INTEGER NOT NULL,
  attempt  INTEGER NOT NULL,
  step     INTEGER NOT NULL,
  name     TEXT NOT NULL,
  value    REAL NOT NULL,
  time     REAL NOT NULL
);
CREATE INDEX metrics_by_job ON metrics(job, seq);

CREATE TABLE logs (
  seq      INTEGER PRIMARY KEY,
  job      INTEGER NOT NULL,
  attempt  INTEGER NOT NULL,
  time     REAL NOT NULL,
  line     TEXT NOT NULL
);
CREATE INDEX logs_by_job ON logs(job, seq);

-- Content-addressed blobs (job IS NULL: an upload) and job outputs (job, name set).
CREATE TABLE artifacts (
  id       INTEGER PRIMARY KEY,
  sha256   TEXT NOT NULL,
  size     INTEGER NOT NULL,
  path     TEXT NOT NULL,
  job      INTEGER,
  name     TEXT,
  created  REAL NOT NULL
);
CREATE INDEX artifacts_by_sha ON artifacts(sha256);
CREATE INDEX artifacts_by_job ON artifacts(job, name);

-- Searches and their trials (driven by search/).
CREATE TABLE searches (
  id       INTEGER PRIMARY KEY,
  name     TEXT NOT NULL,
  state    TEXT NOT NULL,
  spec     TEXT NOT NULL,
  created  REAL NOT NULL,
  ended    REAL
);

CREATE TABLE search_trials (
  search   INTEGER NOT NULL,
  trial    INTEGER NOT NULL,
  job      INTEGER,
  params   TEXT NOT NULL,
  value    REAL,
  PRIMARY KEY (search, trial)
) WITHOUT ROWID;
