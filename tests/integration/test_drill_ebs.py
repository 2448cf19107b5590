"""ebs_<name>_drill against the sandbox (moto EC2 in server mode; real sshd nodes standing for the live
instance and for the drill instance, their simulated block devices written on every attach/detach):
a drill after a backup passes and leaves no scratch volume, the live volume and the snapshots as they
were; a failing check fails naming the volume and still cleans up; a live drill instance is refused."""

from __future__ import annotations

import html
import uuid

import pytest

from airflow_backup_provider.config.loading import parse_clusters
from airflow_backup_provider.stores.ebs import TAG_DRILL_RUN, TAG_LAST_DRILL
from tests.harness import clusters_file, load_dag, run_dag, xcom
from tests.integration.test_drill_bup import last_run_id
from tests.integration.test_ebs_dag import entry, our_snapshots
from tests.integration.test_ebs_restore import tags
from tests.sandbox import block

pytestmark = pytest.mark.sandbox


def scratch_volumes(ec2, name: str) -> list[dict]:
    found = ec2.describe_volumes(Filters=[{"Name": f"tag:{TAG_DRILL_RUN}", "Values": [f"ebs_{name}_drill/*"]}])
    return [v for v in found["Volumes"] if v["State"] not in ("deleted",)]


def stand_up(sandbox):
    """A live instance with a mounted data volume (node 1) and a drill instance (node 2)."""
    ec2 = sandbox.boto3_client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    made = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": "us-east-1a"})
    live = made["Instances"][0]["InstanceId"]
    original = ec2.create_volume(AvailabilityZone="us-east-1a", Size=2)["VolumeId"]
    ec2.attach_volume(VolumeId=original, InstanceId=live, Device="/dev/sdf")
    live_node, drill_node = sandbox.nodes[0], sandbox.nodes[1]
    block.stand_for_instance(sandbox, live_node, live, {"/dev/sdf": "/data"})
    drill = block.make_drill_instance(sandbox, drill_node, "us-east-1a")
    return ec2, live, drill, original, live_node, drill_node


def attached_to(ec2, instance_id: str) -> list[str]:
    found = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]
    return sorted(v["VolumeId"] for v in found)


def live_state(ec2, name: str, original: str) -> tuple:
    volume = ec2.describe_volumes(VolumeIds=[original])["Volumes"][0]
    snapshots = sorted(
        (s["SnapshotId"], s["State"], s["VolumeId"], tuple(sorted((k, v) for k, v in tags(s).items() if k != TAG_LAST_DRILL)))
        for s in our_snapshots(ec2, name)
    )
    return volume["State"], [(a["InstanceId"], a["Device"], a["State"]) for a in volume["Attachments"]], snapshots


def drill_entry(name, original, live_node, drill, drill_node, folder, **fields):
    return entry(
        name, volume_ids=[original], restore_timeout="60s",
        mounts=[{"volume_id": original, "host": live_node.address, "path": "/data"}],
        drill_instance_id=drill, drill_host=drill_node.address, drill_folder=str(folder), **fields,
    )


def test_a_drill_after_a_backup_passes_and_leaves_nothing_behind(airflow_db, sandbox, tmp_path, mails):
    ec2, live, drill, original, live_node, drill_node = stand_up(sandbox)
    name = f"d{uuid.uuid4().hex[:8]}"
    with clusters_file(tmp_path, drill_entry(name, original, live_node, drill, drill_node, tmp_path / "drills")):
        assert run_dag(load_dag(f"ebs_{name}"), "2026-11-20")["report"] == "success"
        before = live_state(ec2, name, original)
        mounts_before = block.mounted(live_node)
        on_drill_instance = attached_to(ec2, drill)  # its root volume
        (snapshot,) = our_snapshots(ec2, name)
        states = run_dag(load_dag(f"ebs_{name}_drill"), "2026-11-22")
    assert states["drill"] == "success" and states["cleanup_scratch"] == "success" and states["report"] == "success", states
    outcome = xcom(f"ebs_{name}_drill", last_run_id(f"ebs_{name}_drill"), "drill", key="backup_outcome")
    # the scratch volume's filesystem UUID was compared with the live volume's, read on its node
    assert "the snapshot's)" in outcome["detail"] and snapshot["SnapshotId"] in outcome["detail"], outcome
    assert scratch_volumes(ec2, name) == []
    assert live_state(ec2, name, original) == before  # the live volume where it was, the snapshots unchanged
    assert block.mounted(live_node) == mounts_before == {"/data": original}
    assert block.mounted(drill_node) == {}
    drilled = ec2.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])["Snapshots"][0]
    assert tags(drilled)[TAG_LAST_DRILL].startswith("passed@")
    report = [m["body"] for m in mails if f"ebs_{name}_drill" in m["subject"]][-1]
    assert snapshot["SnapshotId"] in report and "passed" in report
    assert attached_to(ec2, drill) == on_drill_instance  # nothing of the drill left attached
    assert not (tmp_path / "drills" / f"ebs_{name}_drill").exists()  # the sandbox's nodes share this disk


def test_a_failing_check_fails_naming_the_volume_and_still_cleans_up(airflow_db, sandbox, tmp_path, mails):
    ec2, live, drill, original, live_node, drill_node = stand_up(sandbox)
    name = f"f{uuid.uuid4().hex[:8]}"
    settings = drill_entry(
        name, original, live_node, drill, drill_node, tmp_path / "drills", drill_check=["test", "-e", "{mount_point}/etc/must-exist"]
    )
    with clusters_file(tmp_path, settings):
        assert run_dag(load_dag(f"ebs_{name}"), "2026-11-20")["report"] == "success"
        (snapshot,) = our_snapshots(ec2, name)
        mails.clear()
        states = run_dag(load_dag(f"ebs_{name}_drill"), "2026-11-22")
    assert states["drill"] == "failed" and states["cleanup_scratch"] == "success" and states["report"] == "failed", states
    failure = html.unescape(next(m["body"] for m in mails if f"ebs_{name}_drill.drill" in m["subject"]))
    assert original in failure and snapshot["SnapshotId"] in failure, failure
    assert scratch_volumes(ec2, name) == []
    assert block.mounted(drill_node) == {}
    assert not (tmp_path / "drills" / f"ebs_{name}_drill").exists()  # the sandbox's nodes share this disk
    drilled = ec2.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])["Snapshots"][0]
    assert tags(drilled)[TAG_LAST_DRILL].startswith("failed@")


def test_a_drill_instance_a_listed_volume_is_attached_to_is_refused_by_the_plan(airflow_db, sandbox, tmp_path, mails):
    ec2, live, drill, original, live_node, drill_node = stand_up(sandbox)
    name = f"l{uuid.uuid4().hex[:8]}"
    with clusters_file(tmp_path, drill_entry(name, original, live_node, live, live_node, tmp_path / "drills")):
        assert run_dag(load_dag(f"ebs_{name}"), "2026-11-20")["report"] == "success"
        before = live_state(ec2, name, original)
        states = run_dag(load_dag(f"ebs_{name}_drill"), "2026-11-22")
    assert states["plan"] == "failed" and states["create"] == "upstream_failed" and states["report"] == "failed", states
    failure = html.unescape(next(m["body"] for m in mails if f"ebs_{name}_drill.plan" in m["subject"]))
    assert f"field 'drill_instance_id': value '{live}' is the instance volume {original} is attached to" in failure, failure
    assert scratch_volumes(ec2, name) == [] and live_state(ec2, name, original) == before


def test_a_drill_instance_that_is_a_live_one_is_refused():
    settings = entry("live", instance_id="i-0123456789abcdef0", drill_instance_id="i-0123456789abcdef0", drill_host="10.0.0.9")
    (error,) = parse_clusters(settings).errors
    assert "field 'drill_instance_id': value 'i-0123456789abcdef0' is the entry's instance_id" in str(error), error
    riak = {"entries": [{
        "kind": "riak", "name": "ring", "drill_instance_id": "i-0aaaaaaaaaaaaaaaa", "drill_host": "10.0.0.9",
        "nodes": [{"host": "10.0.0.1", "instance_id": "i-0bbbbbbbbbbbbbbbb"}, {"host": "10.0.0.2", "instance_id": "i-0aaaaaaaaaaaaaaaa"}],
    }]}
    (error,) = parse_clusters(riak).errors
    assert "field 'drill_instance_id': value 'i-0aaaaaaaaaaaaaaaa' is the instance of node 10.0.0.2" in str(error), error


def test_a_riak_drill_checks_every_nodes_data_volume_and_leaves_the_nodes_alone(airflow_db, sandbox, tmp_path, mails):
    from tests.integration import test_riak_restore as riak

    ec2 = sandbox.boto3_client("ec2")
    instances = riak.kind.make_instances(sandbox, 2)
    riak.reset(sandbox, instances, count=2)
    zone = ec2.describe_instances(InstanceIds=[instances[0]])["Reservations"][0]["Instances"][0]["Placement"]["AvailabilityZone"]
    drill_node = sandbox.nodes[2]
    drill = block.make_drill_instance(sandbox, drill_node, zone)
    name = f"rd{uuid.uuid4().hex[:6]}"
    settings = riak.entry(
        sandbox, instances, name, count=2, drill_instance_id=drill, drill_host=drill_node.address,
        drill_folder=str(tmp_path / "drills"),
    )
    assert riak.run(tmp_path, settings, f"riak_{name}", riak.DAY1)["report"] == "success"
    before = {i: riak.attached(sandbox, i) for i in instances}
    on_drill_instance = attached_to(ec2, drill)
    states = riak.run(tmp_path, settings, f"riak_{name}_drill", "2026-11-22")
    assert states["drill"] == "success" and states["cleanup_scratch"] == "success" and states["report"] == "success", states
    assert {i: riak.attached(sandbox, i) for i in instances} == before  # every node's volumes as they were
    assert attached_to(ec2, drill) == on_drill_instance
    found = ec2.describe_volumes(Filters=[{"Name": f"tag:{TAG_DRILL_RUN}", "Values": [f"riak_{name}_drill/*"]}])["Volumes"]
    assert found == []
    drilled = [
        s for s in ec2.describe_snapshots(Filters=[{"Name": f"tag:{TAG_LAST_DRILL}", "Values": ["passed@*"]}])["Snapshots"]
        if tags(s).get("backup:name", "").endswith(name)
    ]
    # one data volume per node (the root is not drilled)
    assert sorted(tags(s)["backup:volume"] for s in drilled) == sorted(
        before[i][riak.kind.DATA_DEVICE]["VolumeId"] for i in instances
    )
    assert block.mounted(drill_node) == {}
    assert not (tmp_path / "drills" / f"riak_{name}_drill").exists()
