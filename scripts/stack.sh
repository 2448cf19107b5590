#!/usr/bin/env bash
# Install everything, then run the deployment of docker-compose.yaml as processes (PostgreSQL,
# Redis, Airflow with the CeleryExecutor: api-server, scheduler, dag-processor, triggerer, two
# workers) with the sandbox and the DAGs of dags/clusters.yaml; prints the UI's address and a
# login; Ctrl-C stops everything. STACK_HOST=0.0.0.0 / STACK_PORT=8080 choose where the UI listens.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m tests.e2e.celery_stack "$@"
