"""What a real devicedb 1.10 cluster does and a simpler simulator hid (the reference's "Observed on
a real cluster"): the 45 s write timeout, the chunked tar, the unanswered POST without quorum, the
500 of a node without -snapshot_store, a check key on fewer replicas right after PUT /sites."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import requests
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_backup_provider.hooks.devicedb import DevicedbError, DevicedbHook, DevicedbUnreachable
from airflow_backup_provider.hooks.object_store import MIB, ObjectStoreHook
from airflow_backup_provider.operators import devicedb as ops
from airflow_backup_provider.operators import report
from airflow_backup_provider.sensors.devicedb import DevicedbSnapshotSensor
from tests.devicedb_fixtures import node_spec, s3_objects
from tests.integration.s3_proxy import S3Proxy
from tests.sandbox.core import wait_until

pytestmark = pytest.mark.sandbox

CONN = "devicedb_slow_s3"
STORE_SIZE = 32 * MIB
WRITE_TIMEOUT = 5  # seconds: the simulator's stand-in for devicedb's 45 s (the spool reads 32 MiB well within it)
PART_DELAY = 2  # seconds S3 takes per part: a tar uploaded as it is read needs 7 x 2 s


@pytest.fixture(scope="module")
def slow_s3(sandbox):
    proxy = S3Proxy(sandbox.moto_url).start()
    os.environ[f"AIRFLOW_CONN_{CONN.upper()}"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"region_name": "us-east-1", "endpoint_url": proxy.url},
        }
    )
    yield proxy
    os.environ.pop(f"AIRFLOW_CONN_{CONN.upper()}", None)
    proxy.stop()


def slow_parts(request):
    if request.is_object_write:
        time.sleep(PART_DELAY)
    return None


def spec(devicedb, node):
    return node_spec(node.address, node.address, http_port=8080, ssh_port=22, http_host=None, snapshot_dir=str(devicedb.snapshot_dir(node)))


def hook(node, timeout=5) -> DevicedbHook:
    return DevicedbHook(node.address, 8080, timeout=timeout)


def completed_snapshot(devicedb, node) -> str:
    with hook(node) as h:
        uuid = h.trigger_snapshot().uuid
    devicedb.wait_completed(uuid)
    return uuid


# ---- 19: the write timeout -------------------------------------------------------------------------


def test_a_tar_read_at_the_pace_of_s3_is_cut_by_the_write_timeout(sandbox, devicedb, bucket, slow_s3):
    node = sandbox.nodes[0]
    devicedb.grow_store(node, STORE_SIZE)
    devicedb.set_knobs(node, write_timeout=1)
    uuid = completed_snapshot(devicedb, node)
    slow_s3.fault = slow_parts
    try:
        # the client notices the cut only once it has consumed what the socket buffers held
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            with hook(node) as h, h.open_snapshot_tar(uuid) as response:
                ObjectStoreHook(aws_conn_id=CONN).upload_parts(
                    bucket, "streamed.tar", response.iter_content(MIB), part_size=5 * MIB
                )
    finally:
        slow_s3.reset()
    assert "streamed.tar" not in s3_objects(sandbox, bucket)


def test_a_slow_reader_gets_an_error_that_names_the_node_and_says_why(sandbox, devicedb):
    node = sandbox.nodes[1]
    devicedb.grow_store(node, STORE_SIZE)
    devicedb.set_knobs(node, write_timeout=1)
    uuid = completed_snapshot(devicedb, node)

    class SlowFile:
        def write(self, chunk):
            time.sleep(0.3)

    with hook(node) as h, pytest.raises(DevicedbError) as caught:
        h.download_snapshot_tar(uuid, SlowFile(), max_bytes=10 * STORE_SIZE)
    message = str(caught.value)
    assert f"devicedb node {node.address}:8080" in message and "cut after" in message and "write timeout" in message


def upload_operator(devicedb, node, bucket, tmp_path, monkeypatch, uuid, **kwargs):
    monkeypatch.setattr(report, "record_outcome", lambda *a, **k: None)
    node_spec = spec(devicedb, node)
    operator = ops.DevicedbUploadNodeOperator(
        task_id="upload_n", node=node_spec, cluster="c", nodes=[node_spec], bucket=bucket, prefix="devicedb",
        aws_conn_id=CONN, spool_dir=str(tmp_path), part_size_mb=5, **kwargs,
    )
    monkeypatch.setattr(operator, "snapshot_of_run", lambda context: {"uuid": uuid})
    return operator


def test_the_upload_spools_the_tar_at_network_speed_then_uploads_it(sandbox, devicedb, bucket, slow_s3, tmp_path, monkeypatch):
    node = sandbox.nodes[0]
    devicedb.grow_store(node, STORE_SIZE)
    devicedb.set_knobs(node, write_timeout=WRITE_TIMEOUT)
    uuid = completed_snapshot(devicedb, node)
    operator = upload_operator(devicedb, node, bucket, tmp_path, monkeypatch, uuid)
    slow_s3.fault = slow_parts
    try:
        uploaded = operator.execute({})
    finally:
        slow_s3.reset()
    assert uploaded["size"] > STORE_SIZE and s3_objects(sandbox, bucket)[uploaded["key"]] == uploaded["size"]
    assert list(tmp_path.iterdir()) == []  # the spool file is gone


def test_a_tar_over_spool_max_bytes_is_refused_at_once_and_leaves_nothing(sandbox, devicedb, bucket, tmp_path, monkeypatch):
    node = sandbox.nodes[2]
    devicedb.grow_store(node, 4 * MIB)
    uuid = completed_snapshot(devicedb, node)
    operator = upload_operator(devicedb, node, bucket, tmp_path, monkeypatch, uuid, spool_max_bytes=2 * MIB)
    with pytest.raises(AirflowFailException, match=r"exceeds spool_max_bytes \(2097152 bytes\)"):
        operator.execute({})
    assert list(tmp_path.iterdir()) == [] and s3_objects(sandbox, bucket) == {}
    missing = upload_operator(devicedb, node, bucket, tmp_path / "nope", monkeypatch, uuid)
    with pytest.raises(AirflowFailException, match="spool_dir: value .*nope' is not a writable folder"):
        missing.execute({})


# ---- 21: the unanswered POST ---------------------------------------------------------------------

CONTEXT = {
    "logical_date": datetime(2026, 11, 20, tzinfo=UTC),
    "params": {"dry_run": False},
    "run_id": "r1",
    "ti": SimpleNamespace(dag_id="devicedb_c", xcom_push=lambda **_: None, get_dr_count=lambda **_: 0),
}


def trigger_operator(devicedb, sandbox, bucket, **kwargs):
    return ops.DevicedbTriggerSnapshotOperator(
        task_id="trigger_snapshot", cluster="c", nodes=[spec(devicedb, n) for n in sandbox.nodes], bucket=bucket,
        prefix="devicedb", http_timeout=2, **kwargs,
    )


def test_a_retry_after_an_unanswered_post_adopts_the_snapshot_it_took(sandbox, devicedb, bucket):
    operator = trigger_operator(devicedb, sandbox, bucket)
    devicedb.stop(sandbox.nodes[1])
    devicedb.stop(sandbox.nodes[2])  # no quorum: the POST never answers
    with pytest.raises(DevicedbUnreachable, match="no answer within"):
        operator.execute(CONTEXT)
    with pytest.raises(AirflowException, match="no quorum yet"):
        operator.execute(CONTEXT)  # a retry while quorum is still lost posts nothing
    assert all(devicedb.snapshot_dirs(n) == [] for n in sandbox.nodes)

    devicedb.start(sandbox.nodes[1])  # quorum is back: the proposal commits, on every node
    devicedb.start(sandbox.nodes[2])
    wait_until(lambda: all(len(devicedb.snapshot_dirs(n)) == 1 for n in sandbox.nodes), timeout=30, what="late snapshot")
    (late,) = devicedb.snapshot_dirs(sandbox.nodes[0])
    devicedb.wait_completed(late)

    adopted = operator.execute(CONTEXT)
    assert adopted["uuid"] == late and adopted["adopted"]
    assert operator.execute(CONTEXT)["uuid"] == late  # and from now on it is the run's snapshot
    assert all(devicedb.snapshot_dirs(n) == [late] for n in sandbox.nodes)  # never a second one


def test_a_retry_after_a_lost_post_takes_a_new_snapshot_once_quorum_is_back(sandbox, devicedb, bucket):
    operator = trigger_operator(devicedb, sandbox, bucket)
    record = {
        "uuid": None, "posted_at": datetime.now(UTC).isoformat(), "node": sandbox.nodes[0].address, "check": None,
        "before": {n.address: [] for n in sandbox.nodes}, "orphans": [], "unanswered": True,
    }
    sandbox.boto3_client("s3").put_object(Bucket=bucket, Key="devicedb/c/_runs/20261120T000000Z.json", Body=json.dumps(record))
    taken = operator.execute(CONTEXT)  # nothing appeared, and a majority answers: the POST never got into the log
    devicedb.wait_completed(taken["uuid"])
    assert all(devicedb.snapshot_dirs(n) == [taken["uuid"]] for n in sandbox.nodes) and taken["unanswered"]


# ---- 22: a node without -snapshot_store -------------------------------------------------------------


def test_the_wait_fails_at_once_on_a_node_without_snapshot_store(sandbox, devicedb):
    storeless = sandbox.nodes[1]
    devicedb.set_knobs(storeless, no_snapshot_store=True)
    with hook(sandbox.nodes[0]) as h:
        uuid = h.trigger_snapshot().uuid
    devicedb.wait_completed_on(uuid, [sandbox.nodes[0], sandbox.nodes[2]])
    sensor = DevicedbSnapshotSensor(
        task_id="wait_for_snapshot", nodes=[spec(devicedb, n) for n in sandbox.nodes], missing_grace=300, http_timeout=5
    )
    sensor._snapshot = {"uuid": uuid, "triggered_at": datetime.now(UTC).isoformat()}
    with pytest.raises(AirflowFailException) as caught:
        sensor.poke({})  # well within missing_grace
    assert f"no snapshot store on {storeless.address}" in str(caught.value)
    assert "No snapshot directory configured" in str(caught.value)


def test_the_deferred_wait_fails_at_once_on_a_node_without_snapshot_store(sandbox, devicedb):
    import asyncio

    from airflow_backup_provider.triggers.devicedb import DevicedbSnapshotTrigger

    storeless = sandbox.nodes[2]
    devicedb.set_knobs(storeless, no_snapshot_store=True)
    with hook(sandbox.nodes[0]) as h:
        uuid = h.trigger_snapshot().uuid
    trigger = DevicedbSnapshotTrigger(
        nodes=[spec(devicedb, n) for n in sandbox.nodes], uuid=uuid,
        triggered_at=datetime.now(UTC).isoformat(), missing_grace=300, poll_interval=0.3, http_timeout=5,
    )

    async def first_event():
        async for event in trigger.run():
            return event.payload

    event = asyncio.run(asyncio.wait_for(first_event(), 20))
    assert event["status"] == "error" and event["final"] is True
    assert event["state"] == "failed" and f"no snapshot store on {storeless.address}" in event["message"]


# ---- 23: the check key on every replica ------------------------------------------------------------


def test_the_check_key_is_written_until_every_replica_has_it(sandbox, devicedb, bucket):
    late = sandbox.nodes[2]
    devicedb.set_knobs(late, site_delay=1.5)  # applies the new site late: the first write misses it
    operator = trigger_operator(devicedb, sandbox, bucket, check_site="fresh-site")
    check = {"site": "fresh-site", "bucket": "lww", "key": "k", "value": "v1"}
    info, _ = operator._trigger(check)
    for index in range(3):  # at once, on every node, the snapshot's key is there
        with hook(sandbox.nodes[index]) as h:
            assert h.get_key("fresh-site", "lww", "k") == ["v1"], sandbox.nodes[index].address
    devicedb.wait_completed(info.uuid)


def test_a_check_key_that_never_reaches_every_replica_takes_no_snapshot(sandbox, devicedb, bucket, monkeypatch):
    from tenacity import wait_none

    monkeypatch.setattr(ops, "CHECK_KEY_WAIT", wait_none())
    devicedb.stop(sandbox.nodes[2])
    operator = trigger_operator(devicedb, sandbox, bucket, check_site="s")
    with pytest.raises(AirflowException, match=r"reached only 2 of 3 replicas \(Quorum true\) after 8 writes"):
        operator._trigger({"site": "s", "bucket": "lww", "key": "k", "value": "v"})
    assert all(devicedb.snapshot_dirs(n) == [] for n in sandbox.nodes[:2])
