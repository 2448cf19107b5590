#!/usr/bin/env bash
# Install everything, start the sandbox, run every DAG of dags/clusters.yaml once, print a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m tests.sandbox.demo "$@"
