"""The triggerer restarted (stopped, then started again) while a Riak roll's health gate waits in
it, on the CeleryExecutor stack: the deferred gate keeps its state while no triggerer runs, the new
triggerer takes its trigger over and resumes the wait, and the run completes with every node up.
The cluster has one node (the roll's other steps are test_riak_roll's): the restart comes at its
first gate, its second gate defers into the new triggerer."""

from __future__ import annotations

import pytest

from tests.e2e.deployment.clusters import TRIGGERER
from tests.sandbox.kinds import riak as kind

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

DAG_ID = f"riak_{TRIGGERER}"
RUN_ID = "restart"


def running_triggerer_jobs(stack) -> set[int]:
    return {i for (i,) in stack.query("select id from job where job_type = 'TriggererJob' and state = 'running'")}


def deferred_gates(stack) -> dict[str, int | None]:
    """Gate task id -> id of the triggerer job its trigger is assigned to, for the deferred gates."""
    return dict(stack.query(
        "select ti.task_id, t.triggerer_id from task_instance ti join trigger t on t.id = ti.trigger_id "
        "where ti.dag_id = %s and ti.run_id = %s and ti.state = 'deferred' and right(ti.task_id, 5) = '_gate'",
        DAG_ID, RUN_ID,
    ))


def trigger_log(stack, gate: str, triggerer_job: int):
    return stack.logs / f"dag_id={DAG_ID}" / f"run_id={RUN_ID}" / f"task_id={gate}" / (
        f"attempt=1.log.trigger.{triggerer_job}.log")


def trigger_log_jobs(stack, gate: str) -> set[int]:
    """The triggerer jobs that ran a trigger of `gate` (attempt=1.log.trigger.<job id>.log each)."""
    folder = stack.logs / f"dag_id={DAG_ID}" / f"run_id={RUN_ID}" / f"task_id={gate}"
    return {int(p.name.rsplit(".", 2)[-2]) for p in folder.glob("attempt=1.log.trigger.*.log")}


def test_triggerer_restarted_while_a_gate_waits(sandbox, celery_stack):
    stack = celery_stack
    # node 1's primaries stay missing for 8 polls of 1 s: its vnodes gate waits in the triggerer
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=8, handoff_polls=2, stop_seconds=0.3,
                       start_seconds=0.3, kv_not_up_lines=0)
    (old_triggerer,) = running_triggerer_jobs(stack)
    stack.airflow("dags", "trigger", DAG_ID, "--run-id", RUN_ID)
    gates = stack.wait_for(lambda: {g: j for g, j in deferred_gates(stack).items() if j is not None} or None,
                           300, "a gate deferred and its trigger assigned to the triggerer")
    assert len(gates) == 1, gates
    (gate,) = gates
    assert gate.startswith("node1_") and gate.endswith(".vnodes_gate"), gates
    assert gates[gate] == old_triggerer, (gates, old_triggerer)
    # assigned is not yet running: wait for the trigger's first poll in the triggerer's log of it
    polled = trigger_log(stack, gate, old_triggerer)
    stack.wait_for(lambda: polled.exists() and "vnodes gate for" in polled.read_text(), 60,
                   "the gate's first poll in the triggerer")

    stack.stop_part("triggerer")
    assert not running_triggerer_jobs(stack), "the stopped triggerer's job is still marked running"
    # nothing resumes the gate while no triggerer runs: it is still deferred, on the same trigger
    assert gate in deferred_gates(stack), stack.task_states(DAG_ID, RUN_ID)
    assert stack.task_states(DAG_ID, RUN_ID)[gate] == "deferred"
    node1 = sandbox.nodes[0]
    assert kind.node_state(node1)["running"], "node 1 should be up again (its gates wait for the cluster)"

    stack.start_part("triggerer")
    new_triggerer = stack.wait_for(lambda: next(iter(running_triggerer_jobs(stack)), None), 120,
                                   "the new triggerer's job")
    assert stack.wait_run_ended(DAG_ID, RUN_ID, timeout=400) == "success", stack.task_states(DAG_ID, RUN_ID)

    states = stack.task_states(DAG_ID, RUN_ID)
    assert set(states.values()) == {"success"}, states
    # the waiting gate's trigger ran in the old triggerer, then in the new one (which took it over)
    assert trigger_log_jobs(stack, gate) == {old_triggerer, new_triggerer}, sorted(
        p.name for p in (stack.logs / f"dag_id={DAG_ID}" / f"run_id={RUN_ID}" / f"task_id={gate}").iterdir())
    # and the node's next gate deferred into the new triggerer only
    assert trigger_log_jobs(stack, gate.replace(".vnodes_gate", ".handoff_gate")) == {new_triggerer}

    timeline = kind.read_timeline(sandbox)
    assert [e.event for e in timeline] == ["stop", "start"], timeline
    assert all(kind.node_state(n)["running"] for n in sandbox.nodes[:2])
