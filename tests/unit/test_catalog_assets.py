"""The catalog's Asset naming and the `extra` of its events (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pendulum

from airflow_backup_provider.assets import asset_name, cluster_asset, event_extra, run_type_of
from airflow_backup_provider.config import parse_clusters


def test_one_asset_per_cluster_and_kind_with_one_naming_scheme():
    clusters = parse_clusters(
        {"entries": [
            {"kind": "ebs", "name": "app-data", "volume_ids": ["vol-0a1b2c3d4e5f60718"]},
            {"kind": "ebs", "name": "app-data2", "volume_ids": ["vol-0a1b2c3d4e5f60718"]},
        ]}
    )
    assets = [cluster_asset(entry) for entry in clusters.entries]
    assert [a.name for a in assets] == ["backup_ebs_app-data", "backup_ebs_app-data2"]
    assert [a.uri for a in assets] == ["x-backup://ebs/app-data", "x-backup://ebs/app-data2"]
    assert asset_name("riak", "prod") == "backup_riak_prod"


def test_run_type_from_the_dag_ids_suffix():
    assert run_type_of("riak_prod", "riak_prod") == "backup"
    assert run_type_of("riak_prod_restore", "riak_prod") == "restore"
    assert run_type_of("riak_prod_drill", "riak_prod") == "drill"
    assert run_type_of("bup_web1_s3_sync", "bup_web1") is None
    assert run_type_of("bup_web1_fsck", "bup_web1") is None
    assert run_type_of("riak_prod2", "riak_prod") is None


def test_extra_counts_what_was_produced_not_what_was_staged():
    started = pendulum.datetime(2026, 11, 20, 2, 30, tz="UTC")
    extra = event_extra(
        run_type="backup",
        dag_id="bup_web1",
        run_id="scheduled__2026-11-20",
        logical_date=pendulum.datetime(2026, 11, 20, tz="Europe/Paris"),
        started=started,
        ended=datetime(2026, 11, 20, 2, 31, 15, tzinfo=UTC),
        backed_up=[
            {"produced": [{"id": "app-db:/staging/app.sql", "size": 100, "staged": True}]},
            {"produced": [{"id": "web1/2026-11-20-000000", "size": 4096}, {"id": "snap-1", "size": None}]},
        ],
        task_states={"save": "success", "report": "running"},
    )
    assert extra == {
        "run_type": "backup",
        "dag_id": "bup_web1",
        "run_id": "scheduled__2026-11-20",
        "logical_date": "2026-11-19T23:00:00+00:00",
        "ids": ["web1/2026-11-20-000000", "snap-1"],
        "bytes": 4096,
        "items": 2,
        "duration_seconds": 75.0,
        "verified": False,
    }


def test_drill_extra_has_a_verdict_and_verified_comes_from_a_verify_task_or_the_items():
    common = dict(dag_id="d", run_id="r", logical_date=datetime(2026, 1, 1, tzinfo=UTC), started=None,
                  ended=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=1))
    drill = event_extra(run_type="drill", backed_up=[{"produced": [{"id": "x", "verified": True}]}], task_states={}, **common)
    assert drill["verdict"] == "passed" and drill["verified"] is True and drill["duration_seconds"] is None
    assert drill["bytes"] is None
    by_task = event_extra(run_type="backup", backed_up=[{"produced": [{"id": "x"}]}],
                          task_states={"verify[0]": "success"}, **common)
    assert by_task["verified"] is True and "verdict" not in by_task
    failed_verify = event_extra(run_type="backup", backed_up=[{"produced": [{"id": "x", "verified": "no"}]}],
                                task_states={"verify[0]": "failed"}, **common)
    assert failed_verify["verified"] is False
