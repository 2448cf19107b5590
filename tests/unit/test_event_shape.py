"""The one trigger event shape (triggers/events.py): what it accepts and what it refuses."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_backup_provider.triggers.events import TriggerEventError, event, read_event


def test_a_success_built_by_event_reads_back_with_its_data():
    payload = event("success", "gate open", polls=3).payload
    assert read_event(payload, what="gate", requires=["polls"]) == {"status": "success", "message": "gate open", "polls": 3}


def test_the_amazon_waiter_success_without_a_message_is_read():
    # AwsBaseWaiterTrigger yields {"status": "success", return_key: return_value} and no message.
    assert read_event({"status": "success", "snapshot_ids": ["snap-1"]}, what="ebs", requires=["snapshot_ids"])[
        "snapshot_ids"
    ] == ["snap-1"]


@pytest.mark.parametrize(
    "bad",
    [None, [], {"state": "completed"}, {"status": "done", "message": "x"}, {"status": "error"}, {"status": "timeout"}],
)
def test_a_missing_or_malformed_event_is_one_clear_error(bad):
    with pytest.raises(TriggerEventError, match="^gate: "):
        read_event(bad, what="gate")


def test_error_timeout_and_a_missing_required_key_raise():
    with pytest.raises(TriggerEventError, match="gate: node down"):
        read_event({"status": "error", "message": "node down"}, what="gate")
    with pytest.raises(AirflowSensorTimeout, match="gate: timed out: still closed"):
        read_event({"status": "timeout", "message": "still closed"}, what="gate")
    with pytest.raises(TriggerEventError, match="lacks"):
        read_event({"status": "success", "message": "ok"}, what="gate", requires=["polls"])


def test_event_refuses_an_unknown_status_and_reserved_keys():
    with pytest.raises(ValueError, match="status 'done'"):
        event("done", "x")
    with pytest.raises(ValueError, match="may not use"):
        event("success", "x", status="error")
