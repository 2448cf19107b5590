"""Wait until this run's EBS snapshots are `completed`; fail at once on `error`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_backup_provider.hooks.ebs import EbsHook
from airflow_backup_provider.triggers.ebs import (
    VOLUME_WAITERS,
    EbsSnapshotCompletedTrigger,
    EbsVolumeStateTrigger,
)
from airflow_backup_provider.triggers.events import read_event


class EbsSnapshotCompletedSensor(AwsBaseSensor[EbsHook]):
    """
    Wait for EBS snapshots to reach `completed`.

    Fails (no retry) when one is in `error` or has disappeared. Returns ``{snapshot id: state}``.
    With ``deferrable=True`` it looks once, and if something is still pending hands the wait to
    the triggerer (:class:`EbsSnapshotCompletedTrigger`, boto3's ``snapshot_completed`` waiter);
    otherwise it pokes, best in ``mode="reschedule"`` so no worker slot is held.

    :param snapshot_ids: the snapshots to wait for; an empty list succeeds at once (nothing was
        created, e.g. a dry run or a skipped volume).
    """

    aws_hook_class = EbsHook
    template_fields: Sequence[str] = aws_template_fields("snapshot_ids")
    ui_color = "#f9c915"

    def __init__(self, *, snapshot_ids: Any, deferrable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot_ids = snapshot_ids
        self.deferrable = deferrable

    def _ids(self) -> list[str]:
        ids = self.snapshot_ids or []
        if isinstance(ids, str):
            ids = [ids]
        return list(ids)

    def execute(self, context: Any) -> Any:
        if not self._ids():
            self.log.info("no snapshot to wait for")
            return {}
        if not self.deferrable:
            return super().execute(context=context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
        interval = max(1, int(self.poke_interval))
        self.defer(
            trigger=EbsSnapshotCompletedTrigger(
                snapshot_ids=self._ids(),
                waiter_delay=interval,
                waiter_max_attempts=max(1, int(timeout // interval)),
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout),
        )

    def poke(self, context: Any) -> PokeReturnValue:
        states = self.hook.describe_snapshot_states(self._ids())
        self.log.info("snapshot states: %s", ", ".join(f"{k}={v}" for k, v in states.items()))
        failed = {k: v for k, v in states.items() if v in ("error", "missing")}
        if failed:
            raise AirflowFailException(
                "EBS snapshot(s) failed: " + ", ".join(f"{k} is {v}" for k, v in failed.items())
            )
        return PokeReturnValue(is_done=all(v == "completed" for v in states.values()), xcom_value=states)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, str]:
        done = read_event(event, what="EBS snapshots did not complete", requires=("snapshot_ids",))
        ids = done["snapshot_ids"]
        if sorted(ids or []) != sorted(self._ids()):
            raise AirflowException(f"trigger event names snapshots {ids!r}, expected {self._ids()!r}")
        self.log.info("snapshots completed: %s", ", ".join(ids))
        return dict.fromkeys(ids, "completed")


class EbsVolumeStateSensor(AwsBaseSensor[EbsHook]):
    """
    Wait for EBS volumes to be ``available`` (created from a snapshot, or detached) or ``in-use``
    (attached). Fails (no retry) when one is gone or in ``error``. Deferrable on boto3's
    ``volume_available`` / ``volume_in_use`` waiters (:class:`EbsVolumeStateTrigger`).

    :param volume_ids: the volumes (templated; an XCom); empty succeeds at once (nothing made).
    :param state: ``available`` or ``in-use``.
    """

    aws_hook_class = EbsHook
    template_fields: Sequence[str] = aws_template_fields("volume_ids")
    ui_color = "#f9c915"

    def __init__(self, *, volume_ids: Any, state: str, deferrable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if state not in VOLUME_WAITERS:
            raise ValueError(f"{self.task_id}: state: {state!r} must be one of {sorted(VOLUME_WAITERS)}")
        self.volume_ids = volume_ids
        self.state = state
        self.deferrable = deferrable

    def _ids(self) -> list[str]:
        ids = self.volume_ids or []
        if isinstance(ids, dict):  # {original: new} from the create task
            ids = list(ids.values())
        return [ids] if isinstance(ids, str) else list(ids)

    def execute(self, context: Any) -> Any:
        if not self._ids():
            self.log.info("no volume to wait for")
            return {}
        if not self.deferrable:
            return super().execute(context=context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
        interval = max(1, int(self.poke_interval))
        self.defer(
            trigger=EbsVolumeStateTrigger(
                volume_ids=self._ids(),
                state=self.state,
                waiter_delay=interval,
                waiter_max_attempts=max(1, int(timeout // interval)),
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout),
        )

    def poke(self, context: Any) -> PokeReturnValue:
        found = self.hook.describe_volumes_by_id(self._ids())
        states = {i: found[i].state if i in found else "missing" for i in self._ids()}
        self.log.info("volume states: %s", ", ".join(f"{k}={v}" for k, v in states.items()))
        failed = {k: v for k, v in states.items() if v in ("error", "missing", "deleting", "deleted")}
        if failed:
            raise AirflowFailException("EBS volume(s) failed: " + ", ".join(f"{k} is {v}" for k, v in failed.items()))
        return PokeReturnValue(is_done=all(v == self.state for v in states.values()), xcom_value=states)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, str]:
        done = read_event(event, what=f"EBS volumes did not become {self.state}", requires=("volume_ids",))
        ids = done["volume_ids"]
        if sorted(ids or []) != sorted(self._ids()):
            raise AirflowException(f"trigger event names volumes {ids!r}, expected {self._ids()!r}")
        return dict.fromkeys(ids, self.state)
