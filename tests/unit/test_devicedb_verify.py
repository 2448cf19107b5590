"""The restore's verdict: same membership everywhere (and as recorded), the check key back."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_backup_provider.hooks.devicedb import DevicedbError
from airflow_backup_provider.operators import devicedb_restore
from airflow_backup_provider.operators.devicedb_restore import DevicedbVerifyRestoreSensor

NODES = [{"label": f"n{i}", "host": f"10.0.0.{i}", "http_port": 8080} for i in (1, 2, 3)]
CHECK = {"site": "s", "bucket": "lww", "key": "k", "value": "backup-1"}


class FakeNode:
    def __init__(self, members, values):
        self.members, self.values = members, values

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def membership(self):
        if isinstance(self.members, Exception):
            raise self.members
        return self.members

    def get_key(self, site, bucket, key):
        if isinstance(self.values, Exception):
            raise self.values
        return self.values


def poke(monkeypatch, answers, *, mode="required", recorded=None, check=CHECK):
    fakes = {f"10.0.0.{i + 1}": FakeNode(*answer) for i, answer in enumerate(answers)}
    monkeypatch.setattr(devicedb_restore, "hook_for_node", lambda spec, **_: fakes[spec["host"]])
    monkeypatch.setattr(devicedb_restore, "record_outcome", lambda *a, **k: None)
    sensor = DevicedbVerifyRestoreSensor(task_id="verify_restore", nodes=NODES, membership_check=mode)
    manifest = {"uuid": "u", "check": check, "membership": recorded}
    ti = SimpleNamespace(xcom_pull=lambda task_ids: manifest)
    return sensor, sensor.poke({"ti": ti})


def test_same_membership_and_the_key_back_verifies(monkeypatch):
    _, ok = poke(monkeypatch, [(["1", "2", "3"], ["backup-1"])] * 3, recorded=["3", "2", "1"])
    assert ok


def test_a_later_value_of_the_key_is_not_verified(monkeypatch):
    sensor, ok = poke(monkeypatch, [(["1", "2", "3"], ["backup-1"])] * 2 + [(["1", "2", "3"], ["backup-2"])])
    assert not ok and "n3: check key 'k' reads ['backup-2']" in sensor._problems[0]


def test_different_memberships_are_not_verified(monkeypatch):
    sensor, ok = poke(monkeypatch, [(["1", "2", "3"], ["backup-1"])] * 2 + [(["9"], ["backup-1"])])
    assert not ok and "different memberships" in sensor._problems[0]


def test_a_membership_other_than_the_recorded_one_fails_at_once(monkeypatch):
    with pytest.raises(AirflowFailException, match="not the one recorded at backup time"):
        poke(monkeypatch, [(["1", "2", "4"], ["backup-1"])] * 3, recorded=["1", "2", "3"])


def test_unavailable_membership_by_mode(monkeypatch):
    gone = DevicedbError("10.0.0.1:8080", "GET /cluster", "404 page not found", http_status=404)
    answers = [(gone, ["backup-1"])] * 3
    assert poke(monkeypatch, answers, mode="best_effort")[1]
    assert poke(monkeypatch, answers, mode="off")[1]
    sensor, ok = poke(monkeypatch, answers, mode="required")
    assert not ok and "membership unavailable" in sensor._problems[0]


def test_an_unreadable_key_waits(monkeypatch):
    busy = DevicedbError("10.0.0.2:8080", "GET keys", "no quorum", http_status=500)
    sensor, ok = poke(monkeypatch, [(["1"], ["backup-1"]), (["1"], busy), (["1"], ["backup-1"])])
    assert not ok and "n2: check key unreadable" in sensor._problems[0]


def test_cleanup_removes_the_snapshot_folder_and_reports_one_that_is_not_there(tmp_path, monkeypatch):
    from airflow_backup_provider.operators import devicedb as ops

    uuid = "b54a61d9-b64c-45e0-94b7-80c9e36b86fa"
    recorded = []
    monkeypatch.setattr(ops, "record_outcome", lambda context, **kw: recorded.append(kw))
    spec = {"label": "n1", "host": "localhost", "snapshot_dir": str(tmp_path / "snaps")}
    op = ops.DevicedbCleanupNodeOperator(
        task_id="cleanup_n1", node=spec, cluster="c", nodes=[spec], bucket="b", prefix="p", ssh_conn_id="local"
    )
    monkeypatch.setattr(op, "snapshot_of_run", lambda context: {"uuid": uuid})
    monkeypatch.setattr(op, "read_manifest", lambda u: {"nodes": [{"node": "n1"}]})
    folder = tmp_path / "snaps" / uuid
    folder.mkdir(parents=True)
    (folder / "CURRENT").write_text("MANIFEST-000001\n")
    op.execute({})
    assert not folder.exists() and recorded[-1]["status"] == "done"
    # a wrong snapshot_dir (or a folder already gone) is said, not counted as freed disk
    op.execute({})
    assert recorded[-1]["status"] == "skipped" and "no local snapshot folder" in recorded[-1]["detail"]
