"""Wait in the triggerer until EBS snapshots are `completed`, with boto3's `snapshot_completed` waiter."""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

from airflow_backup_provider.hooks.ebs import EbsHook


class EbsSnapshotCompletedTrigger(AwsBaseWaiterTrigger):
    """
    Fires ``{"status": "success", "snapshot_ids": [...]}`` once every snapshot is `completed`, or
    ``{"status": "error", "message": ...}`` when one ends in `error`, is gone, or the attempts run out:
    the provider's one event shape (``triggers/events.py``), read by ``read_event``.

    :param snapshot_ids: the snapshots to wait for.
    :param waiter_delay: seconds between two DescribeSnapshots calls.
    :param waiter_max_attempts: calls before giving up.
    """

    aws_hook_class = EbsHook

    def __init__(
        self,
        *,
        snapshot_ids: Sequence[str],
        waiter_delay: int = 30,
        waiter_max_attempts: int = 720,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        ids = list(snapshot_ids)
        super().__init__(
            serialized_fields={"snapshot_ids": ids},
            waiter_name="snapshot_completed",
            waiter_args={"SnapshotIds": ids},
            failure_message=f"EBS snapshot(s) {', '.join(ids)} did not complete",
            status_message="EBS snapshot states",
            status_queries=["Snapshots[].[SnapshotId,State,Progress]"],
            return_key="snapshot_ids",
            return_value=ids,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )


VOLUME_WAITERS = {"available": "volume_available", "in-use": "volume_in_use"}


class EbsVolumeStateTrigger(AwsBaseWaiterTrigger):
    """
    Fires ``{"status": "success", "volume_ids": [...]}`` once every volume is in ``state``
    (``available``: created, or detached; ``in-use``: attached), with boto3's ``volume_available``
    / ``volume_in_use`` waiter; an error event when one is deleted or the attempts run out.
    """

    aws_hook_class = EbsHook

    def __init__(
        self,
        *,
        volume_ids: Sequence[str],
        state: str,
        waiter_delay: int = 5,
        waiter_max_attempts: int = 720,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        ids = list(volume_ids)
        super().__init__(
            serialized_fields={"volume_ids": ids, "state": state},
            waiter_name=VOLUME_WAITERS[state],
            waiter_args={"VolumeIds": ids},
            failure_message=f"EBS volume(s) {', '.join(ids)} did not become {state}",
            status_message="EBS volume states",
            status_queries=["Volumes[].[VolumeId,State]"],
            return_key="volume_ids",
            return_value=ids,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
