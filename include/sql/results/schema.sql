-- History kept by TutorMax Ops in the tutormax_results database, in its own schema.
-- Every table is keyed by (dag_id, run_id, ...) so a rerun of a DAG run upserts, never duplicates.
-- `runs` is the run registry: every DAG writes one row per run there (core/registry.py); the
-- capability tables (loadtest_runs, cache_warm_runs, table_metrics...) hang off it.
CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {schema}.runs (
    dag_id        text        NOT NULL,
    run_id        text        NOT NULL,
    kind          text        NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    status        text        NOT NULL,
    summary       jsonb       NOT NULL DEFAULT '{{}}'::jsonb,
    artifacts_uri text,
    PRIMARY KEY (dag_id, run_id)
);

CREATE TABLE IF NOT EXISTS {schema}.table_metrics (
    dag_id           text        NOT NULL,
    run_id           text        NOT NULL,
    phase            text        NOT NULL CHECK (phase IN ('before', 'after')),
    schema_name      text        NOT NULL,
    table_name       text        NOT NULL,
    collected_at     timestamptz NOT NULL,
    total_bytes      bigint,
    table_bytes      bigint,
    index_bytes      bigint,
    toast_bytes      bigint,
    live_tuples      bigint,
    dead_tuples      bigint,
    dead_ratio       double precision,
    bloat_bytes      bigint,
    bloat_ratio      double precision,
    last_vacuum      timestamptz,
    last_autovacuum  timestamptz,
    last_analyze     timestamptz,
    last_autoanalyze timestamptz,
    outcome          text,
    duration_s       double precision,
    PRIMARY KEY (dag_id, run_id, phase, schema_name, table_name)
);

CREATE TABLE IF NOT EXISTS {schema}.loadtest_runs (
    dag_id          text        NOT NULL,
    run_id          text        NOT NULL,
    profile         text        NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_s      double precision,
    host            text,
    users           integer,
    valid           boolean     NOT NULL,
    invalid_reason  text,
    requests        bigint,
    failures        bigint,
    error_rate      double precision,
    rps             double precision,
    p50_ms          double precision,
    p95_ms          double precision,
    p99_ms          double precision,
    cache_hit_rate  double precision,
    query_p95_ms    double precision,
    slow_query_rate double precision,
    verdict         text,
    PRIMARY KEY (dag_id, run_id)
);
CREATE INDEX IF NOT EXISTS loadtest_runs_profile_started
    ON {schema}.loadtest_runs (profile, started_at);

CREATE TABLE IF NOT EXISTS {schema}.loadtest_endpoints (
    dag_id     text             NOT NULL,
    run_id     text             NOT NULL,
    endpoint   text             NOT NULL,
    requests   bigint,
    failures   bigint,
    error_rate double precision,
    rps        double precision,
    p50_ms     double precision,
    p95_ms     double precision,
    p99_ms     double precision,
    PRIMARY KEY (dag_id, run_id, endpoint),
    FOREIGN KEY (dag_id, run_id) REFERENCES {schema}.loadtest_runs ON DELETE CASCADE
);

-- The load-test DAG's verdicts and plan, next to the measured figures (added with tutormax_load_test).
ALTER TABLE {schema}.loadtest_runs
    ADD COLUMN IF NOT EXISTS spawn_rate         double precision,
    ADD COLUMN IF NOT EXISTS planned_duration_s double precision,
    ADD COLUMN IF NOT EXISTS processes          integer,
    ADD COLUMN IF NOT EXISTS knee_rps           double precision,
    ADD COLUMN IF NOT EXISTS knee_users         integer,
    ADD COLUMN IF NOT EXISTS knee_p95_ms        double precision,
    ADD COLUMN IF NOT EXISTS limited_by         text,
    ADD COLUMN IF NOT EXISTS targets_verdict    text,
    ADD COLUMN IF NOT EXISTS regression_verdict text,
    ADD COLUMN IF NOT EXISTS findings           jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN IF NOT EXISTS artifacts_uri      text;
-- What the figures above cover: seconds after the first request they start from (the ramp-up and
-- the warm-up left out); NULL: the whole run (a run from before the per-second records, a stress run).
ALTER TABLE {schema}.loadtest_runs ADD COLUMN IF NOT EXISTS judged_from_s double precision;
CREATE INDEX IF NOT EXISTS loadtest_runs_history
    ON {schema}.loadtest_runs (dag_id, profile, users, started_at) WHERE valid;

-- Per load-test run, the evidence a finding's likely cause is read from (loadtest/evidence.py): top
-- statements, cache, service CPU, the server/client split, wait events and the service's state,
-- kept small (`bytes`, under 50 KB). A rerun replaces its row.
CREATE TABLE IF NOT EXISTS {schema}.loadtest_evidence (
    dag_id   text    NOT NULL,
    run_id   text    NOT NULL,
    evidence jsonb   NOT NULL,
    bytes    integer NOT NULL,
    PRIMARY KEY (dag_id, run_id),
    FOREIGN KEY (dag_id, run_id) REFERENCES {schema}.loadtest_runs ON DELETE CASCADE
);

-- tutormax_cache_warming: one row per run (hit rate and key counts before/after), one per target.
CREATE TABLE IF NOT EXISTS {schema}.cache_warm_runs (
    dag_id          text        NOT NULL,
    run_id          text        NOT NULL,
    started_at      timestamptz NOT NULL,
    triggered_by    text        NOT NULL,
    invalidated     bigint,
    hit_rate_before double precision,
    hit_rate_after  double precision,
    keys_before     jsonb       NOT NULL DEFAULT '{{}}'::jsonb,
    keys_after      jsonb       NOT NULL DEFAULT '{{}}'::jsonb,
    alert           text,
    PRIMARY KEY (dag_id, run_id)
);

CREATE TABLE IF NOT EXISTS {schema}.cache_warm_targets (
    dag_id    text             NOT NULL,
    run_id    text             NOT NULL,
    target    text             NOT NULL,
    requested integer          NOT NULL,
    ok        integer          NOT NULL,
    failed    integer          NOT NULL,
    p95_ms    double precision,
    seconds   double precision,
    PRIMARY KEY (dag_id, run_id, target),
    FOREIGN KEY (dag_id, run_id) REFERENCES {schema}.cache_warm_runs ON DELETE CASCADE
);
-- The hourly health DAG (tutormax_perf_health): one snapshot per hour, alert state per hour, and the
-- production checklist per day. A rerun of the same hour (or day) replaces its rows.
CREATE TABLE IF NOT EXISTS {schema}.health_snapshots (
    hour             timestamptz      PRIMARY KEY,
    dag_id           text             NOT NULL,
    run_id           text             NOT NULL,
    taken_at         timestamptz      NOT NULL,
    health_score     double precision,
    cache_hit_rate   double precision,
    api_p95_ms       double precision,
    error_rate       double precision,
    slow_query_rate  double precision,
    query_p95_ms     double precision,
    connections_pct  double precision,
    sources          jsonb            NOT NULL DEFAULT '{{}}'::jsonb,
    summary          jsonb            NOT NULL DEFAULT '{{}}'::jsonb,
    samples          jsonb            NOT NULL DEFAULT '{{}}'::jsonb
);

CREATE TABLE IF NOT EXISTS {schema}.health_alerts (
    hour         timestamptz      NOT NULL,
    alert        text             NOT NULL,
    state        text             NOT NULL CHECK (state IN ('ok', 'pending', 'firing')),
    transition   text             NOT NULL CHECK (transition IN ('none', 'raise', 'hold', 'resolve')),
    breaches     integer          NOT NULL,
    clears       integer          NOT NULL,
    value        double precision,
    threshold    double precision NOT NULL,
    source       text,
    message      text             NOT NULL,
    runbook      jsonb            NOT NULL DEFAULT '[]'::jsonb,
    emailed_at   timestamptz,
    PRIMARY KEY (hour, alert)
);
CREATE INDEX IF NOT EXISTS health_alerts_latest ON {schema}.health_alerts (alert, hour DESC);

CREATE TABLE IF NOT EXISTS {schema}.health_checklist (
    checked_on  date        NOT NULL,
    item        text        NOT NULL,
    position    integer     NOT NULL,
    title       text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('pass', 'fail', 'cannot tell')),
    evidence    text        NOT NULL,
    checked_at  timestamptz NOT NULL,
    PRIMARY KEY (checked_on, item)
);

-- The Performance page's trend of bloat per table reads one table across weekly runs.
CREATE INDEX IF NOT EXISTS table_metrics_table_runs
    ON {schema}.table_metrics (schema_name, table_name, dag_id, run_id) WHERE phase = 'before';

-- The run registry's own columns (issue 31): how the run was started, one line an operator reads,
-- and the report a person opens (the rest of the run's files sit next to it, under artifacts_uri).
ALTER TABLE {schema}.runs
    ADD COLUMN IF NOT EXISTS run_type   text,
    ADD COLUMN IF NOT EXISTS headline   text,
    ADD COLUMN IF NOT EXISTS report_uri text;
CREATE INDEX IF NOT EXISTS runs_kind_started ON {schema}.runs (kind, started_at DESC);
