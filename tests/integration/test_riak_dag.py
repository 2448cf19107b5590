"""The riak_<name> DAG, run with dag.test() on the 3-node sandbox (real sshd, simulated riak,
moto EC2 instances with 2 volumes each, real SMTP): the rolling order, the snapshots and their
tags, and every injected fault leaving no node stopped and an alert mail behind."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from airflow_backup_provider.hooks.ebs import EbsHook
from tests.harness import clusters_file, load_dag, run_dag
from tests.sandbox.kinds import riak as kind

pytestmark = pytest.mark.sandbox

FAST = {"stop_seconds": 0.05, "start_seconds": 0.05, "kv_not_up_lines": 1, "wait_interval": 0.05}
ALERT = "oncall@example.com"


@pytest.fixture(scope="module")
def instances(sandbox):
    return kind.make_instances(sandbox, 3)


def entry(sandbox, instances, name: str, count: int = 3, **overrides) -> dict:
    nodes = [
        {"host": node.address, "node_name": kind.node_name(node), "instance_id": instance_id}
        for node, instance_id in zip(sandbox.nodes[:count], instances, strict=False)
    ]
    settings = {
        "kind": "riak",
        "name": name,
        "nodes": nodes,
        "schedule": None,
        "alert_emails": [ALERT],
        "retries": 0,
        "retry_delay": "1s",
        "node_down_retry_delay": "1s",
        "poke_interval": "1s",
        "gate_timeout": "40s",
        "service_timeout": "20s",
        "deferrable": True,
        "retention": {"keep_last": 3},
    }
    settings.update(overrides)
    return settings


def run(tmp_path, settings: dict, logical_date: str, conf: dict | None = None) -> dict[str, str]:
    with clusters_file(tmp_path, {"entries": [settings]}):
        dag = load_dag(f"riak_{settings['name']}")
        return run_dag(dag, logical_date, conf=conf)


def snapshots_of(sandbox, name: str) -> list[dict]:
    ec2 = sandbox.boto3_client("ec2")
    found = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:backup:cluster", "Values": [name]}])
    return found["Snapshots"]


def tags(snapshot: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}


def assert_all_running(sandbox, count: int = 3) -> None:
    for node in sandbox.nodes[:count]:
        assert kind.node_state(node)["running"], f"{node.name} was left stopped"


def group(index: int, sandbox) -> str:
    return f"node{index + 1}_" + sandbox.nodes[index].address.replace(".", "_")


def test_rolling_backup_one_snapshot_per_volume_never_two_nodes_down(sandbox, instances, airflow_db, tmp_path, mails):
    kind.reset_cluster(sandbox, primaries_missing_polls=1, handoff_polls=1, **FAST)
    settings = entry(sandbox, instances, "roll")
    states = run(tmp_path, settings, "2026-11-20")
    assert set(states.values()) == {"success"}, states

    snapshots = snapshots_of(sandbox, "roll")
    by_volume = Counter(s["VolumeId"] for s in snapshots)
    expected_volumes = {v for i in instances for v in kind.instance_volumes(sandbox, i)}
    assert set(by_volume) == expected_volumes and len(expected_volumes) == 6
    assert set(by_volume.values()) == {1}
    for snapshot in snapshots:
        tag = tags(snapshot)
        index = instances.index(tag["backup:instance"])
        assert tag["backup:node"] == kind.node_name(sandbox.nodes[index])
        assert tag["backup:cluster"] == "roll" and tag["backup:kind"] == "riak" and tag["backup:name"] == "riak_roll"
        assert tag["backup:logical-date"] == "2026-11-20T00:00:00+00:00"
        assert tag["backup:created-by"] == "airflow-backup-provider"
        assert snapshot["VolumeId"] in kind.instance_volumes(sandbox, tag["backup:instance"])

    events = kind.read_timeline(sandbox)
    assert [(e.node, e.event) for e in events] == [
        (kind.node_name(n), event) for n in sandbox.nodes for event in ("stop", "start")
    ]
    assert kind.max_down_at_once(events) == 1
    assert_all_running(sandbox)
    assert any("[backup succeeded] riak_roll" in m["subject"] for m in mails)

    # the same logical date again (a clear, a re-run): no new snapshot, every node once more
    kind.reset_cluster(sandbox, primaries_missing_polls=0, handoff_polls=0, **FAST)
    states = run(tmp_path, settings, "2026-11-20")
    assert set(states.values()) == {"success"}, states
    assert len(snapshots_of(sandbox, "roll")) == 6
    assert_all_running(sandbox)


def test_subset_of_nodes_in_reschedule_mode_and_dry_run(sandbox, instances, airflow_db, tmp_path, mails):
    kind.reset_cluster(sandbox, primaries_missing_polls=1, handoff_polls=1, **FAST)
    settings = entry(sandbox, instances, "subset", deferrable=False)
    second = sandbox.nodes[1]
    states = run(tmp_path, settings, "2026-11-20", conf={"nodes": [second.address]})
    assert states[f"{group(0, sandbox)}.stop"] == "skipped"
    assert states[f"{group(0, sandbox)}.start"] == "skipped"
    assert states[f"{group(1, sandbox)}.handoff_gate"] == "success"
    assert states[f"{group(2, sandbox)}.stop"] == "skipped"
    assert states["report"] == "success"
    assert [(e.node, e.event) for e in kind.read_timeline(sandbox)] == [
        (kind.node_name(second), "stop"), (kind.node_name(second), "start"),
    ]
    assert {tags(s)["backup:node"] for s in snapshots_of(sandbox, "subset")} == {kind.node_name(second)}

    kind.reset_cluster(sandbox, **FAST)
    states = run(tmp_path, settings, "2026-11-21", conf={"dry_run": True})
    assert states["report"] == "success"
    assert kind.read_timeline(sandbox) == []  # a dry run stops nothing
    assert len(snapshots_of(sandbox, "subset")) == 2  # and snapshots nothing


def test_unknown_node_in_params_is_refused(sandbox, instances, airflow_db, tmp_path):
    settings = entry(sandbox, instances, "badparam")
    with pytest.raises(Exception, match="nodes") as raised:
        run(tmp_path, settings, "2026-11-20", conf={"nodes": ["10.9.9.9"]})
    assert "10.9.9.9" in str(raised.value)


def test_snapshot_api_failure_still_starts_the_node_and_fails_the_run(
    sandbox, instances, airflow_db, tmp_path, mails, monkeypatch
):
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=0, handoff_polls=0, **FAST)
    real = EbsHook.create_snapshots_for_instance

    def failing(self, instance_id, *args, **kwargs):
        if instance_id == instances[0]:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, "CreateSnapshots")
        return real(self, instance_id, *args, **kwargs)

    monkeypatch.setattr(EbsHook, "create_snapshots_for_instance", failing)
    states = run(tmp_path, entry(sandbox, instances, "snapfail", count=2), "2026-11-20")
    first, second = group(0, sandbox), group(1, sandbox)
    assert states[f"{first}.snapshot"] == "failed"
    assert states[f"{first}.start"] == "success"
    assert states[f"{first}.handoff_gate"] == "success"
    assert states[f"{second}.snapshot"] == "success"  # the gates passed: the roll went on
    assert states["report"] == "failed"
    assert_all_running(sandbox, 2)
    assert kind.max_down_at_once(kind.read_timeline(sandbox)) == 1
    subjects = [m["subject"] for m in mails]
    assert any(s.startswith("[backup failed] riak_snapfail." + first + ".snapshot") for s in subjects), subjects
    assert any(s.startswith("[backup FAILED] riak_snapfail") for s in subjects), subjects


def test_stop_failure_starts_nothing_twice_and_alerts(sandbox, instances, airflow_db, tmp_path, mails):
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=0, handoff_polls=0, **FAST)
    kind.set_knobs(sandbox.nodes[0], stop_fails=-1, **FAST)
    states = run(tmp_path, entry(sandbox, instances, "stopfail", count=2), "2026-11-20")
    first = group(0, sandbox)
    assert states[f"{first}.stop"] == "failed"
    assert states[f"{first}.snapshot"] == "upstream_failed"
    assert states[f"{first}.start"] == "success"  # the stop ran, so the start runs ("already running")
    assert states["report"] == "failed"
    assert_all_running(sandbox, 2)
    assert kind.max_down_at_once(kind.read_timeline(sandbox)) <= 1
    assert any(m["subject"].startswith(f"[backup failed] riak_stopfail.{first}.stop") for m in mails)


def test_start_failure_is_retried_and_a_dead_node_stops_the_roll(sandbox, instances, airflow_db, tmp_path, mails):
    # a start that fails once is retried and the node comes back
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=0, handoff_polls=0, **FAST)
    kind.set_knobs(sandbox.nodes[0], start_fails=1, **FAST)
    settings = entry(sandbox, instances, "startfail", count=2, retries=1, alert_on_retry=True)
    states = run(tmp_path, settings, "2026-11-20")
    first, second = group(0, sandbox), group(1, sandbox)
    assert states[f"{first}.start"] == "success"
    assert states["report"] == "success"
    assert_all_running(sandbox, 2)
    assert any(m["subject"].startswith(f"[backup up for retry] riak_startfail.{first}.start") for m in mails)

    # a node that will not start: alert, and no other node is stopped
    mails.clear()
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=0, handoff_polls=0, **FAST)
    kind.set_knobs(sandbox.nodes[0], start_fails=-1, **FAST)
    states = run(tmp_path, settings, "2026-11-21")
    assert states[f"{first}.start"] == "failed"
    assert states[f"{second}.stop"] == "upstream_failed"
    assert states["report"] == "failed"
    events = kind.read_timeline(sandbox)
    assert {e.node for e in events if e.event == "stop"} == {kind.node_name(sandbox.nodes[0])}
    assert kind.node_state(sandbox.nodes[1])["running"]
    assert any(m["subject"].startswith(f"[backup failed] riak_startfail.{first}.start") for m in mails)


def test_a_node_lost_while_stopped_stops_the_roll_for_good(sandbox, instances, airflow_db, tmp_path, mails):
    """Node 1's sshd dies for good while riak is stopped on it: its start fails every try, node 2's
    group never runs, and node 3 (two nodes on) must not be stopped either."""
    kind.reset_cluster(sandbox, primaries_missing_polls=0, handoff_polls=0, **FAST)
    first_node = sandbox.nodes[0]
    lost = threading.Event()

    def lose_node_one() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not lost.is_set():
            if kind.node_state(first_node)["stops"] >= 1:
                first_node.stop_sshd()
                lost.set()
            time.sleep(0.02)

    killer = threading.Thread(target=lose_node_one, daemon=True)
    killer.start()
    settings = entry(sandbox, instances, "lostnode", retries=2, alert_on_retry=False)
    try:
        states = run(tmp_path, settings, "2026-11-20")
    finally:
        lost.set()
        killer.join(5)
        first_node.start_sshd()
    first, second, third = (group(i, sandbox) for i in range(3))
    assert states[f"{first}.start"] == "failed", states
    assert states[f"{second}.stop"] == "upstream_failed"
    assert states[f"{third}.stop"] == "upstream_failed", states
    assert states["report"] == "failed"
    stopped = {e.node for e in kind.read_timeline(sandbox) if e.event == "stop"}
    assert stopped == {kind.node_name(first_node)}
    assert kind.node_state(sandbox.nodes[1])["stops"] == 0 and kind.node_state(sandbox.nodes[2])["stops"] == 0
    assert any(m["subject"].startswith(f"[backup failed] riak_lostnode.{first}.start") for m in mails)
    assert any(m["subject"].startswith("[backup FAILED] riak_lostnode") for m in mails)


def test_a_failed_preflight_stops_no_node(sandbox, instances, airflow_db, tmp_path, mails):
    kind.reset_cluster(sandbox, primaries_missing_polls=0, handoff_polls=0, **FAST)
    kind.set_knobs(sandbox.nodes[0], primaries_missing_polls=0, handoff_polls=0, transfers_failed=-1, **FAST)
    states = run(tmp_path, entry(sandbox, instances, "badpreflight", gate_timeout="3s"), "2026-11-20")
    assert states["preflight"] == "failed"
    for index in range(3):
        assert states[f"{group(index, sandbox)}.stop"] == "upstream_failed", states
    assert states["report"] == "failed"
    assert kind.read_timeline(sandbox) == []
    assert any(m["subject"].startswith("[backup failed] riak_badpreflight.preflight") for m in mails)


def test_a_gate_that_stays_closed_stops_the_roll(sandbox, instances, airflow_db, tmp_path, mails):
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=0, handoff_polls=0, **FAST)
    kind.set_knobs(sandbox.nodes[0], primaries_missing_polls=0, handoff_polls=0, handoff_never_finishes=True, **FAST)
    states = run(tmp_path, entry(sandbox, instances, "stuck", count=2, gate_timeout="4s"), "2026-11-20")
    first, second = group(0, sandbox), group(1, sandbox)
    assert states[f"{first}.vnodes_gate"] == "success"
    assert states[f"{first}.handoff_gate"] == "failed"
    assert states[f"{second}.stop"] == "upstream_failed"
    assert states["wait_snapshots"] == "success" and states["report"] == "failed"
    assert {e.node for e in kind.read_timeline(sandbox)} == {kind.node_name(sandbox.nodes[0])}
    assert_all_running(sandbox, 2)
    alert = next(m for m in mails if m["subject"].startswith(f"[backup failed] riak_stuck.{first}.handoff_gate"))
    assert "waiting to handoff 6 partitions" in alert["body"]


def test_ssh_outage_during_a_gate_is_retried(sandbox, instances, airflow_db, tmp_path, mails):
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=0, handoff_polls=0, **FAST)
    kind.set_knobs(sandbox.nodes[1], primaries_missing_polls=2, handoff_polls=2, **FAST)
    second = sandbox.nodes[1]
    settings = entry(sandbox, instances, "sshdrop", count=2, retries=1, alert_on_retry=True)
    outage = threading.Event()

    def cut_the_line() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the node is back and its vnodes gate is polling
            state = kind.node_state(second)
            if state["starts"] >= 1 and state["polls"] >= 1:
                second.stop_sshd()
                outage.set()
                break
            time.sleep(0.05)
        while time.monotonic() < deadline:  # until the gate task gave up on this try
            if any("up for retry" in m["subject"] for m in mails):
                break
            time.sleep(0.1)
        second.start_sshd()

    cutter = threading.Thread(target=cut_the_line, daemon=True)
    cutter.start()
    try:
        states = run(tmp_path, settings, "2026-11-20")
    finally:
        cutter.join(130)
        second.start_sshd()
    assert outage.is_set()
    gates = {k: v for k, v in states.items() if k.startswith(group(1, sandbox)) and k.endswith("_gate")}
    assert set(gates.values()) == {"success"}, states
    assert states["report"] == "success"
    assert_all_running(sandbox, 2)
    retry_mails = [m for m in mails if m["subject"].startswith("[backup up for retry] riak_sshdrop." + group(1, sandbox))]
    assert retry_mails, [m["subject"] for m in mails]
    assert "_gate" in retry_mails[0]["subject"]


def test_worker_killed_after_create_snapshots_retry_makes_no_second_snapshot(
    sandbox, instances, airflow_db, tmp_path, mails, monkeypatch
):
    """The worker dies after CreateSnapshots returned and before the task ended (simulated in the
    task's process: the call goes through, then the try dies); the retry must find the snapshots."""
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=0, handoff_polls=0, **FAST)
    real = EbsHook.create_snapshots_for_instance
    killed: list[str] = []

    def dies_after_the_call(self, instance_id, *args, **kwargs):
        made = real(self, instance_id, *args, **kwargs)
        if not killed:
            killed.append(instance_id)
            raise SystemExit("worker killed")
        return made

    monkeypatch.setattr(EbsHook, "create_snapshots_for_instance", dies_after_the_call)
    settings = entry(sandbox, instances, "killed", count=2, retries=1, alert_on_retry=True)
    states = run(tmp_path, settings, "2026-11-20")
    assert killed == [instances[0]]
    assert states[f"{group(0, sandbox)}.snapshot"] == "success"
    assert states["report"] == "success"
    assert Counter(s["VolumeId"] for s in snapshots_of(sandbox, "killed")) == Counter(
        {v: 1 for i in instances[:2] for v in kind.instance_volumes(sandbox, i)}
    )
    assert_all_running(sandbox, 2)
    assert any(m["subject"].startswith("[backup up for retry] riak_killed." + group(0, sandbox) + ".snapshot") for m in mails)


def test_manual_trigger_during_a_running_run_stays_queued(sandbox, instances, airflow_db, tmp_path):
    """The scheduler's own query for queued runs leaves a manual trigger waiting while a run of
    the cluster is running, and picks it up once that run ended."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType

    kind.reset_cluster(sandbox, count=1, **FAST)
    settings = entry(sandbox, instances, "queued", count=1)
    with clusters_file(tmp_path, {"entries": [settings]}):
        dag = load_dag("riak_queued")
        run_dag(dag, "2026-11-20", conf={"dry_run": True})  # registers the DAG like the dag-processor
        with create_session() as session:
            session.query(DagModel).filter_by(dag_id="riak_queued").update({"is_paused": False, "is_stale": False})
            scheduled = session.query(DagRun).filter_by(dag_id="riak_queued").one()
            scheduled.state = DagRunState.RUNNING  # a scheduled run in progress
        manual = trigger_dag("riak_queued", triggered_by=DagRunTriggeredByType.UI, run_id="manual_during_run",
                             logical_date=None)
        assert manual is not None and manual.state == DagRunState.QUEUED
        time.sleep(1.5)  # the scheduler only looks at runs whose run_after has passed (SQLite: 1 s steps)

        def picked_up() -> set[str]:
            with create_session() as session:
                return {r.run_id for r in DagRun.get_queued_dag_runs_to_set_running(session) if r.dag_id == "riak_queued"}

        assert picked_up() == set()
        with create_session() as session:
            session.query(DagRun).filter_by(dag_id="riak_queued", run_id=scheduled.run_id).update(
                {"state": DagRunState.SUCCESS}
            )
        assert picked_up() == {"manual_during_run"}


def test_one_run_at_a_time(sandbox, instances, airflow_db, tmp_path):
    with clusters_file(tmp_path, {"entries": [entry(sandbox, instances, "single")]}):
        dag = load_dag("riak_single")
    assert dag.max_active_runs == 1
    order = [node.node_id for node in dag.task_group.topological_sort()]
    assert order[:2] == ["wait_for_other_runs", "preflight"]
    assert [order.index(group(i, sandbox)) for i in range(3)] == sorted(order.index(group(i, sandbox)) for i in range(3))
    stops = [t for t in dag.task_ids if t.endswith(".stop")]
    assert len(stops) == 3
    # every stop after the first waits for the previous node's handoff gate
    for previous, current in zip(stops, stops[1:], strict=False):
        gate = previous.replace(".stop", ".handoff_gate")
        assert gate in dag.get_task(current).upstream_task_ids


def test_riak_kv_that_never_comes_up_is_bounded_and_stops_the_roll(sandbox, instances, airflow_db, tmp_path, mails):
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=0, handoff_polls=0, **FAST)
    kind.set_knobs(sandbox.nodes[0], primaries_missing_polls=0, handoff_polls=0, kv_never_up=True, **FAST)
    started = time.monotonic()
    states = run(tmp_path, entry(sandbox, instances, "kvdown", count=2, service_timeout="3s"), "2026-11-20")
    first, second = group(0, sandbox), group(1, sandbox)
    assert states[f"{first}.start"] == "success"
    assert states[f"{first}.wait_riak_kv"] == "failed"
    assert states[f"{second}.stop"] == "upstream_failed"  # the next node is never taken down
    assert states["report"] == "failed"
    assert time.monotonic() - started < 120  # the 3 s bound, not the sandbox's patience, ended the wait
    assert {e.node for e in kind.read_timeline(sandbox)} == {kind.node_name(sandbox.nodes[0])}
    assert_all_running(sandbox, 2)
    assert any(m["subject"].startswith(f"[backup failed] riak_kvdown.{first}.wait_riak_kv") for m in mails)


def test_retention_prunes_by_the_policy_per_volume_and_keeps_foreign_snapshots(
    sandbox, instances, airflow_db, tmp_path
):
    kind.reset_cluster(sandbox, count=1, primaries_missing_polls=0, handoff_polls=0, **FAST)
    ec2 = sandbox.boto3_client("ec2")
    volume = kind.instance_volumes(sandbox, instances[0])[0]
    foreign = ec2.create_snapshot(VolumeId=volume, Description="by hand")["SnapshotId"]
    settings = entry(sandbox, instances, "keep2", count=1, retention={"keep_last": 2})
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        states = run(tmp_path, settings, day)
        assert states["retention"] == "success" and states["report"] == "success", states

    def dates_by_volume() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for snapshot in snapshots_of(sandbox, "keep2"):
            found.setdefault(snapshot["VolumeId"], []).append(tags(snapshot)["backup:logical-date"][:10])
        return {v: sorted(d) for v, d in found.items()}

    expected = {v: ["2026-11-02", "2026-11-03"] for v in kind.instance_volumes(sandbox, instances[0])}
    assert dates_by_volume() == expected
    # a dry run the next day would prune 2026-11-02, and prunes nothing
    states = run(tmp_path, settings, "2026-11-04", conf={"dry_run": True})
    assert states["retention"] == "success", states
    assert dates_by_volume() == expected
    assert ec2.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["State"] == "completed"
