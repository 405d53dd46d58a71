"""Headless Locust load tests of the TutorMax API, one module per step of `tutormax_load_test`:

1. `plan`: the run's plan, from the params over the profile. An Asset-triggered run (the cache
   was warmed) is always the plain `smoke` profile, and sends load only for a planned warm run
   (`window.unplanned_reason`).
2. `guard`: refuses a host off the allowlist or more users than the cap before any request, then
   asks the target's `/health` and checks that no session holds the shared advisory lock.
3. `run` (through `operator.LoadTestRunOperator`): locust as a subprocess in a process group of its
   own (`runner`), with the server-side figures (`server_metrics`) taken around its steady state and
   the raw outputs stored under the run's artifacts folder. Kill and timeout stop the whole group.
4. `analyze`: validity, verdict 1 (`verdict`, the targets), verdict 2 (`regression`, the history,
   with `series`, what this run adds to it), the history rows (`history`), `report.html` and the
   email (`report`). Both verdicts judge the steady state (`collectors.locust_seconds`).
5. `report.notify_run`, then `verdict.enforce_verdict`, which fails the DAG run on anything but a pass.

The types the steps hand each other (`RunPlan`, `LoadStep`, `Knee`, `Limits`, `TargetCheck`,
`Analysis`) live in `model`, so no step imports another for a type.

Locust is never imported here, nor in any Airflow or pytest process: `import locust` gevent-patches
the importing process and deadlocks after `dag.test()`. It runs as `python -m locust`.

The DAG file imports `operator` while it is parsed, and with it this package: this file imports
nothing, and `operator` nothing heavier than the Airflow SDK.
"""
