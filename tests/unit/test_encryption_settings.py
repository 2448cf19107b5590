"""Every kind that writes to S3 takes the same two encryption fields from its entry, and every task
of its DAGs that builds the object store gets them (devicedb's tars were once stored unencrypted)."""

from __future__ import annotations

import pytest
import yaml

from airflow_backup_provider.config import parse_clusters
from airflow_backup_provider.factory import build_dags
from airflow_backup_provider.hooks.object_store import ObjectStoreHook
from tests.harness import REPO

KEY = "alias/backups"


def example(kind: str) -> dict:
    raw = yaml.safe_load((REPO / "dags" / "clusters.yaml").read_text())
    return next(e for e in raw["entries"] if e["kind"] == kind)


def with_key(kind: str) -> dict:
    entry = example(kind)
    if kind == "bup":
        return {**entry, "s3_sync": {**(entry.get("s3_sync") or {"bucket": "backups"}), "kms_key_id": KEY}}
    return {**entry, "kms_key_id": KEY}


def s3_tasks(entry: dict) -> list:
    parsed = parse_clusters({"entries": [entry]})
    assert not parsed.errors, parsed.errors
    dags, errors = build_dags(parsed)
    assert not errors, errors
    return [t for dag in dags.values() for t in dag.tasks if hasattr(t, "kms_key_id")]


@pytest.mark.parametrize("kind", ["cassandra", "devicedb", "bup"])
def test_the_entrys_kms_key_reaches_every_task_that_writes_to_s3(kind, monkeypatch):
    tasks = s3_tasks(with_key(kind))
    assert tasks, f"no {kind} task carries the encryption settings"
    for task in tasks:
        assert (task.task_id, task.kms_key_id) == (task.task_id, KEY)
        # what the task's hook would put on every write
        hook = ObjectStoreHook(aws_conn_id=None, sse=task.sse, kms_key_id=task.kms_key_id)
        assert hook.extra_args == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KEY}


@pytest.mark.parametrize("kind", ["cassandra", "devicedb", "bup"])
def test_without_settings_every_write_is_aes256(kind):
    entry = example(kind)
    if kind == "bup":
        entry = {**entry, "s3_sync": entry.get("s3_sync") or {"bucket": "backups"}}
    tasks = s3_tasks(entry)
    assert tasks and {(t.sse, t.kms_key_id) for t in tasks} == {("AES256", None)}


def test_a_bad_sse_mode_names_the_field_and_value():
    parsed = parse_clusters({"entries": [{**example("devicedb"), "sse": "rot13"}]})
    assert not parsed.entries
    assert "sse" in str(parsed.errors[0]) and "rot13" in str(parsed.errors[0])
