-- When this DAG first observed exactly this identity; no row: never before this run.
SELECT first_observed_at
FROM {schema}.maintenance_identities
WHERE dag_id = %(dag_id)s
  AND system_identifier = %(system_identifier)s
  AND database_oid = %(database_oid)s
  AND database_name = %(database_name)s
