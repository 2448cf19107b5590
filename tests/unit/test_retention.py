"""retention.py: restic `forget` semantics as of a logical date, and the items never pruned."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone

import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_backup_provider.config import RetentionPolicy
from airflow_backup_provider.retention import (
    REASON_FOREIGN,
    REASON_NEWER,
    REASON_NEWEST,
    REASON_PENDING,
    BackupItem,
    plan_retention,
)


def daily_items(first: date, last: date, hour: int = 0) -> list[BackupItem]:
    items, day = [], first
    while day <= last:
        items.append(BackupItem(id=f"snap-{day.isoformat()}", created_at=datetime(day.year, day.month, day.day, hour, tzinfo=UTC)))
        day += timedelta(days=1)
    return items


def at(day: str, hour: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def kept_days(plan) -> list[str]:
    return sorted(d.item.id.removeprefix("snap-") for d in plan.keep)


def test_keep_last_keeps_the_newest_n_and_prunes_the_rest():
    items = daily_items(date(2026, 11, 1), date(2026, 11, 10))
    plan = plan_retention(items, RetentionPolicy(keep_last=3), at("2026-11-10"))
    assert kept_days(plan) == ["2026-11-08", "2026-11-09", "2026-11-10"]
    assert len(plan.prune) == 7
    reasons = {d.item.id: d.reasons for d in plan.keep}
    assert reasons["snap-2026-11-10"] == [REASON_NEWEST, "last 1"]
    assert reasons["snap-2026-11-08"] == ["last 3"]


def test_daily_weekly_monthly_calendar_buckets_newest_per_bucket():
    # 2026-11-22 is a Sunday. 60 days back: 2026-09-24.
    items = daily_items(date(2026, 9, 24), date(2026, 11, 22))
    policy = RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=3)
    plan = plan_retention(items, policy, at("2026-11-22"))
    daily = [f"2026-11-{d}" for d in range(16, 23)]
    weekly = ["2026-11-22", "2026-11-15", "2026-11-08", "2026-11-01"]  # Sundays end ISO weeks
    monthly = ["2026-11-22", "2026-10-31", "2026-09-30"]
    assert kept_days(plan) == sorted(set(daily + weekly + monthly))
    reasons = {d.item.id: d.reasons for d in plan.keep}
    # One item counts for every rule it matches.
    assert reasons["snap-2026-11-22"] == [REASON_NEWEST, "daily 2026-11-22", "weekly 2026-W47", "monthly 2026-11"]
    assert reasons["snap-2026-10-31"] == ["monthly 2026-10"]
    assert reasons["snap-2026-11-15"] == ["weekly 2026-W46"]


def test_an_item_used_by_a_rule_consumes_that_rule_slot():
    # keep_weekly=2 on a Wednesday: the current (partial) week counts as one of the two.
    items = daily_items(date(2026, 11, 1), date(2026, 11, 18))
    plan = plan_retention(items, RetentionPolicy(keep_weekly=2), at("2026-11-18"))
    assert kept_days(plan) == ["2026-11-15", "2026-11-18"]


def test_iso_week_across_the_new_year():
    # 2026-12-31 (Thursday) and 2027-01-03 (Sunday) are in ISO week 2026-W53.
    items = daily_items(date(2026, 12, 26), date(2027, 1, 5))
    plan = plan_retention(items, RetentionPolicy(keep_weekly=2), at("2027-01-05"))
    assert kept_days(plan) == ["2027-01-03", "2027-01-05"]
    assert "weekly 2026-W53" in {r for d in plan.keep for r in d.reasons}


def test_yearly_and_hourly_buckets():
    items = [
        BackupItem("a", at("2024-06-01")),
        BackupItem("b", at("2024-12-31", 23)),
        BackupItem("c", at("2025-03-01")),
        BackupItem("d", at("2025-03-01", 5)),
        BackupItem("e", at("2025-03-01", 5).replace(minute=30)),
    ]
    plan = plan_retention(items, RetentionPolicy(keep_yearly=5), at("2025-12-31"))
    assert sorted(plan.keep_ids) == ["b", "e"]
    plan = plan_retention(items, RetentionPolicy(keep_hourly=2), at("2025-12-31"))
    assert sorted(plan.keep_ids) == ["c", "e"]


def test_keep_within_keeps_only_items_strictly_newer_than_the_cutoff_as_restic():
    # restic: keep when cur.Time.After(latest - within). The 15th is exactly 5d back: forgotten.
    items = daily_items(date(2020, 1, 1), date(2020, 1, 20))
    plan = plan_retention(items, RetentionPolicy(keep_within="5d"), at("2020-01-20"))
    assert kept_days(plan) == [f"2020-01-{d}" for d in range(16, 21)]
    assert "snap-2020-01-15" in plan.prune_ids
    assert all("within 5d" in d.reasons for d in plan.keep)
    # one second newer than the cutoff is within
    items.append(BackupItem("just-within", at("2020-01-15") + timedelta(seconds=1)))
    plan = plan_retention(items, RetentionPolicy(keep_within="5d"), at("2020-01-20"))
    assert "just-within" in plan.keep_ids and "snap-2020-01-15" in plan.prune_ids


def test_keep_within_counts_back_from_the_newest_backup_not_as_of_nor_the_wall_clock():
    # restic measures from its latest snapshot: backups that stopped 10 days ago still keep
    # the 5 days before the last one, whatever as_of (or the clock) says.
    items = daily_items(date(2020, 1, 1), date(2020, 1, 20))
    plan = plan_retention(items, RetentionPolicy(keep_within="5d"), at("2020-01-30"))
    assert kept_days(plan) == [f"2020-01-{d}" for d in range(16, 21)]
    # items after as_of are not "the latest": the window is measured from the newest judged one
    plan = plan_retention(items, RetentionPolicy(keep_within="2d"), at("2020-01-10"))
    assert [d for d in kept_days(plan) if d <= "2020-01-10"] == ["2020-01-09", "2020-01-10"]


def test_plan_retention_takes_the_pendulum_datetime_of_the_airflow_context():
    # What the task context holds (airflow.sdk.timezone.coerce_datetime): a pendulum DateTime.
    # Before the fix, pendulum dropped the zone in `as_of.astimezone(UTC) - timedelta` and
    # keep_within failed with "can't compare offset-naive and offset-aware datetimes".
    from airflow.sdk.timezone import coerce_datetime

    items = daily_items(date(2026, 10, 25), date(2026, 11, 20))
    items.append(BackupItem("pendulum-item", pendulum.datetime(2026, 11, 20, 6), complete=False))
    for as_of in (pendulum.datetime(2026, 11, 20), coerce_datetime(datetime(2026, 11, 20, tzinfo=UTC)),
                  pendulum.datetime(2026, 11, 20, 1, tz="Europe/Berlin")):
        plan = plan_retention(items, RetentionPolicy(keep_within="3d", keep_monthly=2), as_of)
        assert kept_days(plan) == ["2026-10-31", "2026-11-18", "2026-11-19", "2026-11-20", "pendulum-item"]
        assert type(plan.as_of) is datetime and plan.as_of.tzinfo is UTC


def test_buckets_are_utc_whatever_the_items_timezone():
    plus_two = timezone(timedelta(hours=2))
    items = [
        BackupItem("late", datetime(2026, 11, 21, 1, 0, tzinfo=plus_two)),  # 2026-11-20 23:00 UTC
        BackupItem("early", datetime(2026, 11, 20, 12, 0, tzinfo=UTC)),
    ]
    plan = plan_retention(items, RetentionPolicy(keep_daily=1), at("2026-11-21"))
    assert plan.keep_ids == ["late"]
    assert plan.prune_ids == ["early"]


def test_items_after_as_of_are_kept_and_do_not_use_up_rule_slots():
    items = daily_items(date(2026, 11, 1), date(2026, 11, 20))
    plan = plan_retention(items, RetentionPolicy(keep_last=2), at("2026-11-10"))
    assert kept_days(plan) == ["2026-11-09", "2026-11-10"] + [f"2026-11-{d}" for d in range(11, 21)]
    newer = {d.item.id for d in plan.keep if REASON_NEWER in d.reasons}
    assert len(newer) == 10


def test_pending_and_foreign_items_are_never_pruned_and_never_count():
    items = daily_items(date(2026, 11, 1), date(2026, 11, 5))
    items.append(BackupItem("pending-old", at("2026-10-01"), complete=False))
    items.append(BackupItem("foreign-old", at("2026-10-02"), ours=False))
    items.append(BackupItem("pending-new", at("2026-11-05", 6), complete=False))
    plan = plan_retention(items, RetentionPolicy(keep_last=1), at("2026-11-06"))
    reasons = {d.item.id: d.reasons for d in plan.keep}
    assert reasons["pending-old"] == [REASON_PENDING]
    assert reasons["foreign-old"] == [REASON_FOREIGN]
    assert reasons["pending-new"] == [REASON_PENDING]
    # the pending one did not take the keep_last slot from the newest completed snapshot
    assert reasons["snap-2026-11-05"] == [REASON_NEWEST, "last 1"]
    assert sorted(plan.prune_ids) == [f"snap-2026-11-0{d}" for d in range(1, 5)]


def test_newest_completed_survives_a_policy_that_keeps_nothing_of_it():
    items = daily_items(date(2026, 1, 1), date(2026, 1, 10))
    # keep_within 1h keeps only the newest (the window hangs off it); it is marked newest too.
    plan = plan_retention(items, RetentionPolicy(keep_within="1h"), at("2026-03-01"))
    assert plan.keep_ids == ["snap-2026-01-10"]
    assert plan.keep[0].reasons == [REASON_NEWEST, "within 1h"]
    # a rule that keeps nothing judged (only a later, pending item): the newest completed stays
    items.append(BackupItem("pending", at("2026-01-11"), complete=False))
    plan = plan_retention(items, RetentionPolicy(keep_last=0, keep_within="1h"), at("2026-03-01"))
    assert sorted(plan.keep_ids) == ["pending", "snap-2026-01-10"]


@pytest.mark.parametrize("policy", [RetentionPolicy(), RetentionPolicy(keep_last=0, keep_daily=0)])
def test_empty_policy_keeps_everything(policy):
    items = daily_items(date(2026, 1, 1), date(2026, 1, 10))
    plan = plan_retention(items, policy, at("2026-01-10"))
    assert plan.prune == []
    assert len(plan.keep) == 10


def test_table_lists_every_item_with_its_reasons():
    items = daily_items(date(2026, 11, 18), date(2026, 11, 20))
    text = plan_retention(items, RetentionPolicy(keep_last=1), at("2026-11-20")).table()
    lines = text.splitlines()
    assert lines[0].startswith("retention as of 2026-11-20T00:00:00+00:00: keep 1, prune 2 (keep_last=1)")
    assert "keep    snap-2026-11-20" in text and "newest completed, last 1" in text
    assert "prune   snap-2026-11-18" in text and "no rule keeps it" in text
    assert len(lines) == 3 + 3


def test_bad_input_names_the_field_and_value():
    with pytest.raises(ValueError, match=r"created_at.*naive|created_at.*2026"):
        BackupItem("x", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="as_of"):
        plan_retention([], RetentionPolicy(keep_last=1), datetime(2026, 1, 1))
    with pytest.raises(ValueError, match=r"field 'as_of': value '2026-01-01'"):
        plan_retention([], RetentionPolicy(keep_last=1), "2026-01-01")
    with pytest.raises(ValueError, match="'dup'"):
        plan_retention([BackupItem("dup", at("2026-01-01")), BackupItem("dup", at("2026-01-02"))], RetentionPolicy(keep_last=1), at("2026-01-03"))


# --- properties -------------------------------------------------------------------------------

BASE = datetime(2024, 1, 1, tzinfo=UTC)

item_strategy = st.builds(
    lambda n, minutes, complete, ours: BackupItem(
        id=f"i{n}", created_at=BASE + timedelta(minutes=minutes), complete=complete, ours=ours
    ),
    st.integers(0, 10_000),
    st.integers(0, 3 * 365 * 24 * 60),
    st.booleans() | st.just(True),
    st.booleans() | st.just(True) | st.just(True),
)
items_strategy = st.lists(item_strategy, max_size=80, unique_by=lambda i: i.id)
count = st.none() | st.integers(0, 6)
policy_strategy = st.builds(
    RetentionPolicy,
    keep_last=count,
    keep_hourly=count,
    keep_daily=count,
    keep_weekly=count,
    keep_monthly=count,
    keep_yearly=count,
    keep_within=st.none() | st.integers(0, 90).map(lambda d: f"{d}d"),
)
as_of_strategy = st.integers(0, 3 * 365 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m))


@settings(max_examples=300, deadline=None)
@given(items_strategy, policy_strategy, as_of_strategy)
def test_property_applying_a_plan_then_planning_again_prunes_nothing(items, policy, as_of):
    first = plan_retention(items, policy, as_of)
    remaining = [d.item for d in first.keep]
    second = plan_retention(remaining, policy, as_of)
    assert second.prune == []
    assert sorted(second.keep_ids) == sorted(first.keep_ids)


@settings(max_examples=300, deadline=None)
@given(items_strategy, policy_strategy, as_of_strategy, st.randoms(use_true_random=False))
def test_property_result_does_not_depend_on_input_order(items, policy, as_of, rnd):
    shuffled = list(items)
    rnd.shuffle(shuffled)
    a = plan_retention(items, policy, as_of)
    b = plan_retention(shuffled, policy, as_of)
    assert [(d.item.id, d.reasons) for d in a.keep] == [(d.item.id, d.reasons) for d in b.keep]
    assert a.prune_ids == b.prune_ids


ORACLE_BUCKETS = {
    "keep_hourly": lambda t: t.strftime("%Y-%m-%d %H"),
    "keep_daily": lambda t: t.strftime("%Y-%m-%d"),
    "keep_weekly": lambda t: "{:04d}-W{:02d}".format(*t.isocalendar()[:2]),
    "keep_monthly": lambda t: t.strftime("%Y-%m"),
    "keep_yearly": lambda t: t.strftime("%Y"),
}


def oracle_keep(items, policy, as_of) -> set[str]:
    """What restic's `forget` keeps, computed another way: per rule, group the eligible items by
    bucket, take each bucket's newest item, and keep those of the N newest buckets."""
    newest_first = lambda group: max(group, key=lambda i: (i.created_at, i.id))  # noqa: E731
    eligible = [i for i in items if i.ours and i.complete and i.created_at <= as_of]
    keep = {i.id for i in items if i not in eligible}
    if not eligible:
        return keep
    keep.add(newest_first(eligible).id)
    counts = {name: getattr(policy, name) for name in ("keep_last", *ORACLE_BUCKETS)}
    if not any(counts.values()) and not policy.keep_within:
        return keep | {i.id for i in eligible}
    by_age = sorted(eligible, key=lambda i: (i.created_at, i.id), reverse=True)
    keep |= {i.id for i in by_age[: counts["keep_last"] or 0]}
    for name, bucket_of in ORACLE_BUCKETS.items():
        groups: dict[str, list] = {}
        for item in eligible:
            groups.setdefault(bucket_of(item.created_at.astimezone(UTC)), []).append(item)
        heads = sorted((newest_first(g) for g in groups.values()), key=lambda i: (i.created_at, i.id), reverse=True)
        keep |= {i.id for i in heads[: counts[name] or 0]}
    if policy.keep_within:
        # restic: cur.Time.After(latest - within), latest = the newest snapshot judged
        latest = max(i.created_at for i in eligible)
        keep |= {i.id for i in eligible if i.created_at > latest - policy.keep_within}
    return keep


# Dense items (several a day, over about a year) and policies of one or two rules, so that each
# rule's buckets decide what is kept instead of being hidden by the other rules.
dense_items_strategy = st.lists(
    st.builds(
        lambda n, minutes: BackupItem(id=f"d{n}", created_at=BASE + timedelta(minutes=minutes)),
        st.integers(0, 10_000),
        st.integers(0, 400 * 24 * 60),
    ),
    max_size=150,
    unique_by=lambda i: i.id,
)
rare_count = st.one_of(st.none(), st.none(), st.none(), st.integers(0, 8))
sparse_policy_strategy = st.builds(
    RetentionPolicy,
    keep_last=rare_count,
    keep_hourly=rare_count,
    keep_daily=rare_count,
    keep_weekly=rare_count,
    keep_monthly=rare_count,
    keep_yearly=rare_count,
    keep_within=st.one_of(st.none(), st.none(), st.none(), st.integers(0, 90).map(lambda d: f"{d}d")),
)


@settings(max_examples=500, deadline=None)
@given(
    items_strategy | dense_items_strategy,
    policy_strategy | sparse_policy_strategy,
    as_of_strategy | st.integers(0, 420 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m)),
)
def test_property_the_plan_keeps_exactly_what_a_brute_force_forget_keeps(items, policy, as_of):
    # nothing a rule keeps is pruned, and nothing is kept that no rule (or protection) keeps
    plan = plan_retention(items, policy, as_of)
    assert set(plan.keep_ids) == oracle_keep(items, policy, as_of)
    assert set(plan.keep_ids) | set(plan.prune_ids) == {i.id for i in items}
    assert all(d.reasons for d in plan.keep) and all(not d.reasons for d in plan.prune)


@settings(max_examples=300, deadline=None)
@given(items_strategy, policy_strategy, as_of_strategy)
def test_property_protected_items_are_never_pruned(items, policy, as_of):
    plan = plan_retention(items, policy, as_of)
    pruned = set(plan.prune_ids)
    judged = [i for i in items if i.ours and i.complete and i.created_at <= as_of]
    for item in items:
        if not item.ours or not item.complete or item.created_at > as_of:
            assert item.id not in pruned
    if judged:
        newest = max(judged, key=lambda i: (i.created_at, i.id))
        assert newest.id not in pruned
    # never prune everything that could be judged
    assert not judged or any(i.id not in pruned for i in judged)


@settings(max_examples=200, deadline=None)
@given(items_strategy, policy_strategy, as_of_strategy)
def test_property_a_rule_alone_keeps_a_subset_of_the_rules_together(items, policy, as_of):
    # ORed rules: adding a rule never prunes what another rule kept.
    combined = set(plan_retention(items, policy, as_of).keep_ids)
    for name in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within"):
        value = getattr(policy, name)
        if value:
            alone = RetentionPolicy(**{name: value})
            assert set(plan_retention(items, alone, as_of).keep_ids) <= combined


def test_property_sample_matches_a_brute_force_daily_rule():
    # Independent check of keep_daily: the newest item of each of the N newest distinct days.
    rnd = random.Random(7)
    items = [BackupItem(f"s{i}", BASE + timedelta(minutes=rnd.randrange(0, 60 * 24 * 40))) for i in range(300)]
    as_of = BASE + timedelta(days=41)
    plan = plan_retention(items, RetentionPolicy(keep_daily=10), as_of)
    by_day: dict = {}
    for item in items:
        day = item.created_at.date()
        if day not in by_day or (item.created_at, item.id) > (by_day[day].created_at, by_day[day].id):
            by_day[day] = item
    expected = {by_day[d].id for d in sorted(by_day, reverse=True)[:10]}
    assert set(plan.keep_ids) == expected


def test_a_dry_run_plans_with_the_backup_the_real_run_would_create():
    # keep_last 3 with 3 backups: without this run's backup the dry run prunes 0, the real run 1.
    from airflow_backup_provider.retention import planned_backup

    items = daily_items(date(2026, 11, 17), date(2026, 11, 19))
    policy = RetentionPolicy(keep_last=3)
    assert plan_retention(items, policy, at("2026-11-20")).prune_ids == []
    planned = planned_backup("(this run)", pendulum.datetime(2026, 11, 20))
    plan = plan_retention([*items, planned], policy, at("2026-11-20"))
    assert plan.prune_ids == ["snap-2026-11-17"]
    assert plan.keep[0].planned and plan.keep[0].item.id == "(this run)"
    assert "(this run's backup, not made: dry run)" in plan.table()
    # the plan refuses to prune a planned backup (it would mean one already exists for the date)
    with pytest.raises(ValueError, match="planned"):
        plan_retention([*items, planned_backup("a-planned", at("2026-11-19"))], RetentionPolicy(keep_last=1), at("2026-11-20"))


def test_table_shows_when_each_backup_was_really_taken_beside_its_date():
    items = [
        BackupItem("late", at("2026-11-01"), taken_at=at("2026-11-20", 3)),
        BackupItem("old", at("2026-10-31")),
    ]
    text = plan_retention(items, RetentionPolicy(keep_last=2), at("2026-11-20")).table()
    assert "taken at" in text.splitlines()[1]
    assert "late  2026-11-01T00:00:00+00:00  2026-11-20T03:00:00+00:00" in text
