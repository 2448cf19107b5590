"""One trigger event shape for every trigger, read the same way by every execute_complete."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, TaskDeferred

from airflow_backup_provider.hooks.remote import RemoteTransportError
from airflow_backup_provider.sensors.devicedb import DevicedbSnapshotSensor
from airflow_backup_provider.sensors.ebs import EbsSnapshotCompletedSensor
from airflow_backup_provider.sensors.riak import RiakHealthSensor, RiakSnapshotsCompletedSensor
from airflow_backup_provider.triggers.devicedb import DevicedbSnapshotTrigger
from airflow_backup_provider.triggers.events import TriggerEventError, TriggerEventFailure, event, read_event
from airflow_backup_provider.triggers.riak import RiakTransfersTrigger
from tests.devicedb_fixtures import node_spec

UUID = "b54a61d9-b64c-45e0-94b7-80c9e36b86fa"
NODES = [node_spec("n1", "10.0.0.1", http_port=8080, ssh_port=22)]


def sensors():
    return [
        RiakHealthSensor(task_id="gate", gate="vnodes", host="h", node="riak@h"),
        RiakSnapshotsCompletedSensor(task_id="wait_snapshots", cluster="prod"),
        EbsSnapshotCompletedSensor(task_id="wait_ebs", snapshot_ids=["snap-1"]),
        DevicedbSnapshotSensor(task_id="wait_for_snapshot", nodes=NODES),
    ]


def first_event(trigger):
    async def run():
        async for fired in trigger.run():
            return fired.payload

    return asyncio.run(asyncio.wait_for(run(), 10))


# ---- every execute_complete refuses what is not an event, with the one error ---------------------


@pytest.mark.parametrize("sensor", sensors(), ids=lambda s: type(s).__name__)
@pytest.mark.parametrize(
    ("sent", "says"),
    [
        (None, r"no trigger event \(event is None\)"),
        ([], r"no trigger event \(event is \[\]\)"),
        ({"state": "completed", "reason": "done", "uuid": UUID}, "malformed trigger event"),  # the old devicedb shape
        ({"status": "done", "message": "x"}, "malformed trigger event"),
        ({"status": "error"}, "malformed trigger event"),
        ({"status": "error", "message": "x", "final": "yes"}, "malformed trigger event"),
    ],
)
def test_every_execute_complete_refuses_a_malformed_event(sensor, sent, says):
    with pytest.raises(TriggerEventError, match=says) as caught:
        sensor.execute_complete({}, sent)
    assert not isinstance(caught.value, AirflowFailException)  # the task's retries apply


@pytest.mark.parametrize("sensor", sensors(), ids=lambda s: type(s).__name__)
def test_every_execute_complete_reads_error_and_timeout_alike(sensor):
    with pytest.raises(TriggerEventError, match="node gone") as caught:
        sensor.execute_complete({}, {"status": "error", "message": "node gone"})
    assert not isinstance(caught.value, AirflowFailException)
    with pytest.raises(TriggerEventFailure, match="broken for good"):
        sensor.execute_complete({}, {"status": "error", "message": "broken for good", "final": True})
    with pytest.raises(AirflowSensorTimeout, match="timed out: still waiting"):
        sensor.execute_complete({}, {"status": "timeout", "message": "still waiting"})


def test_a_final_error_is_not_retried_and_event_refuses_bad_shapes():
    assert issubclass(TriggerEventFailure, AirflowFailException)
    assert event("error", "x", final=True).payload == {"status": "error", "message": "x", "final": True}
    with pytest.raises(ValueError, match="only an error"):
        event("success", "x", final=True)
    with pytest.raises(ValueError, match="keys"):
        event("success", "x", message="y")
    assert read_event({"status": "success", "snapshot_ids": []}, what="w", requires=["snapshot_ids"])  # amazon's
    with pytest.raises(TriggerEventError, match=r"lacks \['uuid'\]"):
        read_event({"status": "success", "message": ""}, what="w", requires=["uuid"])


# ---- the riak trigger's events (poll_once stubbed: no network) ----------------------------------


def riak_trigger(monkeypatch, answers, **kwargs):
    trigger = RiakTransfersTrigger(host="h", gate="vnodes", poll_interval=0, **kwargs)
    replies = iter(answers)

    async def poll_once():
        reply = next(replies)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    monkeypatch.setattr(trigger, "poll_once", poll_once)
    return trigger


def test_the_riak_trigger_events_pass_read_event(monkeypatch):
    opened = first_event(riak_trigger(monkeypatch, [["1 partition down"], []], deadline=time.time() + 60))
    assert read_event(opened, what="gate")["polls"] == 2 and opened["status"] == "success"
    closed = first_event(riak_trigger(monkeypatch, [["'riak@h' does not have 12 primary partitions running"]], deadline=0))
    with pytest.raises(AirflowSensorTimeout, match="does not have 12 primary"):
        read_event(closed, what="gate")
    down = RemoteTransportError("refused")
    unreachable = first_event(
        riak_trigger(monkeypatch, [down, down], deadline=time.time() + 60, max_transport_failures=2)
    )
    with pytest.raises(TriggerEventError, match="cannot reach h: refused"):
        read_event(unreachable, what="gate")


# ---- devicedb: deferral with ssh_tunnel, and the trigger's events without a network -------------


def test_the_devicedb_sensor_defers_with_ssh_tunnel_too():
    sensor = DevicedbSnapshotSensor(
        task_id="wait_for_snapshot", nodes=NODES, deferrable=True, ssh_tunnel=True, ssh_conn_id="backup_ssh",
        timeout=600, poke_interval=5,
    )
    ti = SimpleNamespace(xcom_pull=lambda task_ids: {"uuid": UUID, "triggered_at": "2026-11-20T00:00:00+00:00"})
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": ti})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DevicedbSnapshotTrigger)
    assert (trigger.ssh_tunnel, trigger.ssh_conn_id, trigger.nodes) == (True, "backup_ssh", NODES)
    assert before + 600 <= trigger.deadline <= time.time() + 600
    assert deferred.value.timeout.total_seconds() > 600  # the trigger's deadline fires first
    classpath, kwargs = trigger.serialize()
    assert type(trigger)(**kwargs).serialize() == (classpath, kwargs)


def devicedb_trigger(monkeypatch, answers, **kwargs):
    """A trigger whose nodes answer `answers` in turn (a status, or an exception to raise)."""
    from airflow_backup_provider.hooks.devicedb import DevicedbAsyncHook
    from airflow_backup_provider.stores import devicedb as ddb

    replies = iter(answers)

    async def snapshot_status(self, uuid):
        reply = next(replies)
        if isinstance(reply, BaseException):
            raise reply
        return ddb.SnapshotInfo(uuid, reply)

    monkeypatch.setattr(DevicedbAsyncHook, "snapshot_status", snapshot_status)
    kwargs.setdefault("triggered_at", "2026-11-20T00:00:00+00:00")
    return DevicedbSnapshotTrigger(nodes=NODES, uuid=UUID, missing_grace=1e9, poll_interval=0, **kwargs)


def test_the_devicedb_trigger_events_pass_read_event(monkeypatch):
    sensor = DevicedbSnapshotSensor(task_id="wait_for_snapshot", nodes=NODES)
    done = first_event(devicedb_trigger(monkeypatch, ["processing", "completed"]))
    assert read_event(done, what="w", requires=["uuid", "state", "statuses"])["statuses"] == {"n1": "completed"}
    sensor.execute_complete({}, done)

    failed = first_event(devicedb_trigger(monkeypatch, ["failed"]))
    assert (failed["state"], failed["final"]) == ("failed", True)
    with pytest.raises(AirflowFailException, match=f"cluster snapshot {UUID}: snapshot failed on n1"):
        sensor.execute_complete({}, failed)  # no retry, as when the poke sees it

    late = first_event(devicedb_trigger(monkeypatch, ["processing"], deadline=0))
    with pytest.raises(AirflowSensorTimeout, match="still processing on n1"):
        sensor.execute_complete({}, late)

    no_tunnel = first_event(devicedb_trigger(monkeypatch, [RemoteTransportError("cannot open an SSH tunnel")]))
    assert (no_tunnel["status"], no_tunnel["state"], "final" in no_tunnel) == ("error", "unreachable", False)
    with pytest.raises(TriggerEventError, match="cannot open an SSH tunnel") as caught:
        sensor.execute_complete({}, no_tunnel)
    assert not isinstance(caught.value, AirflowFailException)  # retried, as a poke that cannot tunnel
