"""The devicedb HTTP hook and the S3 streaming upload against the sandbox (simulated nodes, moto)."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from airflow_backup_provider.hooks.devicedb import DevicedbError, DevicedbHook, DevicedbUnreachable
from airflow_backup_provider.hooks.object_store import MIB, ChecksumMismatch, ObjectStoreHook
from airflow_backup_provider.operators.devicedb import DevicedbTriggerSnapshotOperator
from airflow_backup_provider.stores import devicedb as ddb
from tests.devicedb_fixtures import node_spec, s3_objects
from tests.sandbox.core import wait_until

pytestmark = pytest.mark.sandbox


def hook(node, **kwargs) -> DevicedbHook:
    return DevicedbHook(node.address, 8080, timeout=5, **kwargs)


def test_trigger_status_and_tar_carry_node_and_status(sandbox, devicedb):
    node = sandbox.nodes[0]
    with hook(node) as h:
        info = h.trigger_snapshot()
        assert info.status == "processing"
        with pytest.raises(DevicedbError) as caught, h.open_snapshot_tar(info.uuid):
            pass
        assert caught.value.http_status == 404 and caught.value.code == 25
        assert f"devicedb node {node.address}:8080" in str(caught.value) and "HTTP 404" in str(caught.value)
    devicedb.wait_completed(info.uuid)
    with hook(sandbox.nodes[2]) as h, h.open_snapshot_tar(info.uuid) as response:
        data = b"".join(response.iter_content(65536))
    # as on a real node: chunked, no Content-Length; flat members, two zero blocks at the end
    assert "Content-Length" not in response.headers and response.headers["Transfer-Encoding"] == "chunked"
    assert ddb.check_snapshot_tar(io.BytesIO(data)).members == ["000001.log", "CURRENT", "LOCK", "LOG", "MANIFEST-000001"]
    assert data.endswith(b"\0" * 1024) and not data[:-1024].endswith(b"\0" * 512)


def test_unknown_snapshot_is_missing_and_its_tar_code_26(sandbox, devicedb):
    with hook(sandbox.nodes[1]) as h:
        assert h.snapshot_status("19a7e40e-adcc-4cc2-87a7-ae599272b050").status == "missing"
        with pytest.raises(DevicedbError, match=r"code 26") as caught, h.open_snapshot_tar("19a7e40e-adcc-4cc2-87a7-ae599272b050"):
            pass
        assert caught.value.code == 26


def test_a_node_without_snapshot_store_answers_the_post_and_500s_the_status(sandbox, devicedb):
    devicedb.set_knobs(sandbox.nodes[0], no_snapshot_store=True)
    with hook(sandbox.nodes[0]) as h:
        info = h.trigger_snapshot()  # 200 processing, even on the node without a store
        assert info.status == "processing"
        with pytest.raises(DevicedbError) as caught:
            h.snapshot_status(info.uuid)
        assert caught.value.http_status == 500 and "No snapshot directory configured" in str(caught.value)
        with pytest.raises(DevicedbError) as caught, h.open_snapshot_tar(info.uuid):
            pass
        assert caught.value.http_status == 500 and caught.value.code == 3
    devicedb.wait_completed_on(info.uuid, sandbox.nodes[1:])
    assert devicedb.snapshot_dirs(sandbox.nodes[0]) == []


def test_a_stopped_node_is_refused_not_timed_out(sandbox, devicedb):
    node = sandbox.nodes[2]
    devicedb.stop(node)
    with hook(node) as h, pytest.raises(DevicedbUnreachable) as caught:
        h.snapshot_status("19a7e40e-adcc-4cc2-87a7-ae599272b050")
    assert caught.value.refused and node.address in str(caught.value)


def test_a_node_that_never_answers_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    try:
        with DevicedbHook("127.0.0.1", port, timeout=0.5) as h, pytest.raises(DevicedbUnreachable) as caught:
            h.trigger_snapshot()
        assert "no answer within 0.5s" in str(caught.value)
        assert not caught.value.refused  # the POST may have arrived: never retried on another node
    finally:
        listener.close()


def test_through_the_ssh_tunnel(sandbox, devicedb):
    node = sandbox.nodes[1]
    devicedb.write("tunnelled", "yes")
    with DevicedbHook(node.address, 8080, http_host=node.address, ssh_tunnel=True, ssh_conn_id="backup_ssh", timeout=5) as h:
        assert h.base_url().startswith("http://127.0.0.1:")
        assert h.get_key("demo", "default", "tunnelled") == ["yes"]
        assert len(h.membership()) == 3


def test_the_trigger_falls_over_only_when_the_first_node_refused(sandbox, devicedb, bucket):
    devicedb.stop(sandbox.nodes[0])
    specs = [node_spec(n.address, n.address, http_port=8080, ssh_port=22) for n in sandbox.nodes]
    operator = DevicedbTriggerSnapshotOperator(
        task_id="t", cluster="c", nodes=specs, bucket=bucket, prefix="devicedb", http_timeout=5, check_site="s"
    )
    # (no check key: with a node down it cannot reach every replica, see test_devicedb_real_behaviour)
    info, node = operator._trigger(None)
    assert node == sandbox.nodes[1].address
    devicedb.wait_completed_on(info.uuid, sandbox.nodes[1:])


def trigger_operator(sandbox, bucket, **kwargs):
    specs = [node_spec(n.address, n.address, http_port=8080, ssh_port=22) for n in sandbox.nodes]
    return DevicedbTriggerSnapshotOperator(
        task_id="trigger_snapshot", cluster="c", nodes=specs, bucket=bucket, prefix="devicedb", http_timeout=5, **kwargs
    )


CONTEXT = {
    "logical_date": datetime(2026, 11, 20, tzinfo=UTC),
    "params": {"dry_run": False},
    "run_id": "r1",
    "ti": SimpleNamespace(dag_id="devicedb_c", xcom_push=lambda **_: None, get_dr_count=lambda **_: 0),
}


def test_the_trigger_reuses_the_uuid_recorded_for_the_logical_date(sandbox, devicedb, bucket):
    operator = trigger_operator(sandbox, bucket)
    first = operator.execute(CONTEXT)
    second = operator.execute(CONTEXT)  # a retry: XCom is cleared, the S3 record is not
    assert second["uuid"] == first["uuid"]
    assert devicedb.snapshot_dirs(sandbox.nodes[0]) == [first["uuid"]]
    assert "devicedb/c/_runs/20261120T000000Z.json" in s3_objects(sandbox, bucket)


@pytest.mark.parametrize("knob", ["failed", "missing"])
def test_a_recorded_snapshot_that_failed_or_stays_missing_is_replaced(sandbox, devicedb, bucket, knob):
    devicedb.set_knobs(sandbox.nodes[2], snapshot=knob)
    operator = trigger_operator(sandbox, bucket, missing_grace=0)
    first = operator.execute(CONTEXT)
    devicedb.wait_completed_on(first["uuid"], sandbox.nodes[:2])
    if knob == "failed":
        wait_until(lambda: devicedb.status(sandbox.nodes[2], first["uuid"]) == "failed", what="failed")
    devicedb.clear_knobs()
    second = operator.execute(CONTEXT)
    assert second["uuid"] != first["uuid"]
    assert sorted(devicedb.snapshot_dirs(sandbox.nodes[0])) == sorted([first["uuid"], second["uuid"]])


def test_multipart_upload_with_sha256_and_read_back(sandbox, bucket):
    s3 = ObjectStoreHook(aws_conn_id="aws_default")
    data = bytes(range(256)) * (11 * MIB // 256)
    chunks = (data[i : i + 300_000] for i in range(0, len(data), 300_000))
    result = s3.upload_parts(bucket, "x/y.tar", chunks, part_size=5 * MIB)
    assert result.parts == 3 and result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    s3.verify_object(bucket, "x/y.tar", size=result.size, sha256=result.sha256)
    with pytest.raises(ChecksumMismatch, match="expected"):
        s3.verify_object(bucket, "x/y.tar", size=result.size, sha256="0" * 64)


def test_a_broken_stream_leaves_no_object_and_no_upload(sandbox, bucket):
    def broken():
        yield b"x" * (5 * MIB)
        raise ConnectionResetError("node went away mid-tar")

    s3 = ObjectStoreHook(aws_conn_id="aws_default")
    with pytest.raises(ConnectionResetError):
        s3.upload_parts(bucket, "partial.tar", broken(), part_size=5 * MIB)
    assert "partial.tar" not in s3_objects(sandbox, bucket)
    uploads = sandbox.boto3_client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads") or []
    assert uploads == []


def run_trigger(trigger):
    import asyncio

    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first_event(), 30))


def test_the_deferrable_trigger_waits_for_completed_and_stops_on_failed(sandbox, devicedb):
    from airflow_backup_provider.triggers.devicedb import DevicedbSnapshotTrigger

    nodes = [node_spec(n.address, n.address, http_port=8080) for n in sandbox.nodes]
    devicedb.set_knobs(sandbox.nodes[1], snapshot="failed")
    with hook(sandbox.nodes[0]) as h:
        uuid = h.trigger_snapshot().uuid
    trigger = DevicedbSnapshotTrigger(
        nodes=nodes, uuid=uuid, triggered_at=datetime.now(UTC).isoformat(), missing_grace=60, poll_interval=0.3, http_timeout=5
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_backup_provider.triggers.devicedb.DevicedbSnapshotTrigger"
    event = run_trigger(DevicedbSnapshotTrigger(**kwargs))
    assert event["status"] == "error" and event["final"] is True
    assert event["state"] == "failed" and sandbox.nodes[1].address in event["message"]
    assert event["statuses"][sandbox.nodes[0].address] == "completed"

    devicedb.clear_knobs()
    devicedb.stop(sandbox.nodes[2])  # down: tolerated as long as the grace lasts, then a failure
    with hook(sandbox.nodes[0]) as h:
        uuid = h.trigger_snapshot().uuid
    event = run_trigger(
        DevicedbSnapshotTrigger(nodes=nodes, uuid=uuid, triggered_at=datetime.now(UTC).isoformat(), missing_grace=2, poll_interval=0.3)
    )
    assert event["status"] == "error" and event["final"] is True
    assert event["state"] == "failed" and f"{sandbox.nodes[2].address} (unreachable" in event["message"]
    devicedb.start(sandbox.nodes[2])
    event = run_trigger(
        DevicedbSnapshotTrigger(nodes=nodes[:2], uuid=uuid, triggered_at=datetime.now(UTC).isoformat(), missing_grace=2, poll_interval=0.3)
    )
    assert event["status"] == "success" and event["state"] == "completed"


def test_the_deferred_wait_through_an_ssh_tunnel_completes(sandbox, devicedb, monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_backup_provider.hooks.devicedb import DevicedbAsyncHook
    from airflow_backup_provider.sensors.devicedb import DevicedbSnapshotSensor
    from airflow_backup_provider.triggers.events import read_event

    opened = []
    open_tunnel = DevicedbAsyncHook._open_tunnel

    async def counted(self):
        tunnel = await open_tunnel(self)
        opened.append(self.host)
        return tunnel

    monkeypatch.setattr(DevicedbAsyncHook, "_open_tunnel", counted)
    specs = [node_spec(n.address, n.address, http_port=8080, http_host=n.address, ssh_port=22) for n in sandbox.nodes]
    sensor = DevicedbSnapshotSensor(
        task_id="wait_for_snapshot", nodes=specs, deferrable=True, ssh_tunnel=True, ssh_conn_id="backup_ssh",
        http_timeout=5, poke_interval=0.3, timeout=30,
    )
    with hook(sandbox.nodes[0]) as h:
        snapshot = {"uuid": h.trigger_snapshot().uuid, "triggered_at": datetime.now(UTC).isoformat()}
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": SimpleNamespace(xcom_pull=lambda task_ids: snapshot)})
    classpath, kwargs = deferred.value.trigger.serialize()
    done = run_trigger(type(deferred.value.trigger)(**kwargs))
    assert read_event(done, what="w")["state"] == "completed", done
    assert sorted(opened) == sorted(n.address for n in sandbox.nodes)  # one tunnel per node, kept across polls
    sensor.execute_complete({}, done)


def test_a_tunnel_that_cannot_open_is_a_clear_error_event(sandbox, devicedb):
    from airflow_backup_provider.triggers.devicedb import DevicedbSnapshotTrigger
    from airflow_backup_provider.triggers.events import TriggerEventError, read_event

    node = sandbox.nodes[1]
    specs = [node_spec(node.address, node.address, http_port=8080, ssh_port=1)]  # no sshd there
    event = run_trigger(
        DevicedbSnapshotTrigger(
            nodes=specs, uuid="19a7e40e-adcc-4cc2-87a7-ae599272b050", triggered_at=datetime.now(UTC).isoformat(),
            missing_grace=60, poll_interval=0.3, http_timeout=5, ssh_tunnel=True, ssh_conn_id="backup_ssh",
        )
    )
    assert (event["status"], event["state"], "final" in event) == ("error", "unreachable", False)
    assert f"cannot open an SSH tunnel through {node.address}:1" in event["message"]
    with pytest.raises(TriggerEventError, match="cannot open an SSH tunnel"):
        read_event(event, what="w")
