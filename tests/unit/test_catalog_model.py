"""The catalog's pure logic: status, age, max_age defaults, rows and the Prometheus text."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pendulum
import pytest

from airflow_backup_provider import PLUGIN_ENTRY_POINT
from airflow_backup_provider.catalog import (
    Entry,
    Event,
    Facts,
    Run,
    catalog_row,
    entry_of,
    format_age,
    render_metrics,
    status,
    summary,
)
from airflow_backup_provider.config import parse_clusters
from tests.harness import REPO

NOW = pendulum.datetime(2026, 12, 4, 12, tz="UTC")
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("last_success", "last_run_state", "max_age", "expected"),
    [
        (NOW - timedelta(hours=23), "success", 2 * DAY, "ok"),
        (NOW - 2 * DAY, "success", 2 * DAY, "ok"),  # exactly max_age old: still fresh
        (NOW - 2 * DAY - timedelta(seconds=1), "success", 2 * DAY, "stale"),
        (NOW - timedelta(hours=1), "failed", 2 * DAY, "failing"),  # a failed last run wins
        (NOW - 9 * DAY, "failed", 2 * DAY, "failing"),
        (None, None, 2 * DAY, "never"),
        (None, "failed", 2 * DAY, "failing"),
        (NOW - 400 * DAY, "success", None, "ok"),  # manual only: never stale
    ],
)
def test_status(last_success, last_run_state, max_age, expected):
    assert status(last_success=last_success, last_run_state=last_run_state, max_age=max_age, now=NOW) == expected


def test_max_age_defaults_to_twice_the_schedules_period_and_can_be_set():
    clusters = parse_clusters({"entries": [
        {"kind": "ebs", "name": "daily", "volume_ids": ["vol-0a1b2c3d4e5f60718"]},
        {"kind": "ebs", "name": "hourly", "schedule": "@hourly", "volume_ids": ["vol-0a1b2c3d4e5f60718"]},
        {"kind": "ebs", "name": "weekdays", "schedule": "30 2 * * 1-5", "volume_ids": ["vol-0a1b2c3d4e5f60718"]},
        {"kind": "ebs", "name": "manual", "schedule": None, "volume_ids": ["vol-0a1b2c3d4e5f60718"]},
        {"kind": "ebs", "name": "set", "max_age": "36h", "volume_ids": ["vol-0a1b2c3d4e5f60718"]},
    ]})
    assert not clusters.errors
    ages = {e.name: entry_of(e).max_age for e in clusters.entries}
    assert ages == {"daily": 2 * DAY, "hourly": timedelta(hours=2), "weekdays": 6 * DAY, "manual": None,
                    "set": timedelta(hours=36)}


def test_a_bad_max_age_names_the_field():
    clusters = parse_clusters({"entries": [{"kind": "ebs", "name": "x", "max_age": "soon", "volume_ids": ["vol-0a1b2c3d4e5f60718"]}]})
    assert len(clusters.errors) == 1 and "max_age" in str(clusters.errors[0]) and "soon" in str(clusters.errors[0])


def test_age_text():
    assert format_age(timedelta(days=3, hours=4, minutes=5)) == "3d 4h"
    assert format_age(timedelta(hours=5, minutes=12, seconds=9)) == "5h 12m"
    assert format_age(timedelta(minutes=42)) == "42m"
    assert format_age(timedelta(seconds=10)) == "10s"
    assert format_age(timedelta(0)) == "0s"
    assert format_age(None) == ""


ENTRY = Entry(kind="riak", name="prod", dag_id="riak_prod", max_age=2 * DAY, drill_dag_id="riak_prod_drill")


def test_a_row_from_facts():
    backup_at = NOW - timedelta(hours=26)
    facts = Facts(
        last_backup=Event(backup_at, {"bytes": 4096, "items": 3, "verified": True, "logical_date": "2026-12-03T00:00:00+00:00"}),
        last_run=Run("scheduled__2026-12-03", "success"),
        last_drill=Event(NOW - 5 * DAY, {"verdict": "passed"}),
        last_drill_run=Run("manual__x", "failed", end_date=NOW - DAY),
        next_run=NOW + timedelta(hours=14),
        paused=False,
        run_counts={"success": 30, "failed": 2},
        history=[(backup_at.timestamp(), 4096.0, 61.5)],
    )
    row = catalog_row(ENTRY, facts, NOW)
    assert row["status"] == "ok" and row["age"] == "1d 2h" and row["age_seconds"] == 26 * 3600
    assert (row["size_bytes"], row["items"], row["verified"]) == (4096, 3, True)
    assert row["last_drill_verdict"] == "failed" and row["last_drill"] == (NOW - DAY).isoformat()
    assert row["last_drill_success"] == (NOW - 5 * DAY).isoformat()
    assert row["next_run"] == (NOW + timedelta(hours=14)).isoformat()
    assert row["history"] == [[backup_at.timestamp(), 4096.0, 61.5]]
    paused = catalog_row(ENTRY, Facts(last_backup=facts.last_backup, paused=True, next_run=NOW), NOW + 2 * DAY)
    assert paused["status"] == "stale" and paused["next_run"] is None
    never = catalog_row(ENTRY, Facts(), NOW)
    assert never["status"] == "never" and never["size_bytes"] is None and never["last_drill_verdict"] is None
    assert summary([row, paused, never]) == {"clusters": 3, "ok": 1, "stale": 1, "failing": 0, "never": 1}


def test_metrics_text_format():
    row = catalog_row(ENTRY, Facts(
        last_backup=Event(datetime(2026, 12, 3, 2, 30, tzinfo=UTC), {"bytes": 123456789}),
        last_drill=Event(datetime(2026, 12, 1, tzinfo=UTC), {}),
        run_counts={"success": 30, "failed": 2},
    ), NOW)
    odd = catalog_row(Entry(kind="bup", name='we"ird\\name', dag_id="bup_x", max_age=None), Facts(), NOW)
    text = render_metrics([row, odd])
    assert text.endswith("\n")
    lines = text.splitlines()
    assert "# TYPE backup_last_success_timestamp_seconds gauge" in lines
    assert "# TYPE backup_runs_total counter" in lines
    assert 'backup_last_success_timestamp_seconds{kind="riak",cluster="prod"} 1796265000' in lines
    assert 'backup_last_size_bytes{kind="riak",cluster="prod"} 123456789' in lines
    assert 'backup_last_drill_success_timestamp_seconds{kind="riak",cluster="prod"} 1796083200' in lines
    assert 'backup_runs_total{kind="riak",cluster="prod",state="failed"} 2' in lines
    assert 'backup_runs_total{kind="riak",cluster="prod",state="success"} 30' in lines
    # a cluster without a backup has no sample (not a zero, which would read as 1970)
    assert not [line for line in lines if 'cluster="we' in line and not line.startswith("#")]
    # every sample line is `name{labels} value`, each name declared once
    names = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(names) == len(set(names)) == 4


def test_label_values_are_escaped():
    row = catalog_row(Entry(kind="bup", name='a"b\\c', dag_id="bup_x", max_age=None), Facts(run_counts={"success": 1}), NOW)
    assert 'backup_runs_total{kind="bup",cluster="a\\"b\\\\c",state="success"} 1' in render_metrics([row]).splitlines()


def test_the_plugin_is_declared_as_an_airflow_plugins_entry_point():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    target = project["project"]["entry-points"]["airflow.plugins"][PLUGIN_ENTRY_POINT]
    module, _, name = target.partition(":")
    import importlib

    plugin = getattr(importlib.import_module(module), name)
    assert plugin.fastapi_apps[0]["url_prefix"] == "/backups"
    assert plugin.external_views[0]["destination"] == "nav"


def test_freshness_alerts_once_per_staleness():
    from airflow_backup_provider.operators.freshness import new_alerts

    since = "2026-12-01T02:30:00+00:00"
    to_mail, remembered = new_alerts({"backup_riak_prod": since}, {})
    assert to_mail == ["backup_riak_prod"] and remembered == {"backup_riak_prod": since}
    assert new_alerts({"backup_riak_prod": since}, remembered) == ([], remembered)  # the next hour: quiet
    assert new_alerts({}, remembered) == ([], {})  # a new backup landed: cleared
    later = "2026-12-03T02:30:00+00:00"  # stale again after a newer backup: a new staleness
    assert new_alerts({"backup_riak_prod": later}, remembered)[0] == ["backup_riak_prod"]
    both = new_alerts({"backup_riak_prod": since, "backup_ebs_x": later}, remembered)
    assert both == (["backup_ebs_x"], {"backup_ebs_x": later, "backup_riak_prod": since})
