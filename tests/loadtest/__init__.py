"""Tests of `tutormax_ops.loadtest`, one file per module (a package, so that their names cannot clash
with other folders' `test_plan.py` or `test_report.py`)."""
