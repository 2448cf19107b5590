"""`copy_to`: the ebs_<name> DAG copies each completed snapshot into another region once, tags
carried over, and that region applies its own retention to the copies (sandbox moto, two regions)."""

from __future__ import annotations

import uuid

import boto3
import pytest

from airflow_backup_provider.stores.ebs import (
    TAG_LOGICAL_DATE,
    TAG_SOURCE_REGION,
    TAG_SOURCE_SNAPSHOT,
    TAG_VOLUME,
)
from tests.harness import clusters_file, load_dag, run_dag
from tests.integration.test_ebs_dag import entry, new_volume, our_snapshots

pytestmark = pytest.mark.sandbox

COPY_REGION = "us-west-2"


@pytest.fixture
def ec2(sandbox):
    return sandbox.boto3_client("ec2")


@pytest.fixture
def ec2_copies(sandbox):
    return boto3.client(
        "ec2", endpoint_url=sandbox.moto_url, region_name=COPY_REGION,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def tags(snapshot: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in snapshot.get("Tags") or []}


def test_each_snapshot_is_copied_once_and_each_region_keeps_its_own_policy(airflow_db, sandbox, ec2, ec2_copies, tmp_path):
    name = f"c{uuid.uuid4().hex[:8]}"
    volumes = sorted([new_volume(ec2), new_volume(ec2)])
    copy_to = [{"region": COPY_REGION, "retention": {"keep_last": 1}}]
    with clusters_file(tmp_path, entry(name, volume_ids=volumes, tags={"team": "db"}, copy_to=copy_to)):
        dag = load_dag(f"ebs_{name}")
        for day in ("2026-11-18", "2026-11-19", "2026-11-20"):
            states = run_dag(dag, day)
            assert states["report"] == "success", states
        copies_before = {s["SnapshotId"] for s in our_snapshots(ec2_copies, name)}
        # the same day again: its snapshots have their copies, nothing is copied twice
        states = run_dag(dag, "2026-11-20")
        assert states["report"] == "success", states
        assert states[f"volume.copy_{COPY_REGION}[0]"] == "success"
    sources = {s["SnapshotId"]: s for s in our_snapshots(ec2, name)}
    copies = our_snapshots(ec2_copies, name)
    assert {s["SnapshotId"] for s in copies} == copies_before
    assert len(sources) == 4  # keep_last 2 per volume in the entry's region
    assert len(copies) == 2  # keep_last 1 per volume in the copy's region
    for copy in copies:
        copy_tags = tags(copy)
        source = sources[copy_tags[TAG_SOURCE_SNAPSHOT]]  # its source is still there, in the first region
        assert copy_tags[TAG_SOURCE_REGION] == "us-east-1"
        assert copy_tags[TAG_LOGICAL_DATE] == "2026-11-20T00:00:00+00:00"
        assert {k: v for k, v in copy_tags.items() if k not in (TAG_SOURCE_SNAPSHOT, TAG_SOURCE_REGION)} == tags(source)
        assert copy_tags["team"] == "db"
        assert copy["VolumeId"] == "vol-ffffffff"  # EC2's arbitrary id: copies are told apart by their tag
    assert sorted(tags(c)[TAG_VOLUME] for c in copies) == volumes


def test_a_dry_run_copies_nothing_and_copies_are_encrypted_with_the_regions_key(airflow_db, sandbox, ec2, ec2_copies, tmp_path):
    name = f"k{uuid.uuid4().hex[:8]}"
    volume = new_volume(ec2)
    key = boto3.client(
        "kms", endpoint_url=sandbox.moto_url, region_name=COPY_REGION,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).create_key()["KeyMetadata"]["KeyId"]
    copy_to = [{"region": COPY_REGION, "kms_key_id": key}]
    with clusters_file(tmp_path, entry(name, volume_ids=[volume], copy_to=copy_to)):
        dag = load_dag(f"ebs_{name}")
        states = run_dag(dag, "2026-11-20", conf={"dry_run": True})
        assert states["report"] == "success", states
        assert our_snapshots(ec2_copies, name) == []
        states = run_dag(dag, "2026-11-20")
        assert states["report"] == "success", states
    (copy,) = our_snapshots(ec2_copies, name)
    assert copy.get("KmsKeyId", "").endswith(key)


def test_the_entrys_own_region_is_no_copy_region(tmp_path):
    from airflow_backup_provider.config import parse_clusters

    parsed = parse_clusters(entry("x", volume_ids=["vol-0123456789abcdef0"], region="us-west-2", copy_to=[{"region": "us-west-2"}]))
    assert parsed.entries == []
    assert "copy_to" in str(parsed.errors[0]) and "us-west-2" in str(parsed.errors[0])


def test_a_region_that_refuses_the_copy_fails_the_copy_and_alerts_while_the_backup_stands(
    airflow_db, sandbox, ec2, ec2_copies, tmp_path, mails
):
    name = f"r{uuid.uuid4().hex[:8]}"
    volume = new_volume(ec2)
    # the sandbox's moto answers CopySnapshot into that region with OptInRequired (see moto_server.py)
    refuse = {"sandbox:refuse-copy-to": COPY_REGION}
    with clusters_file(tmp_path, entry(name, volume_ids=[volume], tags=refuse, copy_to=[{"region": COPY_REGION}])):
        dag = load_dag(f"ebs_{name}")
        states = run_dag(dag, "2026-11-20")
    assert states["volume.snapshot[0]"] == "success"
    assert states["volume.retention[0]"] == "success"
    assert states[f"volume.copy_{COPY_REGION}[0]"] == "failed"
    assert states[f"volume.retention_{COPY_REGION}[0]"] == "upstream_failed"
    assert states["report"] == "failed"
    (source,) = our_snapshots(ec2, name)
    assert source["State"] == "completed"
    assert our_snapshots(ec2_copies, name) == []
    alert = next(m for m in mails if m["subject"].startswith(f"[backup failed] ebs_{name}.volume.copy_{COPY_REGION}"))
    assert "OptInRequired" in alert["body"], alert["body"][:2000]
    report = [m for m in mails if f"ebs_{name}" in m["subject"] and "FAILED" in m["subject"]][-1]
    assert f"copy_{COPY_REGION}" in report["body"]


def test_a_riak_clusters_snapshots_are_copied_after_the_roll_with_their_own_retention(
    airflow_db, sandbox, ec2, ec2_copies, tmp_path
):
    from tests.integration import test_riak_dag as riak_dag
    from tests.sandbox.kinds import riak as kind

    name = f"rc{uuid.uuid4().hex[:6]}"
    instances = kind.make_instances(sandbox, 2)
    kind.reset_cluster(sandbox, primaries_missing_polls=0, handoff_polls=0, **riak_dag.FAST)
    settings = riak_dag.entry(
        sandbox, instances, name, count=2, retention={"keep_last": 2},
        copy_to=[{"region": COPY_REGION, "retention": {"keep_last": 1}}],
    )
    for day in ("2026-11-19", "2026-11-20"):
        states = riak_dag.run(tmp_path, settings, day)
        assert states["report"] == "success", states
    states = riak_dag.run(tmp_path, settings, "2026-11-20")  # again: no second copy
    assert states["report"] == "success", states
    riak_dag.assert_all_running(sandbox, 2)
    sources = {s["SnapshotId"]: s for s in riak_dag.snapshots_of(sandbox, name)}
    copies = ec2_copies.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:backup:cluster", "Values": [name]}]
    )["Snapshots"]
    volumes = {tags(s)[TAG_VOLUME] for s in sources.values()}
    assert len(sources) == 2 * len(volumes)  # keep_last 2 per volume here
    assert sorted(tags(c)[TAG_VOLUME] for c in copies) == sorted(volumes)  # keep_last 1 per volume there
    for copy in copies:
        assert tags(copy)[TAG_SOURCE_SNAPSHOT] in sources
        assert tags(copy)[TAG_LOGICAL_DATE] == "2026-11-20T00:00:00+00:00"
