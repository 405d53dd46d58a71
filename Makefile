# TutorMax Ops. The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)/include

.PHONY: help bootstrap lock demo test test-random check lint airflow bench clean browser serve

help:
	@echo "make demo       run every DAG against self-started PostgreSQL, Redis, SMTP sink and TutorMax service"
	@echo "make test       lint, then the test suite (real servers, dag.test())"
	@echo "make check      lint, then the tests that run no Locust and no Airflow (the inner loop, a few minutes)"
	@echo "make test-random  make test in a random order; SEED=N replays the order a run printed"
	@echo "make serve      the self-started servers until Ctrl-C: their URLs and an env file for \`airflow dags test\`"
	@echo "make airflow    airflow standalone (UI on :8080) against the same self-started services"
	@echo "make bench      the benchmarks under bench/"
	@echo "make bootstrap  create .venv from requirements.lock (uv when available, else pip)"

# The venv is rebuilt whenever the lock changes. uv resolves the locked set in seconds; pip is the fallback.
$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if $(VENV)/bin/python -m pip install -q uv >/dev/null 2>&1 && $(VENV)/bin/uv --version >/dev/null 2>&1; then \
		echo "bootstrap: installing requirements.lock with uv"; \
		$(VENV)/bin/uv pip install -q --python $(PY) -r requirements.lock; \
	else \
		echo "bootstrap: installing requirements.lock with pip"; \
		$(PY) -m pip install -q -r requirements.lock; \
	fi
	@touch $(STAMP)

bootstrap: $(STAMP)

# Re-resolve requirements.txt in a scratch venv and freeze the result as the new lock.
lock:
	rm -rf .tutormax/lock-venv && $(PYTHON) -m venv .tutormax/lock-venv
	.tutormax/lock-venv/bin/python -m pip install -q uv
	.tutormax/lock-venv/bin/uv pip install -q --python .tutormax/lock-venv/bin/python -r requirements.txt
	.tutormax/lock-venv/bin/uv pip freeze --python .tutormax/lock-venv/bin/python | grep -v '^uv==' > requirements.lock

demo: $(STAMP)
	$(PY) -m tutormax_ops.devstack.demo

# Two workers (pytest-xdist), a test file per worker at a time and the Airflow tier on one: each
# worker starts its own servers; much of the suite waits on Locust's clock, not on a core. Your own
# Redis or service (TUTORMAX_REDIS_URL, TUTORMAX_API_URL) would be shared by the workers: one worker.
TEST_WORKERS ?= $(if $(TUTORMAX_REDIS_URL)$(TUTORMAX_API_URL),1,2)
XDIST := -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP) lint browser
	$(PY) -m pytest $(XDIST)

# pytest-randomly prints "Using --randomly-seed=N" first: SEED=N replays that order.
test-random: $(STAMP) lint browser
	$(PY) -m pytest $(XDIST) -p randomly $(if $(SEED),--randomly-seed=$(SEED))

# The inner loop: no Locust run, no DAG run, no Airflow process (markers `e2e` and `slow`, see pyproject).
check: $(STAMP) lint
	$(PY) -m pytest $(XDIST) -m "not e2e and not slow"

# The Performance page's browser test drives Debian's chromium (Playwright cannot download one here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "browser: installing chromium"; apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else echo "browser: chromium missing and not root: its test skips (and fails with CI=true)"; fi; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

airflow: $(STAMP)
	$(PY) -m tutormax_ops.devstack.demo --standalone

# The stack for your own use: prints each server's URL and writes .tutormax/serve/tutormax.env (0600).
serve: $(STAMP)
	$(PY) -m tutormax_ops.devstack.serve

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf .tutormax
