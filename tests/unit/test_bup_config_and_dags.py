"""bup entries in the clusters file, the DAGs built from them, and the operators' pure checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from airflow_backup_provider.config import parse_clusters
from airflow_backup_provider.operators.bup import BupError, BupRestoreOperator, choose_save
from airflow_backup_provider.stores.bup import Save, parse_save_name
from tests.harness import REPO


def example() -> dict:
    raw = yaml.safe_load((REPO / "dags" / "clusters.yaml").read_text())
    return next(e for e in raw["entries"] if e["kind"] == "bup")


def parse(**overrides) -> tuple[list, list[str]]:
    entry = {**example(), **overrides}
    parsed = parse_clusters({"entries": [entry]})
    return parsed.entries, [str(e) for e in parsed.errors]


def test_example_entry_is_valid_and_derives_paths():
    entries, errors = parse()
    assert errors == []
    entry = entries[0]
    assert entry.backup_set == "web1" and entry.local_bup_dir == "/var/cache/bup/web1"
    assert entry.saved_paths == ["/etc", "/var/www", "/var/backups/staging"]


@pytest.mark.parametrize(
    ("overrides", "field", "value"),
    [
        ({"paths": ["/etc; rm -rf /"]}, "paths.0", "/etc; rm -rf /"),
        ({"exclude_rx": ["(unclosed"]}, "exclude_rx", "(unclosed"),
        ({"server": {"host": "bad host", "repo_dir": "/r"}}, "server.host", "bad host"),
        ({"dumps": [{"name": "db", "argv": ["x"], "output": "../etc/passwd"}]}, "dumps.0.output", "../etc/passwd"),
        ({"dumps": [{"name": "db", "argv": ["x"], "output": "a.sql", "env_from_connection": {"PW": "secret"}}]},
         "dumps.0.env_from_connection", "secret"),
        ({"s3_sync": {"bucket": "b", "prefix": "../x"}}, "s3_sync.prefix", "../x"),
        ({"prune_older": {"keep_all_for": "7 days"}}, "prune_older.keep_all_for", "7 days"),
        ({"stagin_dir": "/x"}, "stagin_dir", "/x"),
        # a password is named by position, never echoed (test_config checks the secret is absent)
        ({"dumps": [{"name": "db", "argv": ["mysqldump", "--password=hunter2"], "output": "a.sql"}]},
         "dumps.0.argv", "argument #1 carries a password"),
        ({"dumps": [{"name": "db", "argv": ["pg_dump", "postgresql://app:hunter2@db/app"], "output": "a.sql"}]},
         "dumps.0.argv", "argument #1 carries a password"),
    ],
)
def test_bad_input_names_the_field_and_value(overrides, field, value):
    entries, errors = parse(**overrides)
    assert entries == [] and len(errors) == 1
    assert "web1" in errors[0] and field in errors[0] and value in errors[0]


def test_consistency_rules():
    _, errors = parse(staging_dir=None)
    assert "dumps need a staging_dir" in errors[0]
    _, errors = parse(prune_mode="prune-older")
    assert "prune_older keep periods" in errors[0]
    _, errors = parse(dumps=[{"name": "a", "argv": ["x"], "output": "o"}, {"name": "a", "argv": ["y"], "output": "p"}])
    assert "listed twice" in errors[0]


def test_dags_from_the_example_file():
    from airflow_backup_provider.factory import build_entry

    entry = parse()[0][0]
    dags = {d.dag_id: d for d in build_entry(entry)}
    assert set(dags) == {"bup_web1", "bup_web1_restore", "bup_web1_s3_sync", "bup_web1_drill"}
    backup = dags["bup_web1"]
    assert backup.max_active_runs == 1
    assert {t.task_id for t in backup.tasks} == {"wait_for_other_runs", "dumps", "save", "prune", "report"}
    assert backup.get_task("dumps").upstream_task_ids == {"wait_for_other_runs"}
    assert backup.get_task("save").upstream_task_ids == {"dumps"}
    assert backup.get_task("prune").upstream_task_ids == {"save"}
    assert [a.name for a in backup.get_task("save").outlets] == ["bup_web1_repository"]
    sync = dags["bup_web1_s3_sync"]
    assert sync.timetable.expression == "0 3 * * 6"
    assert sync.get_task("s3_sync").upstream_task_ids == {"fsck"}
    restore = dags["bup_web1_restore"]
    assert type(restore.timetable).__name__ == "NullTimetable"
    assert set(restore.params) == {"dry_run", "save", "path", "target_dir", "where"}
    assert restore.params["path"] == "/var/backups/staging"


def test_sync_dag_on_the_backup_asset():
    from airflow_backup_provider.factory import build_entry

    entry = parse(s3_sync={"bucket": "b", "on_backup": True, "schedule": None})[0][0]
    sync = next(d for d in build_entry(entry) if d.dag_id.endswith("_s3_sync"))
    assert "bup_web1_repository" in str(sync.timetable.asset_condition)
    entry = parse(s3_sync={"bucket": "b", "on_backup": True})[0][0]
    sync = next(d for d in build_entry(entry) if d.dag_id.endswith("_s3_sync"))
    assert type(sync.timetable).__name__ == "AssetOrTimeSchedule"
    assert sync.timetable.timetable.expression == "0 3 * * 6"
    assert "bup_web1_repository" in str(sync.timetable.asset_condition)


SAVES = [parse_save_name(n) for n in ("2026-11-19-000000", "2026-11-20-000000", "2026-11-20-000000-1", "2026-11-21-000000")]


def test_choose_save():
    assert choose_save(SAVES, "latest").name == "2026-11-21-000000"
    assert choose_save(SAVES, "2026-11-20").name == "2026-11-20-000000-1"
    assert choose_save(SAVES, "2026-11-19-000000").name == "2026-11-19-000000"
    for bad in ("2026-11-22", "2026-11-22-000000", "yesterday"):
        with pytest.raises(BupError, match="param 'save'"):
            choose_save(SAVES, bad)


def test_guard_prune_refuses_newest_and_future():
    # The guard of every kind's deletes (retention.delete_refusals), on bup saves.
    from airflow_backup_provider.retention import (
        REASON_NEWER,
        REASON_NEWEST,
        BackupItem,
        delete_refusals,
        newest_complete,
    )

    def refusals(saves, save, as_of):
        items = [BackupItem(id=f"b/{s.name}", created_at=s.created_at) for s in saves]
        item = next(i for i in items if i.id == f"b/{save.name}")
        return delete_refusals(item, item, as_of, newest_complete(items, as_of))

    as_of = datetime(2026, 11, 20, tzinfo=UTC)
    assert refusals(SAVES, SAVES[0], as_of) == []
    assert REASON_NEWEST in refusals(SAVES, SAVES[-1], datetime(2026, 12, 1, tzinfo=UTC))
    assert REASON_NEWER in refusals([*SAVES, Save(datetime(2026, 12, 1, tzinfo=UTC), "2026-12-01-000000")], SAVES[-1], as_of)


@pytest.mark.parametrize(
    ("path", "target"), [("/etc/../root", "/tmp/x"), ("/etc", "/tmp/$(reboot)"), ("etc", "/tmp/x"), ("/etc", "/")]
)
def test_restore_refuses_hostile_paths(path, target):
    op = BupRestoreOperator(
        task_id="r", branch="web1", path=path, save="latest", target_dir=target, host="h", bup_dir="/b"
    )
    with pytest.raises(BupError, match="param '(path|target_dir)'"):
        op._validate()


def test_dags_serialize_for_the_scheduler():
    from airflow.serialization.serialized_objects import DagSerialization

    from airflow_backup_provider.factory import build_entry

    for dag in build_entry(parse()[0][0]):
        back = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert set(back.task_dict) == set(dag.task_dict)
        assert back.params["dry_run"] is False


def test_without_s3_sync_the_weekly_fsck_has_its_own_dag():
    from airflow_backup_provider.factory import build_entry

    entry = parse(s3_sync=None)[0][0]
    dags = {d.dag_id: d for d in build_entry(entry)}
    assert set(dags) == {"bup_web1", "bup_web1_restore", "bup_web1_fsck", "bup_web1_drill"}
    fsck = dags["bup_web1_fsck"]
    assert fsck.timetable.expression == "0 3 * * 6" and fsck.max_active_runs == 1
    assert fsck.get_task("fsck").upstream_task_ids == {"wait_for_other_runs"}
    # with an S3 sync, its DAG runs fsck first; fsck off or unscheduled: no fsck DAG
    assert "bup_web1_fsck" not in {d.dag_id for d in build_entry(parse()[0][0])}
    assert "bup_web1_fsck" not in {d.dag_id for d in build_entry(parse(s3_sync=None, fsck=False)[0][0])}
    assert "bup_web1_fsck" not in {d.dag_id for d in build_entry(parse(s3_sync=None, fsck_schedule=None)[0][0])}
    _, errors = parse(s3_sync=None, fsck_schedule="every saturday")
    assert "fsck_schedule" in str(errors[0]) and "every saturday" in str(errors[0])
