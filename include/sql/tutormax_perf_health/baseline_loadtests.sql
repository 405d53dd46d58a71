SELECT count(*) AS runs, max(started_at) AS latest
FROM {schema}.loadtest_runs
WHERE valid AND profile = %(profile)s
