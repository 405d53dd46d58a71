-- When this DAG first observed each database identity (cluster, oid, name): the only record of how long
-- a database's counters have been counting when its statistics were never reset. A restored, recreated
-- or failed-over database is a new identity, so its evidence starts again at zero.
CREATE TABLE IF NOT EXISTS {schema}.maintenance_identities (
    dag_id            text        NOT NULL,
    system_identifier text        NOT NULL,  -- '' when pg_control_system() was not readable
    database_oid      bigint      NOT NULL,
    database_name     text        NOT NULL,
    first_observed_at timestamptz NOT NULL,
    last_observed_at  timestamptz NOT NULL,
    PRIMARY KEY (dag_id, system_identifier, database_oid, database_name)
)
