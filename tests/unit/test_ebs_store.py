"""stores/ebs.py: the idempotency rule, tags, retention's view of a snapshot, the status table; EbsPolicy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_backup_provider.config import parse_clusters
from airflow_backup_provider.stores.ebs import (
    CREATED_BY,
    TAG_CREATED_BY,
    TAG_LOGICAL_DATE,
    TAG_NAME,
    Snapshot,
    backup_tags,
    decide_snapshot,
    format_logical_date,
    status_row,
    status_table,
)

DAY = datetime(2026, 11, 20, tzinfo=UTC)
DAY_TAG = "2026-11-20T00:00:00+00:00"


def snap(id_: str, volume: str = "vol-1", state: str = "completed", name: str | None = "prod", date: str | None = DAY_TAG, ours: bool = True) -> Snapshot:
    tags = {}
    if ours:
        tags[TAG_CREATED_BY] = CREATED_BY
    if name:
        tags[TAG_NAME] = name
    if date:
        tags[TAG_LOGICAL_DATE] = date
    return Snapshot(id=id_, volume_id=volume, state=state, start_time=datetime(2026, 11, 22, tzinfo=UTC), description="d", tags=tags)


def test_logical_date_tag_is_utc_and_needs_a_timezone():
    from datetime import timedelta, timezone

    assert format_logical_date(datetime(2026, 11, 20, 2, tzinfo=timezone(timedelta(hours=2)))) == DAY_TAG
    with pytest.raises(ValueError, match="logical_date"):
        format_logical_date(datetime(2026, 11, 20))


def test_creates_when_the_volume_has_nothing_for_this_date():
    decision = decide_snapshot([snap("s0", date="2026-11-19T00:00:00+00:00")], volume_id="vol-1", name="prod", date_tag=DAY_TAG)
    assert decision.action == "create"


@pytest.mark.parametrize("state", ["completed", "pending"])
def test_skips_when_this_date_already_has_a_snapshot(state):
    decision = decide_snapshot([snap("s1", state=state)], volume_id="vol-1", name="prod", date_tag=DAY_TAG)
    assert decision.action == "skip"
    assert decision.existing.id == "s1"
    assert "already has snapshot s1" in decision.reason and DAY_TAG in decision.reason


def test_skips_when_any_snapshot_of_the_volume_is_pending_even_a_foreign_one():
    foreign = snap("f1", state="pending", ours=False, name=None, date=None)
    decision = decide_snapshot([foreign], volume_id="vol-1", name="prod", date_tag=DAY_TAG)
    assert decision.action == "skip" and decision.blocking == (foreign,)
    assert "still pending (f1)" in decision.reason


def test_keys_on_the_entry_and_volume_not_on_other_snapshots():
    listing = [
        snap("other-entry", name="staging"),  # same date, another clusters-file entry
        snap("other-volume", volume="vol-2"),
        snap("faked", ours=False),  # our name and date, without created-by
        snap("failed", state="error"),  # an errored snapshot is not a backup
    ]
    assert decide_snapshot(listing, volume_id="vol-1", name="prod", date_tag=DAY_TAG).action == "create"


def test_retention_view_of_a_snapshot():
    item = snap("s1").to_backup_item("prod")
    assert (item.id, item.created_at, item.complete, item.ours) == ("s1", DAY, True, True)
    assert snap("s1").to_backup_item("staging").ours is False
    assert snap("s1", ours=False).to_backup_item("prod").ours is False
    assert snap("s1", date=None).to_backup_item("prod").ours is False  # no date of ours: never judged
    assert snap("s1", state="pending").to_backup_item("prod").complete is False


def test_backup_tags_carry_run_and_user_tags():
    tags = backup_tags(name="prod", logical_date=DAY, run_id="scheduled__x", volume_id="vol-1", extra={"team": "db"})
    assert tags["backup:run-id"] == "scheduled__x" and tags["team"] == "db" and tags["backup:volume"] == "vol-1"


def test_status_table_has_the_source_scripts_columns_and_when_each_snapshot_was_taken():
    late = snap("snap-3")
    late.tags["backup:taken-at"] = "2026-12-01T03:00:00+00:00"
    rows = [
        status_row("vol-1", snap("snap-1")),
        status_row("vol-2", None, state="volume not found", date=DAY_TAG),
        status_row("vol-3", late),
    ]
    text = status_table(rows)
    header, rule, first, second, third = text.splitlines()
    assert header.split() == ["VOLUME", "SNAPSHOT", "STATE", "DATE", "TAKEN", "AT", "DESCRIPTION"]
    # no taken-at tag (made before it existed): EBS's own start time is when it was taken
    assert first.split() == ["vol-1", "snap-1", "completed", DAY_TAG, "2026-11-22T00:00:00+00:00", "d"]
    assert second.split()[:5] == ["vol-2", "-", "volume", "not", "found"]
    assert third.split() == ["vol-3", "snap-3", "completed", DAY_TAG, "2026-12-01T03:00:00+00:00", "d"]


def test_retention_view_carries_when_the_snapshot_was_taken():
    item = snap("s1").to_backup_item("prod")
    assert item.taken_at == datetime(2026, 11, 22, tzinfo=UTC)


def ebs_entry(**fields):
    return {"kind": "ebs", "name": "x", "volume_ids": ["vol-0123456789abcdef0"], **fields}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"volume_ids": ["vol-1; rm -rf /"]}, "field 'volume_ids.0': value 'vol-1; rm -rf /' is not an EBS volume id"),
        ({"instance_id": "i-$(reboot)"}, "field 'instance_id': value 'i-$(reboot)' is not an EC2 instance id"),
        ({"tags": {"backup:name": "y"}}, "key 'backup:name' is reserved"),
        ({"volume_ids": [], "volume_tags": {}}, "needs one of volume_ids, volume_tags or instance_id"),
        ({"volume_ids": ["vol-0123456789abcdef0", "vol-0123456789abcdef0"]}, "listed twice"),
        ({"snapshot_timout": "1h"}, "field 'snapshot_timout': unknown key"),
        ({"retention": {"keep_dayly": 3}}, "field 'retention.keep_dayly': unknown key"),
    ],
)
def test_ebs_entry_validation_names_field_and_value(fields, message):
    errors = parse_clusters({"entries": [ebs_entry(**fields)]}).errors
    assert len(errors) == 1
    assert message in str(errors[0])


def test_durations_in_defaults_reach_the_entries():
    clusters = parse_clusters({"defaults": {"poke_interval": "2s", "retry_delay": "1m"}, "entries": [ebs_entry(snapshot_timeout="2h")]})
    assert clusters.errors == []
    entry = clusters.entries[0]
    assert entry.poke_interval.total_seconds() == 2 and entry.retry_delay.total_seconds() == 60
    assert entry.snapshot_timeout.total_seconds() == 7200
