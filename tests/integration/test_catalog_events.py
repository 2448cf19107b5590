"""The backup catalog's Asset events, from real DAG runs on the sandbox (bup: the quickest real kind)."""

from __future__ import annotations

import pytest

from airflow_backup_provider.assets import CATALOG_ALIAS, asset_name
from tests.harness import clusters_file, load_dag, run_dag
from tests.integration.test_bup import clusters, example_entry
from tests.sandbox.kinds import bup as bup_kind

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def site(sandbox, airflow_db) -> dict:
    entry = bup_kind.prepare(sandbox, {**example_entry(), "name": "cat1"})
    entry.update(retries=0, alert_emails=[], prune=False)
    return entry


def catalog_events(name: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra, AssetEvent.source_dag_id, AssetEvent.source_task_id)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == name)
            .order_by(AssetEvent.id)
        ).all()
        return [{"extra": extra, "dag_id": dag_id, "task_id": task_id} for extra, dag_id, task_id in rows]


def aliases_of_last_event(name: str) -> list[str]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        event = session.scalars(
            select(AssetEvent).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == name).order_by(AssetEvent.id.desc()).limit(1)
        ).one()
        return [alias.name for alias in event.source_aliases]


def test_backup_and_restore_runs_emit_one_event_each_and_a_dry_run_none(site, tmp_path):
    name = asset_name("bup", site["name"])
    with clusters_file(tmp_path, clusters(site)):
        backup = load_dag(f"bup_{site['name']}")
        dry = run_dag(backup, "2026-11-19", conf={"dry_run": True})
        assert dry["report"] == "success"
        assert catalog_events(name) == []  # a dry run changes nothing, the catalog included

        assert run_dag(backup, "2026-11-20")["report"] == "success"
        events = catalog_events(name)
        assert len(events) == 1
        extra = events[0]["extra"]
        assert (events[0]["dag_id"], events[0]["task_id"]) == (f"bup_{site['name']}", "report")
        assert extra["run_type"] == "backup"
        assert extra["logical_date"] == "2026-11-20T00:00:00+00:00"
        assert extra["ids"] == [f"{site.get('branch') or site['name']}/2026-11-20-000000"]
        assert extra["items"] == 1 and extra["bytes"] > 0 and extra["duration_seconds"] > 0
        assert "verdict" not in extra
        assert aliases_of_last_event(name) == [CATALOG_ALIAS]

        # the same logical date again: the save is skipped, so nothing new is recorded
        assert run_dag(backup, "2026-11-20")["report"] == "success"
        assert len(catalog_events(name)) == 1

        restore = load_dag(f"bup_{site['name']}_restore")
        target = tmp_path / "restored"
        states = run_dag(restore, "2026-11-21", conf={"save": "2026-11-20", "path": site["paths"][0], "target_dir": str(target)})
        assert states["restore"] == "success", states
        events = catalog_events(name)
        assert [e["extra"]["run_type"] for e in events] == ["backup", "restore"]
        assert events[1]["dag_id"] == f"bup_{site['name']}_restore"


def test_the_s3_sync_dag_records_nothing_in_the_catalog(site, tmp_path):
    """The sync DAG is scheduled on the repository Asset: its report adds no event anywhere."""
    with clusters_file(tmp_path, clusters(site)):
        sync = load_dag(f"bup_{site['name']}_s3_sync")
        report = sync.get_task("report")
        assert report.outlets == [] and report.run_type is None
        backup = load_dag(f"bup_{site['name']}")
        assert [a.name for a in backup.get_task("report").outlets] == [CATALOG_ALIAS]
        assert [a.name for a in backup.get_task("save").outlets] == [f"bup_{site['name']}_repository"]


def test_an_entry_that_no_longer_validates_is_mailed_once_by_the_freshness_check(site, sandbox, mails, tmp_path):
    """Its DAG is gone with it, so its backups stopped: the on-call hears it once, with the problem."""
    from datetime import UTC, datetime

    from airflow.models.variable import Variable

    from tests.harness import DAG_FILE, load_dagbag
    from tests.sandbox.core import wait_until

    good = {**site, "name": "catgone"}
    content = {**clusters(good), "defaults": {**clusters(good).get("defaults", {}), "alert_emails": ["oncall@example.com"]}}
    with clusters_file(tmp_path, content):
        assert "bup_catgone" in load_dagbag().dags
    broken = {**content, "entries": [{**content["entries"][0], "paths": "not-a-list"}]}
    with clusters_file(tmp_path, broken):
        assert "bup_catgone" not in load_dagbag().dags
        bag = load_dagbag(DAG_FILE.with_name("backup_freshness.py"))
        assert not bag.import_errors, bag.import_errors
        freshness = bag.dags["backup_freshness"]
        Variable.delete("backup_freshness_alerted")
        sandbox.reset_mails()
        assert run_dag(freshness, datetime(2026, 12, 2, 10, tzinfo=UTC))["check_freshness"] == "success"
        wait_until(lambda: [m for m in mails if "bup/catgone" in m["subject"]], 30, "the broken entry's mail")
        (mail,) = [m for m in mails if "bup/catgone" in m["subject"]]
        assert "oncall@example.com" in mail["to"] and "paths" in mail["body"] and "no longer valid" in mail["body"]
        assert run_dag(freshness, datetime(2026, 12, 2, 11, tzinfo=UTC))["check_freshness"] == "success"
        assert len([m for m in mails if "bup/catgone" in m["subject"]]) == 1  # once, not every hour
