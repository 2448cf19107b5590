"""dates.py: the run's date as every kind reads it, and the late-run warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk.timezone import coerce_datetime

from airflow_backup_provider.dates import as_utc, late_warning, parse_instant, run_date


@pytest.mark.parametrize(
    "context",
    [
        {"logical_date": pendulum.datetime(2026, 11, 20)},
        {"logical_date": coerce_datetime(datetime(2026, 11, 20, tzinfo=UTC))},
        {"logical_date": pendulum.datetime(2026, 11, 20, 1, tz="Europe/Berlin")},
        {"logical_date": datetime(2026, 11, 20, 1, tzinfo=timezone(timedelta(hours=1)))},
        # a manual run without a logical date: when it was queued; a naive one is UTC (Airflow's rule)
        {"logical_date": None, "dag_run": SimpleNamespace(run_after=pendulum.datetime(2026, 11, 20))},
        {"logical_date": None, "dag_run": SimpleNamespace(run_after=datetime(2026, 11, 20))},
    ],
)
def test_run_date_is_a_plain_utc_datetime_whatever_the_context_holds(context):
    value = run_date(context)
    assert value == datetime(2026, 11, 20, tzinfo=UTC)
    assert type(value) is datetime and value.tzinfo is UTC
    # arithmetic keeps the zone (pendulum's DateTime with a stdlib tz loses it)
    assert (value - timedelta(days=1)).tzinfo is UTC


def test_as_utc_refuses_a_naive_datetime_naming_the_field():
    with pytest.raises(ValueError, match=r"field 'as_of': value datetime.datetime\(2026, 1, 1, 0, 0\) must be a timezone-aware"):
        as_utc(datetime(2026, 1, 1), "as_of")


def test_late_warning_only_beyond_a_day():
    logical = pendulum.datetime(2026, 11, 1)
    assert late_warning(logical, datetime(2026, 11, 2, tzinfo=UTC)) is None  # exactly a day: on time
    assert late_warning(logical, None) is None
    text = late_warning(logical, datetime(2026, 11, 20, 6, tzinfo=UTC), "snapshot snap-1")
    assert text == (
        "snapshot snap-1: taken at 2026-11-20T06:00:00+00:00, 19.2 days after its logical date "
        "2026-11-01T00:00:00+00:00: it holds the data of when it was taken, not of that date"
    )


def test_parse_instant_reads_tags_and_manifest_values():
    assert parse_instant("2026-11-20T06:00:00Z") == datetime(2026, 11, 20, 6, tzinfo=UTC)
    assert parse_instant("2026-11-20T06:00:00") == datetime(2026, 11, 20, 6, tzinfo=UTC)
    assert parse_instant("") is None and parse_instant("garbage") is None and parse_instant(None) is None
