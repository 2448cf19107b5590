"""The restore's verdict: same membership everywhere (and as recorded), the check key back."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_backup_provider.hooks.devicedb import DevicedbError
from airflow_backup_provider.operators import report
from airflow_backup_provider.sensors import devicedb as devicedb_sensors
from airflow_backup_provider.sensors.devicedb import DevicedbVerifyRestoreSensor
from tests.devicedb_fixtures import node_spec

NODES = [node_spec(f"n{i}", f"10.0.0.{i}", http_port=8080) for i in (1, 2, 3)]
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
    monkeypatch.setattr(devicedb_sensors, "hook_for_node", lambda spec, **_: fakes[spec.host])
    monkeypatch.setattr(report, "record_outcome", lambda *a, **k: None)
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


def cleanup_operator(tmp_path, monkeypatch, record, node_id):
    from airflow_backup_provider.operators import devicedb as ops

    recorded = []
    monkeypatch.setattr(report, "record_outcome", lambda context, **kw: recorded.append(kw))
    spec = node_spec("n1", "localhost", http_port=8080, snapshot_dir=str(tmp_path / "snaps"))
    op = ops.DevicedbCleanupNodeOperator(
        task_id="cleanup_n1", node=spec, cluster="c", nodes=[spec], bucket="b", prefix="p", ssh_conn_id="local"
    )
    monkeypatch.setattr(op, "snapshot_of_run", lambda context: record)
    monkeypatch.setattr(op, "read_manifest", lambda u: {"nodes": [{"node": "n1"}]})
    monkeypatch.setattr(op, "_node_id", lambda: node_id, raising=False)
    return op, recorded


def snapshot_folder(tmp_path, uuid, node_id):
    folder = tmp_path / "snaps" / f"snapshot-{uuid}-{node_id}"
    folder.mkdir(parents=True)
    (folder / "CURRENT").write_text("MANIFEST-000001\n")
    return folder


UUID = "b54a61d9-b64c-45e0-94b7-80c9e36b86fa"
ORPHAN = "19a7e40e-adcc-4cc2-87a7-ae599272b050"
OTHER = "0c8b7f51-4f0e-4a34-9d1e-7c6f2b1a9e00"
NODE_ID = "17756478523337819288"


@pytest.mark.parametrize("known_id", [NODE_ID, None])  # from GET /cluster, or by the folder name alone
def test_cleanup_removes_the_nodes_snapshot_folder_and_the_runs_orphans(tmp_path, monkeypatch, known_id):
    mine, orphan, other = (snapshot_folder(tmp_path, u, NODE_ID) for u in (UUID, ORPHAN, OTHER))
    record = {"uuid": UUID, "orphans": [ORPHAN], "before": {"n1": [OTHER]}, "unanswered": True}
    op, recorded = cleanup_operator(tmp_path, monkeypatch, record, known_id)
    op.execute({})
    assert not mine.exists() and not orphan.exists() and other.exists()
    assert recorded[-1]["status"] == "done" and f"snapshot-{UUID}-{NODE_ID}" in recorded[-1]["detail"]
    assert ORPHAN in recorded[-1]["detail"]


def test_cleanup_removes_what_an_unanswered_post_left_behind(tmp_path, monkeypatch):
    mine, late = snapshot_folder(tmp_path, UUID, NODE_ID), snapshot_folder(tmp_path, ORPHAN, NODE_ID)
    kept = snapshot_folder(tmp_path, OTHER, NODE_ID)  # there before the run
    op, _ = cleanup_operator(tmp_path, monkeypatch, {"uuid": UUID, "before": {"n1": [OTHER]}, "unanswered": True}, NODE_ID)
    op.execute({})
    assert not mine.exists() and not late.exists() and kept.exists()


def test_cleanup_fails_when_the_completed_snapshot_has_no_folder_where_it_must_be(tmp_path, monkeypatch):
    old_layout = tmp_path / "snaps" / UUID  # <snapshot_store>/<uuid>: not where devicedb keeps it
    old_layout.mkdir(parents=True)
    snapshot_folder(tmp_path, UUID, "42")  # another node's copy (a shared store)
    op, recorded = cleanup_operator(tmp_path, monkeypatch, {"uuid": UUID}, NODE_ID)
    with pytest.raises(AirflowException, match=f"no folder snapshot-{UUID}-{NODE_ID} in .*snaps"):
        op.execute({})
    assert old_layout.exists() and recorded == []
