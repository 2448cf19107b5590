"""The deferrable half of the EBS wait: the waiter trigger against moto, and execute_complete."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_backup_provider.hooks.ebs import EbsHook, backup_tags
from airflow_backup_provider.sensors.ebs import EbsSnapshotCompletedSensor
from airflow_backup_provider.triggers.ebs import EbsSnapshotCompletedTrigger
from airflow_backup_provider.triggers.events import TriggerEventError, read_event
from tests.integration.test_ebs_dag import snapshots_pending

pytestmark = pytest.mark.sandbox


def first_event(trigger):
    async def run():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(run(), timeout=60))


def make_snapshot(sandbox, **extra_tags) -> str:
    ec2 = sandbox.boto3_client("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    tags = backup_tags(name=f"t{uuid.uuid4().hex[:6]}", logical_date=datetime(2026, 11, 20, tzinfo=UTC), run_id="r", extra=extra_tags)
    return EbsHook(aws_conn_id="aws_default").create_snapshot(volume, tags, "x").id


def test_trigger_serializes_and_waits_until_completed(sandbox):
    with snapshots_pending(sandbox, describes=3):
        snapshot_id = make_snapshot(sandbox)
        trigger = EbsSnapshotCompletedTrigger(snapshot_ids=[snapshot_id], waiter_delay=1, waiter_max_attempts=10)
        classpath, kwargs = trigger.serialize()
        assert classpath == "airflow_backup_provider.triggers.ebs.EbsSnapshotCompletedTrigger"
        rebuilt = EbsSnapshotCompletedTrigger(**kwargs)
        assert state(sandbox, snapshot_id) == "pending"
        event = first_event(rebuilt)
    assert event == {"status": "success", "snapshot_ids": [snapshot_id]}
    assert read_event(event, what="w", requires=["snapshot_ids"])["snapshot_ids"] == [snapshot_id]
    assert state(sandbox, snapshot_id) == "completed"


def test_trigger_reports_error_state(sandbox):
    with snapshots_pending(sandbox, describes=2):
        snapshot_id = make_snapshot(sandbox, **{"sandbox:final-state": "error"})
        event = first_event(EbsSnapshotCompletedTrigger(snapshot_ids=[snapshot_id], waiter_delay=1, waiter_max_attempts=10))
    assert event["status"] == "error"
    assert snapshot_id in event["message"] or "did not complete" in event["message"]
    with pytest.raises(TriggerEventError, match="did not complete"):
        read_event(event, what="w")


def state(sandbox, snapshot_id: str) -> str:
    return sandbox.boto3_client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]


def test_execute_complete_validates_the_event():
    sensor = EbsSnapshotCompletedSensor(task_id="wait", snapshot_ids=["snap-1", "snap-2"])
    assert sensor.execute_complete({}, {"status": "success", "snapshot_ids": ["snap-2", "snap-1"]}) == {
        "snap-2": "completed",
        "snap-1": "completed",
    }
    with pytest.raises(AirflowException, match="event is None"):
        sensor.execute_complete({}, None)
    with pytest.raises(AirflowException, match="did not complete: boom"):
        sensor.execute_complete({}, {"status": "error", "message": "boom", "snapshot_ids": ["snap-1", "snap-2"]})
    with pytest.raises(AirflowException, match="expected"):
        sensor.execute_complete({}, {"status": "success", "snapshot_ids": ["snap-9"]})
