"""A Riak rolling backup on the CeleryExecutor stack: its tasks run on both Celery workers, its
health gates wait deferred in the triggerer, and the simulator's timeline never shows two nodes
down."""

from __future__ import annotations

import pytest

from tests.e2e.deployment.clusters import ROLL
from tests.sandbox.kinds import riak as kind

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

DAG_ID = f"riak_{ROLL}"


def test_roll_runs_on_both_workers_with_deferred_gates(sandbox, celery_stack):
    stack = celery_stack
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=3, handoff_polls=3, stop_seconds=0.3,
                       start_seconds=0.5, kv_not_up_lines=1)
    stack.airflow("dags", "trigger", DAG_ID, "--run-id", "roll")
    assert stack.wait_run_ended(DAG_ID, "roll") == "success", stack.task_states(DAG_ID, "roll")

    rows = stack.query("select task_id, state, hostname from task_instance where dag_id = %s and run_id = 'roll'",
                       DAG_ID)
    assert {state for _, state, _ in rows} == {"success"}, rows
    hosts = {host for _, _, host in rows}
    assert hosts == {"w1", "w2"}, f"tasks ran on {hosts}: {sorted(rows)}"

    # the gates waited in the triggerer: each deferral of a task writes a log of its trigger
    # (attempt=N.log.trigger.<triggerer job id>.log) that the triggerer starts with "trigger ... starting"
    gates = sorted(t for t, _, _ in rows if t.endswith(("vnodes_gate", "handoff_gate")))
    assert len(gates) == 4, gates
    for gate in gates:
        folder = stack.logs / f"dag_id={DAG_ID}" / "run_id=roll" / f"task_id={gate}"
        trigger_logs = list(folder.glob("attempt=1.log.trigger.*.log"))
        assert trigger_logs, f"{gate} never deferred: {sorted(p.name for p in folder.iterdir())}"
        assert any(" starting" in p.read_text() for p in trigger_logs), gate

    timeline = kind.read_timeline(sandbox)
    assert sum(e.event == "stop" for e in timeline) == 2, timeline
    assert kind.max_down_at_once(timeline) == 1
    assert all(kind.node_state(n)["running"] for n in sandbox.nodes[:2])
