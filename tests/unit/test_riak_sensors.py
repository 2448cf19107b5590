"""The riak sensors' deferral paths, without a network: what they hand to the triggerer, and how
they judge what comes back."""

from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, TaskDeferred

from airflow_backup_provider.sensors.riak import RiakHealthSensor, RiakSnapshotsCompletedSensor
from airflow_backup_provider.triggers.ebs import EbsSnapshotCompletedTrigger
from airflow_backup_provider.triggers.riak import RiakTransfersTrigger


def test_health_sensor_defers_at_once_with_the_file_settings():
    sensor = RiakHealthSensor(task_id="gate", gate="handoff", host="10.0.0.1", node="riak@10.0.0.1",
                              deferrable=True, poke_interval=30, timeout=600)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, RiakTransfersTrigger)
    assert (trigger.gate, trigger.host, trigger.poll_interval) == ("handoff", "10.0.0.1", 30)
    assert before + 600 <= trigger.deadline <= time.time() + 600
    classpath, kwargs = trigger.serialize()
    assert type(trigger)(**kwargs).serialize() == (classpath, kwargs)


def test_health_sensor_judges_the_trigger_event():
    sensor = RiakHealthSensor(task_id="gate", gate="vnodes", host="h", node="riak@h", timeout=60)
    sensor.execute_complete({}, {"status": "success", "polls": 3})
    with pytest.raises(AirflowSensorTimeout, match="does not have 12 primary"):
        sensor.execute_complete({}, {"status": "timeout", "message": "'riak@h' does not have 12 primary partitions running"})
    with pytest.raises(AirflowException, match="cannot reach"):
        sensor.execute_complete({}, {"status": "error", "message": "cannot reach h"})


def test_health_sensor_defaults():
    sensor = RiakHealthSensor(task_id="gate", gate="vnodes", host="h")
    assert sensor.poke_interval == 30
    with pytest.raises(ValueError, match="gate"):
        RiakHealthSensor(task_id="gate", gate="vnode", host="h")


def test_snapshots_sensor_defers_on_pending_snapshots(monkeypatch):
    sensor = RiakSnapshotsCompletedSensor(task_id="wait", cluster="prod", deferrable=True, poke_interval=5, timeout=100)
    monkeypatch.setattr(sensor, "states", lambda context: {"snap-2": "pending", "snap-1": "completed"})
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, EbsSnapshotCompletedTrigger)
    assert trigger.waiter_args == {"SnapshotIds": ["snap-1", "snap-2"]}
    assert trigger.waiter_delay == 5


def test_snapshots_sensor_fails_on_an_error_snapshot(monkeypatch):
    sensor = RiakSnapshotsCompletedSensor(task_id="wait", cluster="prod", deferrable=False)
    monkeypatch.setattr(sensor, "states", lambda context: {"snap-1": "error", "snap-2": "completed"})
    with pytest.raises(AirflowException, match="snap-1"):
        sensor.poke({})
    monkeypatch.setattr(sensor, "states", lambda context: {"snap-1": "completed"})
    assert sensor.poke({})
    with pytest.raises(AirflowException, match="did not complete"):
        sensor.execute_complete({}, {"status": "error", "message": "did not complete"})


def test_the_report_asks_only_tasks_that_record_an_outcome():
    from airflow_backup_provider.operators.report import records_outcome
    from airflow_backup_provider.operators.riak import RiakNodeSnapshotOperator, RiakWaitForServiceOperator
    from airflow_backup_provider.sensors.exclusive import OneRunAtATimeSensor
    from airflow_backup_provider.sensors.riak import RiakHealthSensor

    assert not records_outcome(OneRunAtATimeSensor(task_id="gate"))
    assert not records_outcome(RiakHealthSensor(task_id="g", gate="vnodes", host="h", node="riak@h"))
    assert not records_outcome(RiakWaitForServiceOperator(task_id="w", node="riak@h", host="h"))
    assert records_outcome(RiakNodeSnapshotOperator(task_id="s", cluster="c", node="riak@h", instance_id="i-0123456789abcdef0"))
    assert records_outcome(None)  # a task the report cannot look up is asked
