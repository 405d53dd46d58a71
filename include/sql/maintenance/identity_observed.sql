-- Record that a run observed this identity; the first observation is kept, never moved later.
INSERT INTO {schema}.maintenance_identities AS known
    (dag_id, system_identifier, database_oid, database_name, first_observed_at, last_observed_at)
VALUES (%(dag_id)s, %(system_identifier)s, %(database_oid)s, %(database_name)s, %(observed_at)s, %(observed_at)s)
ON CONFLICT (dag_id, system_identifier, database_oid, database_name) DO UPDATE
SET first_observed_at = least(known.first_observed_at, EXCLUDED.first_observed_at),
    last_observed_at = greatest(known.last_observed_at, EXCLUDED.last_observed_at)
