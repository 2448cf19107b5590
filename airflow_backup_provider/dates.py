"""The run's date, and when a backup was really taken. Pure: no Airflow import.

Every kind reads "the date this run backs up" through :func:`run_date`, so that retention, tags,
folder names and manifests agree, whatever type the context holds.

Airflow's context holds ``pendulum.DateTime`` values. Pendulum loses the time zone when a
``timedelta`` is added to or subtracted from a ``DateTime`` whose tzinfo is the standard library's
``timezone.utc`` (what ``.astimezone(UTC)`` gives), so arithmetic on them silently yields naive
datetimes. :func:`as_utc` therefore returns a plain standard-library ``datetime`` in UTC.

A naive datetime is refused by :func:`as_utc` (a bug in the caller: no guess), except when it
comes from the Airflow context (:func:`run_date`), where Airflow's own rule applies: every date
it stores is UTC.

A run whose logical date is long past (a cleared old run, a backfill) backs up *today's* data
under the old date. Each kind records when the backup was really taken: the snapshot tag
:data:`TAG_TAKEN_AT` (EBS, riak), the manifests' ``created_at`` (cassandra, devicedb), the
report's outcome (bup, whose save carries only ``--date``); :func:`late_warning` says when the
two differ by more than :data:`LATE_AFTER`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

# The one name for "when this backup was really taken" on a tagged snapshot (EBS and riak).
TAG_TAKEN_AT = "backup:taken-at"
# A backup taken more than this after (or before) its logical date is reported as late.
LATE_AFTER = timedelta(days=1)


def as_utc(value: Any, field: str = "date") -> datetime:
    """`value` as a plain (standard library, not pendulum) aware datetime in UTC.

    Refuses anything but an aware datetime, naming the field and the value.
    """
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"field {field!r}: value {value!r} must be a timezone-aware datetime")
    t = value.astimezone(UTC)
    # Rebuilt field by field: a pendulum DateTime stays pendulum through astimezone/replace.
    return datetime(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, tzinfo=UTC)


def run_date(context: Mapping[str, Any]) -> datetime:
    """The date a run backs up, in UTC: its logical date; for a manual run without one, the time
    it was queued to run (``dag_run.run_after``). Stable across retries and clears."""
    value = context.get("logical_date")
    if value is None:
        value = context["dag_run"].run_after
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # Airflow stores every date in UTC
    return as_utc(value, "logical_date")


def now_utc() -> datetime:
    """The wall clock, for recording when a backup was taken (never for deciding what to keep)."""
    return datetime.now(UTC)


def format_instant(value: datetime) -> str:
    """UTC, ISO 8601, seconds precision: `2026-11-20T00:00:00+00:00` (tag and table form)."""
    return as_utc(value).replace(microsecond=0).isoformat()


def parse_instant(value: Any) -> datetime | None:
    """A recorded date (tag or manifest value) back as aware UTC; None when absent or unreadable
    (a backup made before the field existed)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return as_utc(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def late_warning(logical_date: datetime, taken_at: datetime | None, what: str = "backup") -> str | None:
    """A warning when a backup was taken more than :data:`LATE_AFTER` away from its logical
    date (it holds the data of when it was taken, not of that date); else None."""
    if taken_at is None:
        return None
    gap = as_utc(taken_at, "taken_at") - as_utc(logical_date, "logical_date")
    if abs(gap) <= LATE_AFTER:
        return None
    return (
        f"{what}: taken at {format_instant(taken_at)}, {_days(gap)} after its logical date "
        f"{format_instant(logical_date)}: it holds the data of when it was taken, not of that date"
        if gap > timedelta(0)
        else f"{what}: taken at {format_instant(taken_at)}, {_days(-gap)} before its logical date "
        f"{format_instant(logical_date)}"
    )


def _days(gap: timedelta) -> str:
    days = gap.total_seconds() / 86400
    return f"{days:.1f} days"


__all__ = [
    "LATE_AFTER",
    "TAG_TAKEN_AT",
    "as_utc",
    "format_instant",
    "late_warning",
    "now_utc",
    "parse_instant",
    "run_date",
]
