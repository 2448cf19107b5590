"""`copy_to`: its fields, which snapshots still need a copy, the copies' tags, the DAG's branches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_backup_provider.config import parse_clusters
from airflow_backup_provider.stores.ebs import (
    TAG_SOURCE_REGION,
    TAG_SOURCE_SNAPSHOT,
    Snapshot,
    backup_tags,
    copies_to_make,
    copy_tags,
    has_good_snapshot_of,
)

VOLUME = "vol-0123456789abcdef0"


def parse(**fields):
    parsed = parse_clusters({"entries": [{"kind": "ebs", "name": "e1", "volume_ids": [VOLUME], **fields}]})
    return parsed.entries, [str(e) for e in parsed.errors]


def snapshot(snapshot_id: str, state: str = "completed", **tags: str) -> Snapshot:
    return Snapshot(id=snapshot_id, volume_id=VOLUME, state=state, start_time=datetime(2026, 11, 20, tzinfo=UTC), tags=tags)


def test_copy_to_fields():
    (entry,), errors = parse(copy_to=[{"region": "eu-central-1", "kms_key_id": "alias/copies", "retention": {"keep_last": 3}}])
    assert errors == []
    (copy,) = entry.copy_to
    assert (copy.region, copy.kms_key_id, copy.retention.keep_last, copy.timeout.days) == ("eu-central-1", "alias/copies", 3, 1)
    assert parse()[0][0].copy_to == []


@pytest.mark.parametrize(
    ("copy_to", "needle"),
    [
        ([{"region": "us-west-2; rm -rf /"}], "AWS region"),
        ([{"region": "us-west-2"}, {"region": "us-west-2"}], "listed twice"),
        ([{"region": "us-west-2", "kms_key_id": "not a key"}], "KMS key"),
        ([{"region": "us-west-2", "colour": "red"}], "colour"),
    ],
)
def test_bad_copy_to_names_the_field_and_the_value(copy_to, needle):
    entries, errors = parse(copy_to=copy_to)
    assert entries == []
    assert len(errors) == 1 and needle in errors[0] and "copy_to" in errors[0], errors


def test_only_sources_without_a_good_copy_are_copied():
    sources = [snapshot("snap-a"), snapshot("snap-b"), snapshot("snap-c")]
    copies = [
        snapshot("snap-1", **{TAG_SOURCE_SNAPSHOT: "snap-a"}),
        snapshot("snap-2", state="pending", **{TAG_SOURCE_SNAPSHOT: "snap-b"}),
        snapshot("snap-3", state="error", **{TAG_SOURCE_SNAPSHOT: "snap-c"}),  # made again
    ]
    to_copy, existing = copies_to_make(sources, copies)
    assert [s.id for s in to_copy] == ["snap-c"]
    assert {k: v.id for k, v in existing.items()} == {"snap-a": "snap-1", "snap-b": "snap-2"}


def test_a_dry_run_plans_a_new_copy_only_when_no_good_one_holds_the_date():
    day = "2026-11-20T00:00:00+00:00"
    assert has_good_snapshot_of([snapshot("snap-1", **{"backup:logical-date": day})], day)
    assert not has_good_snapshot_of([snapshot("snap-1", state="error", **{"backup:logical-date": day})], day)
    assert not has_good_snapshot_of([snapshot("snap-1", **{"backup:logical-date": "2026-11-19T00:00:00+00:00"})], day)
    assert has_good_snapshot_of([snapshot("snap-1", state="pending", **{"backup:logical-date": day})], day)


def test_a_copy_carries_the_sources_tags_and_where_it_came_from():
    tags = backup_tags(name="e1", logical_date=datetime(2026, 11, 20, tzinfo=UTC), run_id="r", volume_id=VOLUME, extra={"team": "db"})
    copy = copy_tags(snapshot("snap-a", **tags), "us-east-1")
    assert copy == {**tags, TAG_SOURCE_SNAPSHOT: "snap-a", TAG_SOURCE_REGION: "us-east-1"}
    # the copy's VolumeId is arbitrary: the volume it holds is the tag's
    copied = Snapshot(id="snap-1", volume_id="vol-ffffffff", state="completed", start_time=None, tags=copy)
    assert (copied.source_volume, copied.copied_from) == (VOLUME, "snap-a")
    assert snapshot("snap-a", **tags).copied_from is None


def test_the_dag_has_a_copy_branch_per_region_after_the_wait():
    from airflow_backup_provider.factory import build_entry

    (entry,), _ = parse(copy_to=[{"region": "us-west-2"}, {"region": "eu-west-1", "retention": {"keep_last": 1}}])
    dag = build_entry(entry)[0]
    for region in ("us-west-2", "eu-west-1"):
        copy = dag.get_task(f"volume.copy_{region}")
        assert copy.upstream_task_ids == {"volume.wait", "volume.snapshot"}  # after the wait; ids from the snapshot
        assert copy.region_name == region
        assert dag.get_task(f"volume.wait_copy_{region}").upstream_task_ids == {f"volume.copy_{region}"}
        retention = dag.get_task(f"volume.retention_{region}")
        assert retention.copies and retention.region_name == region
    assert dag.get_task("volume.retention_eu-west-1").policy.keep_last == 1
    assert dag.get_task("volume.retention").copies is False
