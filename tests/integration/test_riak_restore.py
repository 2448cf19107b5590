"""riak_<name>_restore against the sandbox (real sshd, simulated riak and block devices, moto EC2 in
server mode, real SMTP): two backups on two dates, then a rolling restore of the first date, and
the faults: an attach that fails after the detach, a start that fails after the swap, a busy mount
point, a wrong confirm."""

from __future__ import annotations

import html

import pytest

from airflow_backup_provider.hooks.ebs import EbsHook
from tests.harness import clusters_file, load_dag, run_dag
from tests.sandbox.kinds import riak as kind

pytestmark = pytest.mark.sandbox

FAST = {"stop_seconds": 0.05, "start_seconds": 0.05, "kv_not_up_lines": 1, "wait_interval": 0.05}
ALERT = "oncall@example.com"
DAY1, DAY2 = "2026-11-20", "2026-11-21"
DAY1_TAG = "2026-11-20T00:00:00+00:00"


@pytest.fixture(scope="module")
def instances(sandbox):
    return kind.make_instances(sandbox, 3)


def entry(sandbox, instances, name: str, count: int = 3, **overrides) -> dict:
    nodes = [
        {
            "host": node.address,
            "node_name": kind.node_name(node),
            "instance_id": instance_id,
            "mounts": {kind.DATA_DEVICE: kind.DATA_MOUNT},
        }
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
        "restore_timeout": "60s",
        "deferrable": True,
    }
    settings.update(overrides)
    return settings


def reset(sandbox, instances, count: int = 3) -> None:
    kind.reset_cluster(sandbox, count=count, primaries_missing_polls=1, handoff_polls=1, **FAST)
    for node, instance_id in zip(sandbox.nodes[:count], instances, strict=False):
        kind.stand_for_instance(sandbox, node, instance_id, {kind.DATA_DEVICE: kind.DATA_MOUNT})


def run(tmp_path, settings: dict, dag_id: str, logical_date: str, conf: dict | None = None) -> dict[str, str]:
    with clusters_file(tmp_path, {"entries": [settings]}):
        return run_dag(load_dag(dag_id), logical_date, conf=conf)


def tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def attached(sandbox, instance_id: str) -> dict[str, dict]:
    """{device: volume} of the instance, as EC2 has it."""
    ec2 = sandbox.boto3_client("ec2")
    found = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]
    return {v["Attachments"][0]["Device"]: v for v in found}


def snapshots_of(sandbox, cluster: str, node: str, date_tag: str) -> dict[str, dict]:
    """{source volume: snapshot} of one node and date."""
    ec2 = sandbox.boto3_client("ec2")
    found = ec2.describe_snapshots(
        OwnerIds=["self"],
        Filters=[
            {"Name": "tag:backup:cluster", "Values": [cluster]},
            {"Name": "tag:backup:node", "Values": [node]},
            {"Name": "tag:backup:logical-date", "Values": [date_tag]},
        ],
    )["Snapshots"]
    return {tags(s)["backup:volume"]: s for s in found}


def volumes_of_run(sandbox, run_marker: str) -> list[dict]:
    ec2 = sandbox.boto3_client("ec2")
    found = ec2.describe_volumes(Filters=[{"Name": "tag-key", "Values": ["backup:restore-run"]}])["Volumes"]
    return [v for v in found if run_marker in tags(v)["backup:restore-run"]]


def group(index: int, sandbox) -> str:
    return f"node{index + 1}_" + sandbox.nodes[index].address.replace(".", "_")


def backups(sandbox, instances, tmp_path, settings: dict, count: int = 3) -> None:
    for day in (DAY1, DAY2):
        reset(sandbox, instances, count)
        states = run(tmp_path, settings, f"riak_{settings['name']}", day)
        assert states["report"] == "success", states


def test_rolling_restore_of_the_first_date_on_every_node(sandbox, instances, airflow_db, tmp_path, mails, monkeypatch):
    settings = entry(sandbox, instances, "rr", retries=1)
    backups(sandbox, instances, tmp_path, settings)
    before = {i: attached(sandbox, i) for i in instances}
    reset(sandbox, instances)
    mails.clear()
    # the worker dies once right after CreateVolume went through: the retry must find that volume
    real = EbsHook.create_volume
    killed: list[str] = []

    def dies_after_the_call(self, spec):
        made = real(self, spec)
        if not killed:
            killed.append(made.id)
            raise SystemExit("worker killed")
        return made

    monkeypatch.setattr(EbsHook, "create_volume", dies_after_the_call)

    states = run(tmp_path, settings, "riak_rr_restore", "2026-12-01", conf={"logical_date": DAY1, "confirm": "rr"})
    assert states["report"] == "success", states
    assert killed and killed[0] in {attached(sandbox, i)[kind.DATA_DEVICE]["VolumeId"] for i in instances}
    assert len([v for v in volumes_of_run(sandbox, "") if tags(v)["backup:name"] == "riak_rr"]) == 3
    for index, (node, instance_id) in enumerate(zip(sandbox.nodes, instances, strict=True)):
        name = kind.node_name(node)
        day1 = snapshots_of(sandbox, "rr", name, DAY1_TAG)
        now = attached(sandbox, instance_id)
        assert set(now) == set(before[instance_id])  # the same devices
        old = before[instance_id][kind.DATA_DEVICE]
        new = now[kind.DATA_DEVICE]
        assert new["State"] == "in-use" and new["VolumeId"] != old["VolumeId"]
        assert new["SnapshotId"] == day1[old["VolumeId"]]["SnapshotId"]  # the first date's, not the second's
        assert tags(new)["backup:restored-from"] == new["SnapshotId"]
        assert tags(new)["backup:restore-run"].startswith("manual__") or tags(new)["backup:restore-run"]
        # the root volume is not swapped
        assert now["/dev/sda1"]["VolumeId"] == before[instance_id]["/dev/sda1"]["VolumeId"]
        # the replaced volume still exists, detached and tagged
        replaced = sandbox.boto3_client("ec2").describe_volumes(VolumeIds=[old["VolumeId"]])["Volumes"][0]
        assert replaced["State"] == "available"
        assert tags(replaced)["backup:replaced-by"] == new["VolumeId"]
        # mounted again from the new volume
        assert kind.mounted(node) == {kind.DATA_MOUNT: new["VolumeId"]}
        assert kind.node_state(node)["running"]
        assert states[f"{group(index, sandbox)}.rollback"] == "skipped"

    events = kind.read_timeline(sandbox)
    assert [(e.node, e.event) for e in events] == [
        (kind.node_name(n), event) for n in sandbox.nodes for event in ("stop", "start")
    ]
    assert kind.max_down_at_once(events) == 1
    report = next(html.unescape(m["body"]) for m in mails if "riak_rr_restore" in m["subject"])
    for instance_id in instances:
        assert attached(sandbox, instance_id)[kind.DATA_DEVICE]["VolumeId"] in report



def test_attach_failing_after_the_detach_puts_the_original_back(sandbox, instances, airflow_db, tmp_path, mails):
    settings = entry(sandbox, instances, "rattach", count=2)
    backups(sandbox, instances, tmp_path, settings, count=2)
    before = attached(sandbox, instances[0])[kind.DATA_DEVICE]["VolumeId"]
    day1 = snapshots_of(sandbox, "rattach", kind.node_name(sandbox.nodes[0]), DAY1_TAG)[before]["SnapshotId"]
    ec2 = sandbox.boto3_client("ec2")
    ec2.create_tags(Resources=[instances[0]], Tags=[{"Key": "sandbox:refuse-attach", "Value": day1}])
    try:
        reset(sandbox, instances, 2)
        mails.clear()
        states = run(tmp_path, settings, "riak_rattach_restore", "2026-12-02", conf={"logical_date": DAY1, "confirm": "rattach"})
    finally:
        ec2.delete_tags(Resources=[instances[0]], Tags=[{"Key": "sandbox:refuse-attach"}])
    first, second = group(0, sandbox), group(1, sandbox)
    assert states[f"{first}.swap"] == "failed", states
    assert states[f"{first}.rollback"] == "success", states
    assert states[f"{first}.start"] == "success", states
    assert states[f"{second}.stop"] == "upstream_failed", states
    assert states["report"] == "failed"
    volume = attached(sandbox, instances[0])[kind.DATA_DEVICE]
    assert volume["VolumeId"] == before and volume["State"] == "in-use"
    assert "backup:replaced-by" not in tags(volume)
    assert kind.mounted(sandbox.nodes[0]) == {kind.DATA_MOUNT: before}
    # only this run's volumes are gone: node 2's were made too (while node 1 ran) and deleted by its rollback
    assert [v for v in volumes_of_run(sandbox, "") if tags(v).get("backup:name") == "riak_rattach"] == []
    assert kind.node_state(sandbox.nodes[0])["running"] and kind.node_state(sandbox.nodes[1])["running"]
    assert {e.node for e in kind.read_timeline(sandbox) if e.event == "stop"} == {kind.node_name(sandbox.nodes[0])}
    assert any(m["subject"].startswith(f"[backup failed] riak_rattach_restore.{first}.swap") for m in mails)


def test_start_failing_after_the_swap_alerts_and_stops_no_other_node(sandbox, instances, airflow_db, tmp_path, mails):
    settings = entry(sandbox, instances, "rstart", count=2)
    backups(sandbox, instances, tmp_path, settings, count=2)
    reset(sandbox, instances, 2)
    kind.set_knobs(sandbox.nodes[0], start_fails=-1, **FAST)
    mails.clear()
    states = run(tmp_path, settings, "riak_rstart_restore", "2026-12-03", conf={"logical_date": DAY1, "confirm": "rstart"})
    first, second = group(0, sandbox), group(1, sandbox)
    assert states[f"{first}.mount"] == "success", states
    assert states[f"{first}.start"] == "failed", states
    assert states[f"{second}.stop"] == "upstream_failed", states
    assert states["report"] == "failed"
    assert {e.node for e in kind.read_timeline(sandbox) if e.event == "stop"} == {kind.node_name(sandbox.nodes[0])}
    assert kind.node_state(sandbox.nodes[1])["running"]
    assert any(m["subject"].startswith(f"[backup failed] riak_rstart_restore.{first}.start") for m in mails)


def test_a_busy_mount_point_refuses_the_swap_before_any_detach(sandbox, instances, airflow_db, tmp_path, mails):
    settings = entry(sandbox, instances, "rbusy", count=1)
    backups(sandbox, instances, tmp_path, settings, count=1)
    before = attached(sandbox, instances[0])[kind.DATA_DEVICE]["VolumeId"]
    reset(sandbox, instances, 1)
    kind.set_busy(sandbox.nodes[0], [kind.DATA_MOUNT])
    mails.clear()
    states = run(tmp_path, settings, "riak_rbusy_restore", "2026-12-04", conf={"logical_date": DAY1, "confirm": "rbusy"})
    first = group(0, sandbox)
    assert states[f"{first}.swap"] == "failed" and states[f"{first}.start"] == "success", states
    assert attached(sandbox, instances[0])[kind.DATA_DEVICE]["VolumeId"] == before
    assert kind.mounted(sandbox.nodes[0]) == {kind.DATA_MOUNT: before}
    assert [v for v in volumes_of_run(sandbox, "") if tags(v).get("backup:name") == "riak_rbusy"] == []
    failure = next(html.unescape(m["body"]) for m in mails if f"{first}.swap" in m["subject"])
    assert f"{kind.DATA_MOUNT} is busy" in failure, failure


def test_a_wrong_confirm_does_nothing_and_says_why(sandbox, instances, airflow_db, tmp_path, mails):
    settings = entry(sandbox, instances, "rconfirm", count=1)
    backups(sandbox, instances, tmp_path, settings, count=1)
    reset(sandbox, instances, 1)
    mails.clear()
    states = run(tmp_path, settings, "riak_rconfirm_restore", "2026-12-05", conf={"logical_date": DAY1, "confirm": "rconfirn"})
    assert states["plan"] == "failed", states
    assert states[f"{group(0, sandbox)}.stop"] == "upstream_failed", states
    assert kind.read_timeline(sandbox) == []
    assert [v for v in volumes_of_run(sandbox, "") if tags(v).get("backup:name") == "riak_rconfirm"] == []
    failure = next(html.unescape(m["body"]) for m in mails if "riak_rconfirm_restore.plan" in m["subject"])
    assert "param 'confirm': value 'rconfirn' must be the entry name 'rconfirm'" in failure, failure


def test_cluster_mode_takes_every_node_back_to_the_date_with_every_node_down_at_once(
    sandbox, instances, airflow_db, tmp_path, mails
):
    settings = entry(sandbox, instances, "rcluster")
    backups(sandbox, instances, tmp_path, settings)
    before = {i: attached(sandbox, i)[kind.DATA_DEVICE]["VolumeId"] for i in instances}
    reset(sandbox, instances)
    conf = {"logical_date": DAY1, "confirm": "rcluster", "mode": "cluster"}
    states = run(tmp_path, settings, "riak_rcluster_restore", "2026-12-06", conf=conf)
    assert states["report"] == "success", states
    assert states["cluster.ring_gate"] == "success", states
    assert states[f"{group(0, sandbox)}.stop"] == "skipped" and states[f"{group(0, sandbox)}.create"] == "skipped"
    for node, instance_id in zip(sandbox.nodes, instances, strict=True):
        day1 = snapshots_of(sandbox, "rcluster", kind.node_name(node), DAY1_TAG)
        new = attached(sandbox, instance_id)[kind.DATA_DEVICE]
        assert new["SnapshotId"] == day1[before[instance_id]]["SnapshotId"] and new["State"] == "in-use"
        replaced = sandbox.boto3_client("ec2").describe_volumes(VolumeIds=[before[instance_id]])["Volumes"][0]
        assert tags(replaced)["backup:replaced-by"] == new["VolumeId"]
        assert kind.mounted(node) == {kind.DATA_MOUNT: new["VolumeId"]}
        assert kind.node_state(node)["running"]
    events = kind.read_timeline(sandbox)
    stops = [e.at for e in events if e.event == "stop"]
    starts = [e.at for e in events if e.event == "start"]
    assert len(stops) == len(starts) == 3 and max(stops) < min(starts)  # every node down, then every node up


def test_cluster_mode_a_failed_attach_on_one_node_puts_every_node_back(sandbox, instances, airflow_db, tmp_path, mails):
    settings = entry(sandbox, instances, "rclback", count=2)
    backups(sandbox, instances, tmp_path, settings, count=2)
    before = {i: attached(sandbox, i)[kind.DATA_DEVICE]["VolumeId"] for i in instances[:2]}
    second = snapshots_of(sandbox, "rclback", kind.node_name(sandbox.nodes[1]), DAY1_TAG)[before[instances[1]]]["SnapshotId"]
    ec2 = sandbox.boto3_client("ec2")
    ec2.create_tags(Resources=[instances[1]], Tags=[{"Key": "sandbox:refuse-attach", "Value": second}])
    try:
        reset(sandbox, instances, 2)
        mails.clear()
        conf = {"logical_date": DAY1, "confirm": "rclback", "mode": "cluster"}
        states = run(tmp_path, settings, "riak_rclback_restore", "2026-12-07", conf=conf)
    finally:
        ec2.delete_tags(Resources=[instances[1]], Tags=[{"Key": "sandbox:refuse-attach"}])
    first_node, second_node = f"cluster.{group(0, sandbox)}", f"cluster.{group(1, sandbox)}"
    assert states[f"{second_node}.swap"] == "failed", states
    assert states[f"{first_node}.mount"] == "success", states  # node 1 was swapped ...
    assert states[f"{first_node}.rollback"] == "success" and states[f"{second_node}.rollback"] == "success", states
    assert states["report"] == "failed"
    for node, instance_id in zip(sandbox.nodes[:2], instances[:2], strict=True):
        volume = attached(sandbox, instance_id)[kind.DATA_DEVICE]
        assert volume["VolumeId"] == before[instance_id] and "backup:replaced-by" not in tags(volume)  # ... and put back
        assert kind.mounted(node) == {kind.DATA_MOUNT: before[instance_id]}
        assert kind.node_state(node)["running"]
    assert [v for v in volumes_of_run(sandbox, "") if tags(v).get("backup:name") == "riak_rclback"] == []
    assert any(m["subject"].startswith(f"[backup failed] riak_rclback_restore.{second_node}.swap") for m in mails)
