"""The trigger's retry after a POST /snapshot that never answered (no quorum): adopt, wait or retake."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_backup_provider.operators import devicedb as ops
from airflow_backup_provider.stores import devicedb as ddb
from tests.devicedb_fixtures import node_spec

OLD, LATE, OTHER, NEW = (
    "0c8b7f51-4f0e-4a34-9d1e-7c6f2b1a9e00",
    "19a7e40e-adcc-4cc2-87a7-ae599272b050",
    "2d4e6f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
    "b54a61d9-b64c-45e0-94b7-80c9e36b86fa",
)
NODES = [node_spec(f"n{i}", f"10.0.0.{i}", http_port=8080, snapshot_dir="/snap") for i in (1, 2, 3)]
CONTEXT = {
    "logical_date": datetime(2026, 11, 20, tzinfo=UTC),
    "params": {"dry_run": False},
    "run_id": "r1",
    "ti": SimpleNamespace(dag_id="devicedb_c", get_dr_count=lambda **_: 0),
}
KEY = "p/c/_runs/20261120T000000Z.json"


class FakeS3:
    def __init__(self, objects):
        self.objects = dict(objects)

    # the ObjectStoreHook's signatures
    def get_bytes(self, bucket, key):
        return self.objects.get(key)

    def put_bytes(self, bucket, key, data, content_type="application/octet-stream"):
        self.objects[key] = data


def operator(monkeypatch, *, record, folders, quorum=True, nodes=NODES):
    """`folders`: uuids per node label now; the POST (if any) answers NEW."""
    s3 = FakeS3({KEY: json.dumps(record).encode()} if record else {})
    op = ops.DevicedbTriggerSnapshotOperator(cluster="c", nodes=nodes, bucket="b", prefix="p")
    posts = []
    monkeypatch.setattr(op, "s3", lambda: s3)
    monkeypatch.setattr(op, "read_manifest", lambda uuid: None)
    monkeypatch.setattr(op, "_quorum", lambda: quorum)
    monkeypatch.setattr(
        op, "snapshot_folders", lambda spec: ddb.parse_snapshot_folders(f"snapshot-{u}-7" for u in folders[spec.label])
    )
    monkeypatch.setattr(op, "_trigger", lambda check: posts.append(check) or (ddb.SnapshotInfo(NEW, "processing"), "n1"))
    return op, posts, s3


def unanswered(before):
    return {"uuid": None, "posted_at": "2026-11-20T00:01:00+00:00", "node": "n1", "check": None, "before": before, "orphans": []}


def test_the_first_try_records_the_stores_before_it_posts(monkeypatch):
    op, posts, s3 = operator(monkeypatch, record=None, folders={"n1": [OLD], "n2": [OLD], "n3": []})
    taken = op.execute(CONTEXT)
    assert taken["uuid"] == NEW and taken["before"] == {"n1": [OLD], "n2": [OLD], "n3": []} and len(posts) == 1
    assert json.loads(s3.objects[KEY])["uuid"] == NEW


def test_one_snapshot_that_appeared_is_adopted_without_a_post(monkeypatch):
    before = {"n1": [OLD], "n2": [OLD], "n3": [OLD]}
    op, posts, s3 = operator(monkeypatch, record=unanswered(before), folders={"n1": [OLD, LATE], "n2": [OLD, LATE], "n3": [OLD]})
    adopted = op.execute(CONTEXT)
    assert adopted["uuid"] == LATE and adopted["unanswered"] and posts == []
    assert json.loads(s3.objects[KEY])["uuid"] == LATE


def test_nothing_appeared_and_no_quorum_posts_nothing_and_fails_the_try(monkeypatch):
    op, posts, _ = operator(monkeypatch, record=unanswered({"n1": [], "n2": [], "n3": []}), folders={"n1": [], "n2": [], "n3": []}, quorum=False)
    with pytest.raises(AirflowException, match="no quorum yet"):
        op.execute(CONTEXT)
    assert posts == []


def test_several_that_appeared_are_orphans_and_a_new_one_is_taken(monkeypatch):
    before = {"n1": [], "n2": [], "n3": []}
    op, posts, _ = operator(monkeypatch, record=unanswered(before), folders={"n1": [LATE, OTHER], "n2": [LATE], "n3": [OTHER]})
    taken = op.execute(CONTEXT)
    assert taken["uuid"] == NEW and len(posts) == 1
    assert taken["orphans"] == sorted([LATE, OTHER]) and taken["before"] == before and taken["unanswered"]


def test_stores_that_cannot_be_listed_now_post_nothing(monkeypatch):
    from airflow_backup_provider.hooks.remote import RemoteTransportError

    op, posts, _ = operator(monkeypatch, record=unanswered({"n1": []}), folders={})

    def unreachable(spec):
        raise RemoteTransportError("ssh: no route")

    monkeypatch.setattr(op, "snapshot_folders", unreachable)
    with pytest.raises(AirflowException, match="cannot be listed"):
        op.execute(CONTEXT)
    assert posts == []


def test_without_snapshot_dir_an_unanswered_post_is_not_retaken_blindly(monkeypatch):
    nodes = [dataclasses.replace(n, snapshot_dir=None) for n in NODES]
    op, posts, _ = operator(monkeypatch, record=unanswered(None), folders={}, nodes=nodes)
    with pytest.raises(AirflowFailException, match="without snapshot_dir .* cannot find it"):
        op.execute(CONTEXT)
    assert posts == []
