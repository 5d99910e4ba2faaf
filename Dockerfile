# The Airflow image the docker-compose stack and the Helm values run: the official Airflow 3.3
# image with mlpipe (the provider, the compiler and the `mlpipe` CLI) installed into it.
#
#   docker compose build          # or: docker build -t mlpipe-airflow:0.1.0 .
#
# Versions are pinned: deploy/constraints.txt is `uv export` of uv.lock (the versions the tests
# ran with; tests/test_deploy_files.py fails when it is stale). The stack runs CeleryExecutor on
# Redis with a PostgreSQL metadata DB, so mlpipe goes in with its `celery` and `postgres` extras
# (pyproject.toml), which compiling alone does not need.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

ARG AIRFLOW_VERSION=3.3.2

USER airflow

COPY --chown=airflow:0 pyproject.toml README.md /opt/mlpipe/
COPY --chown=airflow:0 deploy/constraints.txt /opt/mlpipe/deploy/constraints.txt
COPY --chown=airflow:0 mlpipe_provider /opt/mlpipe/mlpipe_provider
COPY --chown=airflow:0 compiler /opt/mlpipe/compiler

RUN pip install --no-cache-dir \
        --constraint /opt/mlpipe/deploy/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" \
        "/opt/mlpipe[azure,celery,postgres]" \
    && airflow providers get mlpipe >/dev/null

# The init script of the compose stack and the Helm values (workspace, UI password).
COPY --chown=airflow:0 deploy/airflow_init.py /opt/mlpipe/deploy/airflow_init.py

# Mount points of named volumes: an empty named volume takes this ownership on first use, so the
# workspace (MLPIPE_WORKSPACE: datastores, reuse store, run records) and the password file are
# writable by the airflow user without any chown at start-up.
RUN mkdir -p /opt/airflow/workspace /opt/airflow/auth

ENV MLPIPE_WORKSPACE=/opt/airflow/workspace
