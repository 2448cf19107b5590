"""EBS volumes and snapshots, on the amazon provider's :class:`EC2Hook`.

Every snapshot this project creates carries the tags built by :func:`backup_tags`:

* ``backup:created-by = airflow-backup-provider`` (retention never touches a snapshot without it),
* ``backup:name`` (the clusters-file entry), ``backup:volume`` (the source volume),
* ``backup:logical-date`` (the run's logical date, UTC ISO 8601: what idempotency and retention
  key on, since a backfill creates last month's snapshot today),
* ``backup:run-id``, plus the user's tags from the clusters file (callers may add more, e.g. the
  Riak DAG adds cluster and node tags).

Throttling (``RequestLimitExceeded``) is retried with exponential backoff (tenacity), on top of
botocore's own retries; every other error goes to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.providers.amazon.aws.hooks.ec2 import EC2Hook
from botocore.exceptions import ClientError
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from airflow_backup_provider.connections import RequiresAwsConnection
from airflow_backup_provider.stores.ebs import (  # noqa: F401  (re-exported: the hook's public API)
    CREATED_BY,
    RESERVED_TAG_PREFIX,
    TAG_CREATED_BY,
    TAG_LOGICAL_DATE,
    TAG_NAME,
    TAG_RUN_ID,
    TAG_TAKEN_AT,
    TAG_VOLUME,
    Snapshot,
    Volume,
    backup_tags,
    format_logical_date,
    parse_logical_date,
    tag_dict,
    tag_filters,
    tag_list,
)

log = logging.getLogger(__name__)

THROTTLING_CODES = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException"})
VOLUME_NOT_FOUND = "InvalidVolume.NotFound"
SNAPSHOT_NOT_FOUND = "InvalidSnapshot.NotFound"
INSTANCE_NOT_FOUND = "InvalidInstanceID.NotFound"


class VolumeNotFound(LookupError):
    """The volume (or instance) to snapshot does not exist (any more)."""


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


class EbsHook(RequiresAwsConnection, EC2Hook):
    """
    EBS volumes and snapshots through boto3's EC2 client (the connection gives credentials,
    region and, for moto/MinIO-style endpoints, ``endpoint_url``).

    :param throttle_attempts: tries of one call while EC2 answers ``RequestLimitExceeded``.
    :param throttle_max_wait: upper bound of the exponential backoff between those tries, seconds.
    """

    hook_name = "EBS snapshots (backup)"

    def __init__(self, *args: Any, throttle_attempts: int = 6, throttle_max_wait: float = 30.0, **kwargs: Any):
        kwargs["api_type"] = "client_type"
        super().__init__(*args, **kwargs)
        self.throttle_attempts = throttle_attempts
        self.throttle_max_wait = throttle_max_wait

    # --- the one place every EC2 call goes through ------------------------------------------
    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(self.conn, operation)
        retrying = Retrying(
            retry=retry_if_exception(is_throttling),
            wait=wait_exponential(multiplier=0.5, max=self.throttle_max_wait),
            stop=stop_after_attempt(self.throttle_attempts),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        return retrying(method, **params)

    def _paginate(self, operation: str, result_key: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._call(operation, **params, **({"NextToken": token} if token else {}))
            items.extend(page.get(result_key) or [])
            token = page.get("NextToken")
            if not token:
                return items

    # --- volumes ----------------------------------------------------------------------------
    def find_volumes(
        self,
        *,
        volume_ids: Iterable[str] = (),
        tag_filter: Mapping[str, str | Iterable[str]] | None = None,
        instance_id: str | None = None,
    ) -> list[Volume]:
        """
        Volumes matching every given criterion (ids, tags, attached to an instance), sorted by id.

        Ids that do not exist are simply absent from the result (the caller reports them); this
        uses the ``volume-id`` filter rather than ``VolumeIds``, which fails the whole call.
        """
        filters: list[dict[str, Any]] = []
        ids = list(volume_ids)
        if ids:
            filters.append({"Name": "volume-id", "Values": ids})
        if tag_filter:
            filters.extend(tag_filters(tag_filter))
        if instance_id:
            filters.append({"Name": "attachment.instance-id", "Values": [instance_id]})
        if not filters:
            raise ValueError("find_volumes: give volume_ids, tag_filter or instance_id")
        volumes = [Volume.from_api(v) for v in self._paginate("describe_volumes", "Volumes", Filters=filters)]
        return sorted(volumes, key=lambda v: v.id)

    def describe_volumes_by_id(self, volume_ids: Iterable[str]) -> dict[str, Volume]:
        """`{volume id: Volume}` of those that exist (one DescribeVolumes, by filter)."""
        ids = sorted(set(volume_ids))
        return {v.id: v for v in self.find_volumes(volume_ids=ids)} if ids else {}

    def root_device(self, instance_id: str) -> str | None:
        """The instance's root device name (its volume needs the instance stopped to be swapped)."""
        reservations = self._call("describe_instances", InstanceIds=[instance_id]).get("Reservations") or []
        for reservation in reservations:
            for instance in reservation.get("Instances") or []:
                return instance.get("RootDeviceName")
        raise VolumeNotFound(f"instance {instance_id!r} does not exist")

    def create_volume(self, spec: Mapping[str, Any]) -> Volume:
        """One volume (from a snapshot), tagged at creation: the spec is CreateVolume's parameters."""
        data = self._call("create_volume", **dict(spec))
        volume = Volume.from_api(data)
        log.info("created volume %s from %s in %s (%s)", volume.id, spec.get("SnapshotId"), volume.zone, volume.state)
        return volume

    def attach_volume(self, volume_id: str, instance_id: str, device: str) -> None:
        self._call("attach_volume", VolumeId=volume_id, InstanceId=instance_id, Device=device)
        log.info("attaching volume %s to %s at %s", volume_id, instance_id, device)

    def detach_volume(self, volume_id: str, instance_id: str, device: str | None = None) -> None:
        params = {"VolumeId": volume_id, "InstanceId": instance_id, **({"Device": device} if device else {})}
        self._call("detach_volume", **params)
        log.info("detaching volume %s from %s", volume_id, instance_id)

    def wait_for_volumes(self, volume_ids: Iterable[str], state: str, *, delay: int = 2, attempts: int = 60) -> None:
        """boto3's `volume_available` / `volume_in_use` waiter, for the short waits inside a swap or
        a rollback (a detach takes seconds); the long ones are sensors."""
        ids = sorted(set(volume_ids))
        if ids:
            waiter = {"available": "volume_available", "in-use": "volume_in_use"}[state]
            self.conn.get_waiter(waiter).wait(VolumeIds=ids, WaiterConfig={"Delay": delay, "MaxAttempts": attempts})

    def tag_resource(self, resource_id: str, tags: Mapping[str, str]) -> None:
        self._call("create_tags", Resources=[resource_id], Tags=tag_list(tags))

    def untag_resource(self, resource_id: str, keys: Iterable[str]) -> None:
        self._call("delete_tags", Resources=[resource_id], Tags=[{"Key": k} for k in keys])

    def delete_volume(self, volume_id: str) -> bool:
        """Delete one volume; False when it was already gone."""
        try:
            self._call("delete_volume", VolumeId=volume_id)
        except ClientError as exc:
            if error_code(exc) == VOLUME_NOT_FOUND:
                return False
            raise
        log.info("deleted volume %s", volume_id)
        return True

    # --- snapshots --------------------------------------------------------------------------
    def create_snapshot(self, volume_id: str, tags: Mapping[str, str], description: str) -> Snapshot:
        """One snapshot of one volume, tagged at creation (no untagged moment)."""
        try:
            data = self._call(
                "create_snapshot",
                VolumeId=volume_id,
                Description=description,
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
            )
        except ClientError as exc:
            if error_code(exc) == VOLUME_NOT_FOUND:
                raise VolumeNotFound(f"volume {volume_id!r} does not exist") from exc
            raise
        snapshot = Snapshot.from_api(data)
        if not snapshot.tags:  # some endpoints do not echo TagSpecifications
            snapshot = Snapshot(**{**snapshot.__dict__, "tags": dict(tags)})
        log.info("created snapshot %s of volume %s (%s)", snapshot.id, volume_id, snapshot.state)
        return snapshot

    def create_snapshots_for_instance(
        self,
        instance_id: str,
        tags: Mapping[str, str],
        description: str,
        *,
        exclude_boot_volume: bool = False,
    ) -> list[Snapshot]:
        """
        Crash-consistent snapshots of every volume attached to the instance (``CreateSnapshots``).

        ``CreateSnapshots`` puts the same tags on every snapshot; the per-volume ``backup:volume``
        tag is then added with one ``CreateTags`` per snapshot.
        """
        try:
            data = self._call(
                "create_snapshots",
                InstanceSpecification={"InstanceId": instance_id, "ExcludeBootVolume": exclude_boot_volume},
                Description=description,
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
            )
        except ClientError as exc:
            if error_code(exc) in (INSTANCE_NOT_FOUND, "InvalidInstanceID.Malformed"):
                raise VolumeNotFound(f"instance {instance_id!r} does not exist") from exc
            raise
        snapshots = []
        for info in data.get("Snapshots") or []:
            volume_id = info.get("VolumeId", "")
            snapshot_tags = {**tag_dict(info), **dict(tags), TAG_VOLUME: volume_id}
            self._call("create_tags", Resources=[info["SnapshotId"]], Tags=[{"Key": TAG_VOLUME, "Value": volume_id}])
            snapshots.append(
                Snapshot(
                    id=info["SnapshotId"],
                    volume_id=volume_id,
                    state=info.get("State", ""),
                    start_time=info.get("StartTime"),
                    description=description,
                    progress=info.get("Progress", ""),
                    size_gib=info.get("VolumeSize"),
                    tags=snapshot_tags,
                )
            )
        log.info("created %d snapshots of instance %s: %s", len(snapshots), instance_id, [s.id for s in snapshots])
        return sorted(snapshots, key=lambda s: s.volume_id)

    def copy_snapshot(
        self, source: Snapshot, *, source_region: str, tags: Mapping[str, str], description: str, kms_key_id: str | None = None
    ) -> Snapshot:
        """Copy `source` from `source_region` into this hook's region, tagged at creation. With
        `kms_key_id` (a key of this region) the copy is encrypted with it."""
        params: dict[str, Any] = {
            "SourceSnapshotId": source.id,
            "SourceRegion": source_region,
            "Description": description[:255],
            "TagSpecifications": [{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
        }
        if kms_key_id:
            params.update(Encrypted=True, KmsKeyId=kms_key_id)
        data = self._call("copy_snapshot", **params)
        log.info("copying snapshot %s from %s into %s as %s", source.id, source_region, self.conn_region_name, data["SnapshotId"])
        return Snapshot(
            id=data["SnapshotId"], volume_id="", state="pending", start_time=None, description=description[:255],
            size_gib=source.size_gib, tags=dict(tags),
        )

    def find_snapshots(
        self,
        tag_filter: Mapping[str, str | Iterable[str]] | None = None,
        *,
        volume_ids: Iterable[str] = (),
        snapshot_ids: Iterable[str] = (),
        owner: str = "self",
    ) -> list[Snapshot]:
        """Snapshots owned by `owner` matching every criterion, paginated, oldest first."""
        filters = tag_filters(tag_filter or {})
        volumes = list(volume_ids)
        if volumes:
            filters.append({"Name": "volume-id", "Values": volumes})
        ids = list(snapshot_ids)
        if ids:
            filters.append({"Name": "snapshot-id", "Values": ids})
        params: dict[str, Any] = {"OwnerIds": [owner], "MaxResults": 1000}
        if filters:
            params["Filters"] = filters
        found = [Snapshot.from_api(s) for s in self._paginate("describe_snapshots", "Snapshots", **params)]
        return sorted(found, key=lambda s: (s.start_time or datetime.min.replace(tzinfo=UTC), s.id))

    def describe_snapshot_states(self, snapshot_ids: Iterable[str]) -> dict[str, str]:
        """`{snapshot id: state}`; an id that no longer exists maps to ``"missing"``."""
        ids = list(snapshot_ids)
        if not ids:
            return {}
        found = {s.id: s.state for s in self.find_snapshots(snapshot_ids=ids)}
        return {i: found.get(i, "missing") for i in ids}

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Delete one snapshot; False when it was already gone."""
        try:
            self._call("delete_snapshot", SnapshotId=snapshot_id)
        except ClientError as exc:
            if error_code(exc) == SNAPSHOT_NOT_FOUND:
                log.warning("snapshot %s was already deleted", snapshot_id)
                return False
            raise
        log.info("deleted snapshot %s", snapshot_id)
        return True


__all__ = [
    "CREATED_BY",
    "TAG_CREATED_BY",
    "TAG_LOGICAL_DATE",
    "TAG_NAME",
    "TAG_RUN_ID",
    "TAG_TAKEN_AT",
    "TAG_VOLUME",
    "EbsHook",
    "Snapshot",
    "Volume",
    "VolumeNotFound",
    "backup_tags",
    "format_logical_date",
    "is_throttling",
    "parse_logical_date",
    "tag_filters",
]
