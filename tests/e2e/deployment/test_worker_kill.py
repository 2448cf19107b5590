"""A Celery worker SIGKILLed (its whole process group: the machine lost, in effect) while its task
is taking a Riak node down, on the CeleryExecutor stack. The scheduler fails the task once its
heartbeats stop; the node's `start` (trigger rule all_done) runs on the other worker and starts
the node again; the run fails and mails the on-call; never are two nodes down."""

from __future__ import annotations

import pytest

from tests.e2e.deployment.clusters import KILL
from tests.sandbox.kinds import riak as kind

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

DAG_ID = f"riak_{KILL}"


def test_worker_killed_while_its_node_goes_down(sandbox, celery_stack):
    stack = celery_stack
    sandbox.reset_mails()
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=1, handoff_polls=1, stop_seconds=0.3,
                       start_seconds=0.3, kv_not_up_lines=0)
    first, second = sandbox.nodes[0], sandbox.nodes[1]
    # `riak stop` on node 1 takes 6 s: the worker is killed while it runs
    kind.set_knobs(first, primaries_missing_polls=1, handoff_polls=1, stop_seconds=6, start_seconds=0.3,
                   kv_not_up_lines=0)
    prefix = "node1_" + first.address.replace(".", "_")
    stop_id, start_id = f"{prefix}.stop", f"{prefix}.start"

    stack.airflow("dags", "trigger", DAG_ID, "--run-id", "kill")
    worker = stack.wait_for(
        lambda: next(iter(h for (h,) in stack.query(
            "select hostname from task_instance where dag_id = %s and run_id = 'kill' and task_id = %s "
            "and state = 'running' and hostname <> ''", DAG_ID, stop_id)), None),
        300, "node 1's stop running on a worker",
    )
    killed = False
    try:
        stack.wait_for(lambda: any(e.event == "stopping" and e.node == kind.node_name(first)
                                   for e in kind.read_timeline(sandbox, with_stopping=True)),
                       60, "`riak stop` begun on node 1")
        stack.kill(worker)
        killed = True
        state = stack.wait_run_ended(DAG_ID, "kill", timeout=400)
    finally:
        if killed:  # the next tests want two workers again
            stack.start_worker(worker)
            stack.wait_worker_ready(worker)

    assert state == "failed"
    rows = {t: (s, h) for t, s, h in stack.query(
        "select task_id, state, hostname from task_instance where dag_id = %s and run_id = 'kill'", DAG_ID)}
    assert rows[stop_id][0] == "failed", rows
    start_state, start_host = rows[start_id]
    assert start_state == "success", rows
    assert start_host != worker, rows  # the killed worker was restarted only after the run ended
    assert rows["report"][0] == "failed", rows

    timeline = kind.read_timeline(sandbox)
    node1 = [e.event for e in timeline if e.node == kind.node_name(first)]
    assert node1 == ["stop", "start"], timeline  # down (the remote stop went on), then started again
    # node 1 passed its gates once started, so node 2 went on (a failed step fails the run even
    # when later nodes succeed), and only after node 1 was up again
    node2 = [e.event for e in timeline if e.node == kind.node_name(second)]
    assert node2 in ([], ["stop", "start"]), timeline
    assert kind.node_state(first)["running"] and kind.node_state(second)["running"]
    assert kind.max_down_at_once(timeline) == 1

    stack.wait_for(lambda: any(m["subject"].startswith(f"[backup failed] {DAG_ID}") for m in sandbox.mails),
                   120, "the failure mail")
    assert all("oncall@example.com" in m["to"] for m in sandbox.mails), sandbox.mails
