"""Retention as a pure policy: which backups to keep and which to prune, and why.

The semantics are restic's ``forget``:

* items are ordered newest first (ties broken by id, so the input order never matters);
* ``keep_last N`` keeps the newest N items;
* ``keep_hourly/daily/weekly/monthly/yearly N`` walk the items newest first, put each into its
  calendar bucket (UTC hour, day, ISO week, month, year) and keep the newest item of each of the
  first N distinct buckets;
* ``keep_within D`` keeps every item dated *strictly* after (newest item − D), the newest item
  being the newest one that takes part in the rules (restic measures from its latest snapshot,
  not from the clock or ``as_of``; an item exactly D older than it is forgotten);
* rules are ORed, and an item counts for every rule it matches (one snapshot may be both the
  newest of its day and of its week, and uses up one slot of each rule).

The policy is evaluated as of ``as_of`` (the run's logical date, i.e. the end of its data
interval), never the wall clock, so that a backfill prunes exactly what a daily schedule would
have pruned on that day.

Whatever the policy says, these are never pruned (DESIGN.md, safety invariant 4):

* an item dated after ``as_of`` (a later run made it; it is not this run's to judge);
* an item that is not complete (pending: it may still become the only good copy);
* the newest complete item (dated at or before ``as_of``);
* an item this project did not create (``ours=False``).

Only items that are ours, complete and dated at or before ``as_of`` take part in the rules
(restic's list is what one group of snapshots holds; ours excludes the protected items above).
A policy with no rule (every count unset or 0, no ``keep_within``) keeps everything: an empty
or mistyped policy must never prune every backup.

Dates: ``as_of`` and every ``created_at`` must be timezone-aware (a naive one is refused, naming
the field); both are normalised to plain UTC datetimes first (:func:`dates.as_utc`), so the
pendulum ``DateTime`` of the Airflow context works like any other aware datetime.

A dry run plans with :func:`planned_backup`: the backup the real run would create, so that it
prunes exactly what the real run would.

Not (yet) restic: restic >= 0.17 also keeps the oldest snapshot when a count rule has slots
left, and has ``keep_within_daily`` & co. and ``keep_tag``; this module does not.

The module has no Airflow or AWS import: EBS snapshots, S3 folders, bup saves and devicedb
snapshots all become :class:`BackupItem` and share one implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_backup_provider.config import RetentionPolicy
from airflow_backup_provider.dates import as_utc, format_instant

# Reasons that protect an item whatever the policy says.
REASON_NEWER = "newer than as_of"
REASON_PENDING = "pending"
REASON_NEWEST = "newest completed"
REASON_FOREIGN = "not ours"
REASON_NO_POLICY = "no retention rule"
# Reasons a delete is refused when the item, re-read just before deleting it, is checked again.
REASON_CHANGED = "changed since the plan"
REASON_COMPLETED = "completed since the plan"
REASON_TOO_RECENT = "too recent to be abandoned"
PROTECTING_REASONS = frozenset({REASON_NEWER, REASON_PENDING, REASON_NEWEST, REASON_FOREIGN, REASON_NO_POLICY})


@dataclass(frozen=True)
class BackupItem:
    """One backup as retention sees it: an id, an aware timestamp (the logical date it belongs
    to), and whether it may be judged. ``taken_at``: when it was really taken, when known (shown
    beside the date; it never decides anything)."""

    id: str
    created_at: datetime
    complete: bool = True
    ours: bool = True
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    taken_at: datetime | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.created_at, datetime) or self.created_at.tzinfo is None:
            raise ValueError(
                f"backup item {self.id!r}: field 'created_at': value {self.created_at!r} "
                "must be a timezone-aware datetime"
            )


@dataclass(frozen=True)
class Decision:
    item: BackupItem
    reasons: list[str]

    @property
    def planned(self) -> bool:
        return bool(self.item.meta.get(PLANNED))

    @property
    def protected(self) -> bool:
        return any(r in PROTECTING_REASONS for r in self.reasons)


@dataclass(frozen=True)
class RetentionPlan:
    as_of: datetime
    policy: RetentionPolicy
    keep: list[Decision]
    prune: list[Decision]

    @property
    def keep_ids(self) -> list[str]:
        return [d.item.id for d in self.keep]

    @property
    def prune_ids(self) -> list[str]:
        return [d.item.id for d in self.prune]

    def table(self) -> str:
        """Every item, newest first: action, id, date, when it was really taken, reasons."""
        rows = [(d, "keep") for d in self.keep] + [(d, "prune") for d in self.prune]
        rows.sort(key=lambda row: _order_key(row[0].item), reverse=True)
        id_width = max([len("id")] + [len(d.item.id) for d, _ in rows])
        header = f"{'action':<6}  {'id':<{id_width}}  {'date':<25}  {'taken at':<25}  reasons"
        lines = [
            f"retention as of {self.as_of.isoformat()}: keep {len(self.keep)}, prune {len(self.prune)}"
            f" ({describe_policy(self.policy)})",
            header,
            "-" * len(header),
        ]
        for decision, action in rows:
            item = decision.item
            reasons = ", ".join(decision.reasons) or "no rule keeps it"
            if decision.planned:
                reasons += " (this run's backup, not made: dry run)"
            taken = format_instant(item.taken_at) if item.taken_at else "-"
            lines.append(
                f"{action:<6}  {item.id:<{id_width}}  {format_instant(item.created_at):<25}  {taken:<25}  {reasons}"
            )
        return "\n".join(lines)


def describe_policy(policy: RetentionPolicy) -> str:
    parts = [f"{name}={value}" for name, value in policy.model_dump().items() if value not in (None, 0)]
    return ", ".join(parts) if parts else "no rule: keep everything"


def policy_is_empty(policy: RetentionPolicy) -> bool:
    counts = (
        policy.keep_last,
        policy.keep_hourly,
        policy.keep_daily,
        policy.keep_weekly,
        policy.keep_monthly,
        policy.keep_yearly,
    )
    return not any(counts) and not policy.keep_within


def _order_key(item: BackupItem) -> tuple[datetime, str]:
    return (as_utc(item.created_at, f"backup item {item.id!r}: created_at"), item.id)


PLANNED = "planned"


def planned_backup(id: str, as_of: datetime, **meta: Any) -> BackupItem:
    """The backup a real run would create (dated ``as_of``, complete, ours), for a dry run's plan.

    Add it only when the real run would create one (no backup of this date exists yet); it is
    then the newest item and never pruned, and a caller must never try to delete it.
    """
    return BackupItem(id=id, created_at=as_utc(as_of, "as_of"), meta={**meta, PLANNED: True})


def _bucket_label(rule: str, key: Any) -> str:
    if rule == "hourly":
        y, m, d, h = key
        return f"hourly {y:04d}-{m:02d}-{d:02d}T{h:02d}"
    if rule == "daily":
        y, m, d = key
        return f"daily {y:04d}-{m:02d}-{d:02d}"
    if rule == "weekly":
        y, w = key
        return f"weekly {y:04d}-W{w:02d}"
    if rule == "monthly":
        y, m = key
        return f"monthly {y:04d}-{m:02d}"
    return f"yearly {key:04d}"


_BUCKETS: tuple[tuple[str, Callable[[datetime], Any]], ...] = (
    ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: tuple(t.isocalendar()[:2])),
    ("monthly", lambda t: (t.year, t.month)),
    ("yearly", lambda t: t.year),
)


def plan_retention(items: Iterable[BackupItem], policy: RetentionPolicy, as_of: datetime) -> RetentionPlan:
    """Decide, for every item, keep (with every reason) or prune. Pure; never reads the clock."""
    # Plain UTC datetimes on both sides: pendulum arithmetic on the context's DateTime
    # otherwise yields naive datetimes (dates.py).
    as_of_utc = as_utc(as_of, "as_of")
    ordered = sorted(items, key=_order_key, reverse=True)
    seen: set[str] = set()
    for item in ordered:
        if item.id in seen:
            raise ValueError(f"retention: field 'id': value {item.id!r} appears twice")
        seen.add(item.id)

    reasons: dict[str, list[str]] = {item.id: [] for item in ordered}
    candidates: list[tuple[BackupItem, datetime]] = []
    for item in ordered:
        created = as_utc(item.created_at, f"backup item {item.id!r}: created_at")
        why = reasons[item.id]
        if not item.ours:
            why.append(REASON_FOREIGN)
            continue
        if created > as_of_utc:
            why.append(REASON_NEWER)
        if not item.complete:
            why.append(REASON_PENDING)
        if not why:
            candidates.append((item, created))

    if candidates:
        reasons[candidates[0][0].id].append(REASON_NEWEST)

    if policy_is_empty(policy):
        for item, _ in candidates:
            reasons[item.id].append(REASON_NO_POLICY)
    else:
        _apply_rules(candidates, policy, reasons)

    keep: list[Decision] = []
    prune: list[Decision] = []
    for item in ordered:
        decision = Decision(item=item, reasons=reasons[item.id])
        (keep if decision.reasons else prune).append(decision)
    if any(d.planned for d in prune):
        raise ValueError("retention: a planned backup (dry run) would be pruned: another item has its date")
    return RetentionPlan(as_of=as_of_utc, policy=policy, keep=keep, prune=prune)


def newest_complete(items: Iterable[BackupItem], as_of: datetime, *, with_planned: bool = False) -> BackupItem | None:
    """The newest complete item of ours dated at or before ``as_of``: the one never deleted.
    ``with_planned``: a dry run's plan counts the backup its real run would make (:func:`planned_backup`)."""
    as_of_utc = as_utc(as_of, "as_of")
    eligible = [i for i in items if _counts_as_backup(i, as_of_utc, with_planned)]
    return max(eligible, key=_order_key, default=None)


def _counts_as_backup(item: BackupItem, as_of_utc: datetime, with_planned: bool = False) -> bool:
    if item.meta.get(PLANNED) and not with_planned:
        return False
    return item.ours and item.complete and _order_key(item)[0] <= as_of_utc


def delete_refusals(
    planned: BackupItem, fresh: BackupItem, as_of: datetime, newest: BackupItem | None, *, with_planned: bool = False
) -> list[str]:
    """Why ``fresh`` (the item the plan prunes, re-read just before its delete) must not be
    deleted; empty when it may go. The plan's own reasons are judged again on the fresh state,
    never trusted: invariant 4 holds even when the item changed after the plan.

    ``newest``: the newest complete backup (:func:`newest_complete` of the plan), re-read just as
    freshly, or None when it is gone. When it is gone, no longer complete, no longer ours or newer
    than ``as_of``, ``fresh`` may have become the newest complete backup: refused.
    ``with_planned``: a dry run, whose newest may be the backup its real run would make.
    """
    as_of_utc = as_utc(as_of, "as_of")
    created = _order_key(fresh)[0]
    reasons: list[str] = []
    if not fresh.ours:
        reasons.append(REASON_FOREIGN)
    if not fresh.complete:
        reasons.append(REASON_PENDING)
    if created > as_of_utc:
        reasons.append(REASON_NEWER)
    if newest is None or not _counts_as_backup(newest, as_of_utc, with_planned) or _order_key(fresh) >= _order_key(newest):
        reasons.append(REASON_NEWEST)
    if created != _order_key(planned)[0]:
        reasons.append(REASON_CHANGED)
    return reasons


def leftovers(plan: RetentionPlan, before: datetime) -> list[BackupItem]:
    """Incomplete items of ours dated before ``before``: a failed run's leftovers, that no run
    can still be writing (the policy never prunes an incomplete item; these are no backups)."""
    before_utc = as_utc(before, "before")
    return [
        d.item
        for d in plan.keep
        if d.item.ours and not d.item.complete and not d.planned and _order_key(d.item)[0] < before_utc
    ]


def leftover_refusals(fresh: BackupItem, before: datetime) -> list[str]:
    """Why a leftover (:func:`leftovers`), re-read just before its delete, must not be deleted."""
    reasons: list[str] = []
    if not fresh.ours:
        reasons.append(REASON_FOREIGN)
    if fresh.complete:
        reasons.append(REASON_COMPLETED)  # a backup now: the policy judges it next run
    if _order_key(fresh)[0] >= as_utc(before, "before"):
        reasons.append(REASON_TOO_RECENT)
    return reasons


def _apply_rules(
    candidates: list[tuple[BackupItem, datetime]],
    policy: RetentionPolicy,
    reasons: dict[str, list[str]],
) -> None:
    # candidates are newest first; each rule counts down its remaining buckets.
    if policy.keep_last:
        for rank, (item, _) in enumerate(candidates[: policy.keep_last], start=1):
            reasons[item.id].append(f"last {rank}")

    for rule, bucket_of in _BUCKETS:
        remaining = getattr(policy, f"keep_{rule}") or 0
        previous: Any = None
        for item, created in candidates:
            if remaining <= 0:
                break
            bucket = bucket_of(created)
            if bucket != previous:
                previous = bucket
                remaining -= 1
                reasons[item.id].append(_bucket_label(rule, bucket))

    if policy.keep_within and candidates:
        # restic (internal/restic/snapshot_policy.go, ApplyPolicy): t = latest - within, keep
        # when cur.Time.After(t), latest being the newest snapshot of the list (not in the
        # future: here, not after as_of). Strictly after; measured from the newest, not as_of.
        latest = candidates[0][1]
        cutoff = latest - timedelta(seconds=policy.keep_within.total_seconds())
        label = f"within {_format_duration(policy.keep_within)}"
        for item, created in candidates:
            if not created > cutoff:
                break
            reasons[item.id].append(label)


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


__all__ = [
    "PLANNED",
    "PROTECTING_REASONS",
    "REASON_CHANGED",
    "REASON_COMPLETED",
    "REASON_FOREIGN",
    "REASON_NEWER",
    "REASON_NEWEST",
    "REASON_NO_POLICY",
    "REASON_PENDING",
    "REASON_TOO_RECENT",
    "BackupItem",
    "Decision",
    "RetentionPlan",
    "delete_refusals",
    "describe_policy",
    "leftover_refusals",
    "leftovers",
    "newest_complete",
    "plan_retention",
    "planned_backup",
    "policy_is_empty",
]
