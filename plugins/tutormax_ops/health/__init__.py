"""Health: the smoke DAG's connectivity probes, and the hourly health DAG (`tutormax_perf_health`),
one module per step:

- `connectivity`: one check per Airflow connection (`tutormax_smoke_connectivity`);
- `snapshot`: the seed's summary from live sources, stored once per hour in `health_snapshots`;
- `alerts`: the seed's Monitoring Alerts and the measurable Scaling Checklist thresholds, as a state
  machine with hysteresis (ok → pending → firing → ok), stored per hour in `health_alerts`;
- `runbooks`: each alert's Troubleshooting steps filled with live evidence (`probes` are shared with
  the checklist);
- `evaluate`: reads the hour's snapshot, steps every alert, stores the states, emails raises and resolves;
- `checklist`: the seed's Production Checklist, probed (pass / fail / cannot tell, with evidence);
- `results`: the results-database access the steps and the Performance page share.
"""
