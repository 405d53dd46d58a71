-- The stored evidence of the baseline runs a finding is explained against (loadtest/explain.py).
SELECT run_id, evidence
FROM {schema}.loadtest_evidence
WHERE dag_id = %(dag_id)s
  AND run_id = ANY(%(run_ids)s)
