"""Runs of one Riak cluster never overlap on the CeleryExecutor stack, whatever their types and
whichever worker runs them.

Airflow counts a backfill's runs apart from the DAG's `max_active_runs`: a backfill of 2 days
with `--max-active-runs 2` starts its 2 runs together, and a manual trigger runs beside them.
The first task of every generated DAG (`wait_for_other_runs`) lets one of them at a time into
the roll, with two workers polling and writing to PostgreSQL at once: the simulator's timeline
never shows two nodes down, and no two runs are inside their roll at the same time.
"""

from __future__ import annotations

import pytest

from tests.e2e.deployment.clusters import OVERLAP
from tests.e2e.deployment.turns import assert_runs_took_turns, gate_waits, inside_windows
from tests.sandbox.kinds import riak as kind

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

DAG_ID = f"riak_{OVERLAP}"


def test_backfill_and_manual_runs_take_turns_across_workers(sandbox, celery_stack):
    stack = celery_stack
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=1, handoff_polls=1, stop_seconds=0.3,
                       start_seconds=0.5, kv_not_up_lines=0)
    nodes = sandbox.nodes[:2]
    # two backfill runs allowed at once, and a manual run besides; PostgreSQL takes the backfill
    # while the scheduler and the workers write
    stack.airflow("backfill", "create", "--dag-id", DAG_ID, "--max-active-runs", "2",
                  "--from-date", "2026-11-21", "--to-date", "2026-11-22")
    stack.airflow("dags", "trigger", DAG_ID, "--run-id", "manual_run")

    def ended() -> bool:
        rows = stack.query("select state from dag_run where dag_id = %s", DAG_ID)
        return len(rows) == 3 and all(s in ("success", "failed") for (s,) in rows)

    stack.wait_for(ended, timeout=900, what="3 runs of the cluster")
    runs = dict(stack.query("select run_id, state from dag_run where dag_id = %s", DAG_ID))
    assert set(runs.values()) == {"success"}, runs
    # the runs really overlapped: some waited at the gate for another one
    waits = gate_waits(stack, DAG_ID)
    assert waits >= 1, "no run waited at the gate: the test did not make runs overlap"
    hosts = {h for (h,) in stack.query("select distinct hostname from task_instance where dag_id = %s", DAG_ID)}
    assert hosts == {"w1", "w2"}, hosts

    windows = inside_windows(stack, DAG_ID)
    assert len(windows) == 3, windows
    assert_runs_took_turns(windows)
    timeline = kind.read_timeline(sandbox)
    assert sum(e.event == "stop" for e in timeline) == 6, timeline  # 3 runs x 2 nodes
    assert kind.max_down_at_once(timeline) == 1
    assert all(kind.node_state(n)["running"] for n in nodes)
