"""A Celery worker SIGKILLed (its whole process group: the machine lost, in effect) while its task
is taking a Riak node down, on the CeleryExecutor stack. The scheduler fails the task once its
heartbeats stop, and never are two nodes down:

- without retries, the node's `start` (trigger rule all_done) runs on the other worker and starts
  the node again; the run fails and mails the on-call;
- with a retry, the stop's second try runs on the other worker (the node is already down: the
  verify command has the last word), the roll goes on, and the run succeeds with one
  "up for retry" alert and no failure alert.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.e2e.deployment.clusters import KILL, RETRY
from tests.sandbox.kinds import riak as kind

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]


@dataclass
class Killed:
    worker: str  # the worker killed while node 1's stop ran on it
    state: str  # the run's end state
    tasks: dict[str, tuple[str, str, int]]  # task id -> (state, hostname, try number)
    stop_id: str
    start_id: str


def kill_worker_during_first_stop(sandbox, stack, dag_id: str, run_id: str) -> Killed:
    """Trigger `dag_id`, SIGKILL the worker running node 1's `riak stop` (6 s) once the stop has
    begun on the node, and wait for the run to end; the killed worker is started again after."""
    sandbox.reset_mails()
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=1, handoff_polls=1, stop_seconds=0.3,
                       start_seconds=0.3, kv_not_up_lines=0)
    first = sandbox.nodes[0]
    kind.set_knobs(first, primaries_missing_polls=1, handoff_polls=1, stop_seconds=6, start_seconds=0.3,
                   kv_not_up_lines=0)
    prefix = "node1_" + first.address.replace(".", "_")
    stop_id, start_id = f"{prefix}.stop", f"{prefix}.start"

    stack.airflow("dags", "trigger", dag_id, "--run-id", run_id)
    worker = stack.wait_for(
        lambda: next(iter(h for (h,) in stack.query(
            "select hostname from task_instance where dag_id = %s and run_id = %s and task_id = %s "
            "and state = 'running' and hostname <> ''", dag_id, run_id, stop_id)), None),
        300, "node 1's stop running on a worker",
    )
    killed = False
    try:
        stack.wait_for(lambda: any(e.event == "stopping" and e.node == kind.node_name(first)
                                   for e in kind.read_timeline(sandbox, with_stopping=True)),
                       60, "`riak stop` begun on node 1")
        stack.kill(worker)
        killed = True
        state = stack.wait_run_ended(dag_id, run_id, timeout=400)
    finally:
        if killed:  # the next tests want two workers again
            stack.start_worker(worker)
            stack.wait_worker_ready(worker)
    tasks = {t: (s, h, n) for t, s, h, n in stack.query(
        "select task_id, state, hostname, try_number from task_instance where dag_id = %s and run_id = %s",
        dag_id, run_id)}
    return Killed(worker, state, tasks, stop_id, start_id)


def assert_nodes_safe(sandbox) -> None:
    """Node 1 went down once (the remote stop went on without its worker) and up again; node 2
    only after it; both are up; never two down."""
    first, second = sandbox.nodes[0], sandbox.nodes[1]
    timeline = kind.read_timeline(sandbox)
    assert [e.event for e in timeline if e.node == kind.node_name(first)] == ["stop", "start"], timeline
    assert [e.event for e in timeline if e.node == kind.node_name(second)] in ([], ["stop", "start"]), timeline
    assert kind.max_down_at_once(timeline) == 1, timeline
    assert kind.node_state(first)["running"] and kind.node_state(second)["running"]


def test_worker_killed_while_its_node_goes_down(sandbox, celery_stack):
    stack, dag_id = celery_stack, f"riak_{KILL}"
    killed = kill_worker_during_first_stop(sandbox, stack, dag_id, "kill")
    rows = killed.tasks

    assert killed.state == "failed", rows
    assert rows[killed.stop_id][0] == "failed", rows
    start_state, start_host, _ = rows[killed.start_id]
    assert start_state == "success", rows
    assert start_host != killed.worker, rows  # the killed worker was restarted only after the run ended
    assert rows["report"][0] == "failed", rows
    # node 1 passed its gates once started, so node 2 went on (a failed step fails the run even
    # when later nodes succeed), and only after node 1 was up again
    assert_nodes_safe(sandbox)

    # the alert names the killed task; the report mail says the run failed (node 1's snapshot,
    # upstream_failed, is counted with the stop)
    alert = f"[backup failed] {dag_id}.{killed.stop_id} on {kind.node_name(sandbox.nodes[0])} (try 1/1)"
    stack.wait_for(lambda: any(m["subject"] == alert for m in sandbox.mails), 120, f"the alert {alert!r}")
    stack.wait_for(lambda: any(m["subject"].startswith(f"[backup FAILED] {dag_id} kill: 2 failed, 1 backed up")
                               for m in sandbox.mails), 60, "the report mail")
    alerts = [m["subject"] for m in sandbox.mails if m["subject"].startswith("[backup failed]")]
    # Airflow 3.3.2 runs the failure callback of a heartbeat timeout twice (the purge's callback, and
    # the executor's "failed" event for a task still `running`; apache/airflow#68008): one alert or two
    assert set(alerts) == {alert} and len(alerts) <= 2, alerts
    assert all("oncall@example.com" in m["to"] for m in sandbox.mails), sandbox.mails


def test_worker_killed_while_its_node_goes_down_with_a_retry(sandbox, celery_stack):
    stack, dag_id = celery_stack, f"riak_{RETRY}"
    killed = kill_worker_during_first_stop(sandbox, stack, dag_id, "retry")
    rows = killed.tasks

    assert killed.state == "success", rows
    assert {s for s, _, _ in rows.values()} == {"success"}, rows
    stop_state, stop_host, stop_try = rows[killed.stop_id]
    assert (stop_try, stop_host) == (2, next(w for w in ("w1", "w2") if w != killed.worker)), rows
    # the first try is in the history: on the killed worker, ended by the lost heartbeats
    ((first_try_host, first_try_state),) = stack.query(
        "select hostname, state from task_instance_history where dag_id = %s and run_id = 'retry' "
        "and task_id = %s and try_number = 1", dag_id, killed.stop_id)
    assert (first_try_host, first_try_state) == (killed.worker, "failed")
    assert [e for (e,) in stack.query("select event from log where dag_id = %s and run_id = 'retry' and task_id = %s "
                                       "order by dttm, id", dag_id, killed.stop_id)][:2] == ["running", "heartbeat timeout"]
    assert_nodes_safe(sandbox)

    node = kind.node_name(sandbox.nodes[0])
    retry_alert = f"[backup up for retry] {dag_id}.{killed.stop_id} on {node} (try 1/2)"
    stack.wait_for(lambda: any(m["subject"] == retry_alert for m in sandbox.mails), 120, f"the alert {retry_alert!r}")
    stack.wait_for(lambda: any(m["subject"].startswith(f"[backup succeeded] {dag_id} retry: 0 failed")
                               for m in sandbox.mails), 60, "the report mail")
    subjects = [m["subject"] for m in sandbox.mails]
    assert not any(s.startswith("[backup failed]") or "FAILED" in s for s in subjects), subjects
    retry_alerts = [s for s in subjects if s.startswith("[backup up for retry]")]
    assert set(retry_alerts) == {retry_alert} and len(retry_alerts) <= 2, retry_alerts  # twice: see above
    assert all("oncall@example.com" in m["to"] for m in sandbox.mails), sandbox.mails
