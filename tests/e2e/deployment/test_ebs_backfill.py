"""A backfill of ebs_<name> on the CeleryExecutor stack: several days' runs active at once, on two
workers, PostgreSQL under the scheduler's, the workers' and the api-server's writes together.

The days do not run their backups in parallel, by design: every generated DAG's first task
(`wait_for_other_runs`) lets one run at a time into its backup, backfills included, so that one
cluster's retention never runs beside another day's snapshot. The runs are active together and
poll that gate from both workers; the test checks that they took turns, in whatever order the
gate let them in.

After the backfill of 13 days with `keep_daily: 2, keep_weekly: 2, keep_monthly: 2`, every day the
policy keeps (as of the last day) is there, once. Its runs need not have gone in date order: a day
whose run came after a later day's is pruned by no run yet, so the last day is cleared and runs
again, which then leaves exactly what the policy keeps, and makes no second snapshot. The
expected set is computed here by enumerating the dates (not with retention.py). A dry-run
backfill afterwards changes nothing, and a snapshot without our tags survives everything.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from tests.e2e.deployment.clusters import EBS_BACKFILL, stack_entry
from tests.e2e.deployment.turns import assert_runs_took_turns, gate_waits, inside_windows

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

DAG_ID = f"ebs_{EBS_BACKFILL}"
FIRST = date(2026, 9, 24)
LAST = date(2026, 10, 6)  # 13 daily runs over ISO weeks 39-41 and two months
DRY_FIRST, DRY_LAST = date(2026, 10, 7), date(2026, 10, 9)
ACTIVE_AT_ONCE = 4


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
    # 2026-10-06 is a Tuesday: week 41 so far ends on it, week 40 on Sunday 10-04; September ends
    # on Wednesday 09-30. Each rule keeps a day of its own: 10-05 (daily), 10-04 (weekly), 09-30 (monthly).
    kept = expected_dates(FIRST, LAST, daily=2, weekly=2, monthly=2)
    assert sorted(kept) == [date(2026, 9, 30), date(2026, 10, 4), date(2026, 10, 5), date(2026, 10, 6)]


def snapshot_dates(ec2, volume_id: str) -> dict[date, list[str]]:
    found: dict[date, list[str]] = {}
    for page in ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [volume_id]}]
    ):
        for snap in page["Snapshots"]:
            tags = {t["Key"]: t["Value"] for t in snap.get("Tags") or []}
            if tags.get("backup:name") == EBS_BACKFILL:
                found.setdefault(date.fromisoformat(tags["backup:logical-date"][:10]), []).append(snap["SnapshotId"])
    return found


def backfill_states(stack) -> dict[date, str]:
    rows = stack.query("select logical_date, state from dag_run where dag_id = %s and run_type = 'backfill'", DAG_ID)
    return {d.date(): s for d, s in rows}


def wait_runs_ended(stack, count: int, what: str, timeout: float) -> dict[date, str]:
    def ended():
        states = backfill_states(stack)
        return states if len(states) == count and all(s in ("success", "failed") for s in states.values()) else None

    return stack.wait_for(ended, timeout, what)


def wait_backfills_complete(stack) -> None:
    """The scheduler marks a backfill complete a loop after its last run ends; another backfill of
    the same DAG is refused until then."""
    stack.wait_for(lambda: not stack.query("select 1 from backfill where dag_id = %s and completed_at is null", DAG_ID),
                   120, "the backfill marked complete")


def test_backfill_keeps_exactly_what_the_policy_says(sandbox, celery_stack):
    stack = celery_stack
    entry = stack_entry(stack, EBS_BACKFILL)
    policy = {k.removeprefix("keep_"): v for k, v in entry["retention"].items()}
    (volume,) = entry["volume_ids"]
    ec2 = sandbox.boto3_client("ec2")
    foreign = ec2.create_snapshot(VolumeId=volume, Description="made by hand, no tags")["SnapshotId"]
    expected = expected_dates(FIRST, LAST, **policy)
    days = (LAST - FIRST).days + 1

    stack.airflow("backfill", "create", "--dag-id", DAG_ID, "--max-active-runs", str(ACTIVE_AT_ONCE),
                  "--from-date", FIRST.isoformat(), "--to-date", LAST.isoformat())
    states = wait_runs_ended(stack, days, f"{days} backfill runs", timeout=900)
    assert set(states.values()) == {"success"}, {d: s for d, s in states.items() if s != "success"}

    # runs were active together (some waited at the gate), ran on both workers, and took turns
    assert gate_waits(stack, DAG_ID) >= 1, "no run waited at the gate: the runs did not overlap"
    hosts = {h for (h,) in stack.query("select distinct hostname from task_instance where dag_id = %s", DAG_ID)}
    assert hosts == {"w1", "w2"}, hosts
    windows = inside_windows(stack, DAG_ID)
    assert len(windows) == days, windows
    assert_runs_took_turns(windows)

    # one snapshot per day at most, every day the policy keeps among them, whatever the order
    found = snapshot_dates(ec2, volume)
    assert all(len(ids) == 1 for ids in found.values()), f"two snapshots for one day: {found}"
    assert expected <= set(found), f"kept {sorted(found)}, the policy keeps {sorted(expected)}"
    assert set(found) <= {FIRST + timedelta(days=n) for n in range(days)}, sorted(found)
    wait_backfills_complete(stack)

    # the last day again (cleared): its retention now sees every day, and its snapshot is reused
    last_snapshot = found[LAST]
    stack.airflow("tasks", "clear", DAG_ID, "--start-date", LAST.isoformat(), "--end-date", LAST.isoformat(), "--yes")
    stack.wait_for(lambda: backfill_states(stack)[LAST] not in ("success", "failed"), 60, "the last day cleared")
    assert wait_runs_ended(stack, days, "the last day's second run", timeout=300)[LAST] == "success"
    found = snapshot_dates(ec2, volume)
    assert sorted(found) == sorted(expected), f"kept {sorted(found)}, the policy keeps {sorted(expected)}"
    assert found[LAST] == last_snapshot, "the cleared day made a second snapshot"
    kept_ids = {i for ids in found.values() for i in ids}
    assert ec2.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["State"] == "completed"
    wait_backfills_complete(stack)

    # a dry-run backfill of the following days would create snapshots and prune older dailies;
    # as a dry run it changes nothing
    stack.airflow("backfill", "create", "--dag-id", DAG_ID, "--max-active-runs", str(ACTIVE_AT_ONCE),
                  "--from-date", DRY_FIRST.isoformat(), "--to-date", DRY_LAST.isoformat(),
                  "--dag-run-conf", json.dumps({"dry_run": True}))
    total = days + (DRY_LAST - DRY_FIRST).days + 1
    assert set(wait_runs_ended(stack, total, "the dry-run backfill", timeout=300).values()) == {"success"}
    assert {i for ids in snapshot_dates(ec2, volume).values() for i in ids} == kept_ids
    assert ec2.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["State"] == "completed"
