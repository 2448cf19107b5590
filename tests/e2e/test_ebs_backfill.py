"""A real backfill of ebs_<name>: scheduler, dag-processor, triggerer and api-server as subprocesses.

After a backfill over 45 days with `keep_daily: 7, keep_weekly: 4, keep_monthly: 3`, exactly the
snapshots that policy keeps as of the last day remain. The expected set is computed here by
enumerating the dates (not with retention.py). A dry-run backfill afterwards changes nothing, and a
snapshot without our tags survives everything.
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import pytest

from tests.e2e.stack import airflow_stack

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

NAME = "backfill"
DAG_ID = f"ebs_{NAME}"
FIRST = date(2026, 9, 1)
LAST = date(2026, 10, 15)  # 45 daily runs
DRY_FIRST, DRY_LAST = date(2026, 10, 16), date(2026, 10, 19)
POLICY = {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 3}


def expected_dates(first: date, last: date, daily: int, weekly: int, monthly: int) -> set[date]:
    """What the policy keeps of one snapshot per day, as of `last`, by enumerating the days."""
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    keep = set(days[-daily:])
    newest_of_week: dict[tuple[int, int], date] = {}
    newest_of_month: dict[tuple[int, int], date] = {}
    for day in days:  # ascending: the last write per bucket is its newest day
        newest_of_week[day.isocalendar()[:2]] = day
        newest_of_month[(day.year, day.month)] = day
    keep |= {newest_of_week[w] for w in sorted(newest_of_week)[-weekly:]}
    keep |= {newest_of_month[m] for m in sorted(newest_of_month)[-monthly:]}
    return keep


def test_expected_dates_enumeration_itself():
    # 2026-10-15 is a Thursday: week 42 so far ends on it; weeks 41, 40, 39 end on Sundays.
    kept = expected_dates(FIRST, LAST, **{k.removeprefix("keep_"): v for k, v in POLICY.items()})
    assert sorted(kept) == sorted(
        {date(2026, 10, d) for d in range(9, 16)}
        | {date(2026, 10, 11), date(2026, 10, 4), date(2026, 9, 27)}
        | {date(2026, 9, 30)}
    )


def snapshot_dates(ec2, volume_id: str) -> dict[date, list[str]]:
    found: dict[date, list[str]] = {}
    for page in ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [volume_id]}]
    ):
        for snap in page["Snapshots"]:
            tags = {t["Key"]: t["Value"] for t in snap.get("Tags") or []}
            if tags.get("backup:name") == NAME:
                found.setdefault(date.fromisoformat(tags["backup:logical-date"][:10]), []).append(snap["SnapshotId"])
    return found


def test_backfill_keeps_exactly_what_the_policy_says(sandbox, tmp_path):
    ec2 = sandbox.boto3_client("ec2")
    volumes = [ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]]
    foreign = ec2.create_snapshot(VolumeId=volumes[0], Description="made by hand, no tags")["SnapshotId"]
    clusters = {
        "defaults": {"retries": 0, "deferrable": False, "poke_interval": "2s", "alert_emails": []},
        "entries": [
            {
                "kind": "ebs",
                "name": NAME,
                "volume_ids": volumes,
                "schedule": "@daily",
                "start_date": "2026-01-01",
                "retention": POLICY,
            }
        ],
    }
    started = time.monotonic()
    with airflow_stack(tmp_path, sandbox, clusters, DAG_ID) as stack:
        stack.wait_for(
            lambda: stack.query("select 1 from serialized_dag where dag_id = ?", DAG_ID),
            timeout=90,
            what=f"{DAG_ID} parsed by the dag-processor",
        )
        stack.backfill("--max-active-runs", "1", "--from-date", FIRST.isoformat(), "--to-date", LAST.isoformat())
        days = (LAST - FIRST).days + 1

        def all_done() -> bool:
            states = stack.run_states()
            return len(states) == days and all(s in ("success", "failed") for s in states.values())

        stack.wait_for(all_done, timeout=600, what=f"{days} backfill runs")
        states = stack.run_states()
        assert set(states.values()) == {"success"}, {d: s for d, s in states.items() if s != "success"}

        expected = expected_dates(FIRST, LAST, daily=7, weekly=4, monthly=3)
        kept_ids = set()
        for volume in volumes:
            found = snapshot_dates(ec2, volume)
            assert sorted(found) == sorted(expected), f"{volume}: kept {sorted(found)}"
            assert all(len(ids) == 1 for ids in found.values()), f"{volume}: two snapshots for one day: {found}"
            kept_ids |= {i for ids in found.values() for i in ids}
        assert ec2.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["State"] == "completed"

        # The scheduler marks a backfill complete a loop after its last run ends; a second
        # backfill of the same DAG is refused until then.
        stack.wait_for(
            lambda: not stack.query("select 1 from backfill where completed_at is null"),
            timeout=120,
            what="the first backfill marked complete",
        )

        # A dry-run backfill of the following days would create snapshots and prune older
        # dailies; as a dry run it changes nothing.
        stack.backfill(
            "--max-active-runs", "1", "--from-date", DRY_FIRST.isoformat(), "--to-date", DRY_LAST.isoformat(),
            "--dag-run-conf", json.dumps({"dry_run": True}),
        )  # fmt: skip
        total = days + (DRY_LAST - DRY_FIRST).days + 1

        def dry_done() -> bool:
            states = stack.run_states()
            return len(states) == total and all(s in ("success", "failed") for s in states.values())

        stack.wait_for(dry_done, timeout=180, what="the dry-run backfill")
        assert set(stack.run_states().values()) == {"success"}
        after = set()
        for volume in volumes:
            after |= {i for ids in snapshot_dates(ec2, volume).values() for i in ids}
        assert after == kept_ids
        assert ec2.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["State"] == "completed"
    print(f"\nbackfill e2e: {total} runs in {time.monotonic() - started:.0f}s")
