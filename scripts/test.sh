#!/usr/bin/env bash
# Install everything, then lint and run the whole test suite.
# With arguments, runs pytest with them (one process). Without, runs the suite in two pytest
# processes side by side: tests/e2e (real Airflow stacks that mostly wait on sshd, moto, Celery
# and the browser) and the rest. They share nothing: each process has its own AIRFLOW_HOME and
# temp folder, and every sandbox picks its own loopback subnet and free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest -q "$@"
fi

work=$(mktemp -d -t abp-test-XXXXXX)
e2e_pid=""
stop_e2e() { if [ -n "$e2e_pid" ]; then kill -- "-$e2e_pid" 2>/dev/null || true; fi; }
trap 'stop_e2e; exit 130' INT TERM

# setsid: the e2e lane gets its own process group, so an interrupt stops all of it.
setsid .venv/bin/python -m pytest -q --basetemp="$work/e2e" tests/e2e >"$work/e2e.log" 2>&1 &
e2e_pid=$!
rest_rc=0
.venv/bin/python -m pytest -q --basetemp="$work/rest" --ignore=tests/e2e || rest_rc=$?
e2e_rc=0
wait "$e2e_pid" || e2e_rc=$?
e2e_pid=""

echo
echo "==================== tests/e2e (run beside the rest) ===================="
cat "$work/e2e.log"
echo "tests/e2e: exit $e2e_rc; the rest: exit $rest_rc"
rm -rf "$work"
[ "$rest_rc" -eq 0 ] && [ "$e2e_rc" -eq 0 ]
