"""Riak-specific steps of the rolling backup: wait for riak_kv, snapshot a node, apply retention.

Stopping and starting are the generic :mod:`airflow_backup_provider.operators.service` operators
with their Riak presets; the health gates are :mod:`airflow_backup_provider.sensors.riak`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow.sdk.exceptions import AirflowException

from airflow_backup_provider import dates
from airflow_backup_provider.operators.base import BackupOperator
from airflow_backup_provider.operators.ebs import EbsCopySnapshotsOperator, EbsSnapshotRetention
from airflow_backup_provider.operators.retention import RetentionGroup, RetentionRun
from airflow_backup_provider.retention import planned_backup
from airflow_backup_provider.stores import riak
from airflow_backup_provider.stores.ebs import has_good_snapshot_of


class RiakWaitForServiceOperator(BackupOperator):
    """
    Run ``riak-admin wait-for-service riak_kv <node>`` on the node, bounded by ``bound``.

    The command itself loops until the service is up; coreutils ``timeout`` on the node ends it
    after ``bound`` seconds, and the task fails saying so.
    """

    records_outcome = False  # it waits: the report has nothing of it to show

    template_fields: Sequence[str] = ("host", "node")
    ui_color = "#d6ecff"

    def __init__(
        self,
        *,
        host: str,
        node: str,
        service: str = "riak_kv",
        bound: float = 600,
        port: int = 22,
        ssh_conn_id: str = "backup_ssh",
        sudo_user: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.node = node
        self.service = riak.check_service(service)
        self.bound = int(bound)
        self.port = port
        self.ssh_conn_id = ssh_conn_id
        self.sudo_user = sudo_user

    def execute(self, context: Any) -> dict[str, Any]:
        argv = riak.wait_for_service_argv(self.service, self.node, bound_seconds=self.bound)
        with self.remote_hook(self.host, self.port) as hook:
            # the command prints a line every few seconds; the SSH timeout only catches silence
            result = hook.run(argv, timeout=self.bound + 60)
        wait = riak.parse_wait_for_service(result.stdout, self.service)
        if wait.up:
            self.log.info("%s is up on %s (after %d 'not up' line(s))", self.service, self.node, wait.not_up_lines)
            return {"node": self.node, "service": self.service, "not_up_lines": wait.not_up_lines}
        if result.exit_code == riak.TIMEOUT_EXIT_CODE:
            raise AirflowException(f"{self.service} on {self.node}: not up within {self.bound}s")
        detail = (result.stdout.strip().splitlines() or [result.stderr.strip()])[-1:]
        raise AirflowException(
            f"{self.service} on {self.node}: riak-admin wait-for-service exited {result.exit_code}: {' '.join(detail)}"
        )


# ---- EBS snapshots of a node, and the cluster's retention -----------------------------------------

KIND = "riak"
TAG_KIND = "backup:kind"
TAG_CLUSTER = "backup:cluster"
TAG_NODE = "backup:node"
TAG_INSTANCE = "backup:instance"


def series_name(cluster: str) -> str:
    """The `backup:name` of a Riak cluster's snapshots: the DAG id, unique across kinds, so an EBS
    policy named like the cluster can never see (or prune) them."""
    return f"{KIND}_{cluster}"


def node_snapshot_tags(
    *, cluster: str, node: str, instance_id: str, logical_date: datetime, run_id: str, taken_at: datetime | None = None
) -> dict[str, str]:
    from airflow_backup_provider.hooks.ebs import backup_tags

    tags = backup_tags(name=series_name(cluster), logical_date=logical_date, run_id=run_id, taken_at=taken_at)
    tags.update({TAG_KIND: KIND, TAG_CLUSTER: cluster, TAG_NODE: node, TAG_INSTANCE: instance_id})
    return tags


def run_snapshot_filter(cluster: str, logical_date: datetime, node: str | None = None) -> dict[str, str]:
    """Tags that find the snapshots one run made (of one node, or of the whole cluster)."""
    from airflow_backup_provider.hooks.ebs import (
        CREATED_BY,
        TAG_CREATED_BY,
        TAG_LOGICAL_DATE,
        TAG_NAME,
        format_logical_date,
    )

    found = {
        TAG_CREATED_BY: CREATED_BY,
        TAG_NAME: series_name(cluster),
        TAG_LOGICAL_DATE: format_logical_date(logical_date),
    }
    if node:
        found[TAG_NODE] = node
    return found


def _produced(snapshots: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"id": s.id, "volume": s.volume_id, "state": s.state, "size": None} for s in snapshots]


def _dates_of(logical_date: datetime, snapshots: Sequence[Any]) -> tuple[str, list[str]]:
    """'logical date X, taken at Y' for the report, and a warning per snapshot taken late."""
    taken = sorted({dates.format_instant(s.taken_at) for s in snapshots if s.taken_at})
    text = f"logical date {dates.format_instant(logical_date)}, taken at {', '.join(taken) or '-'}"
    warnings = [w for s in snapshots if (w := dates.late_warning(logical_date, s.taken_at, f"snapshot {s.id} of {s.volume_id}"))]
    return text, warnings


class RiakNodeSnapshotOperator(BackupOperator):
    """
    Snapshot every volume of the node's EC2 instance (one ``CreateSnapshots`` call: the set is
    crash-consistent across volumes) and return as soon as the call does: an EBS snapshot is a
    point in time from then on, so the node can be started while the snapshots complete.

    Idempotent per logical date: snapshots tagged with this cluster, node and logical date are
    found first (a retry, a cleared task, a re-run), and only volumes without one get one.
    """

    template_fields: Sequence[str] = ("instance_id", "dry_run")
    ui_color = "#fff3c4"

    def __init__(
        self,
        *,
        cluster: str,
        node: str,
        instance_id: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        dry_run: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster
        self.node = node
        self.instance_id = instance_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.dry_run = dry_run

    def hook(self):
        from airflow_backup_provider.hooks.ebs import EbsHook

        return self.aws_hook(EbsHook)

    def execute(self, context: Any) -> dict[str, Any]:
        logical_date = self.run_date(context)
        hook = self.hook()
        volumes = hook.find_volumes(instance_id=self.instance_id)
        if not volumes:
            raise AirflowException(f"{self.node}: instance {self.instance_id} has no attached volume to snapshot")
        existing = [
            s
            for s in hook.find_snapshots(run_snapshot_filter(self.cluster, logical_date, self.node))
            if s.state != "error"
        ]
        covered = {s.volume_id for s in existing}
        missing = [v for v in volumes if v.id not in covered]
        if not missing:
            self.log.info(
                "%s: every volume already has its snapshot for %s: %s",
                self.node, logical_date, ", ".join(f"{s.id} ({s.volume_id}, {s.state})" for s in existing),
            )
            when, warnings = _dates_of(logical_date, existing)
            self.record_outcome(context, status="skipped", node=self.node, produced=_produced(existing),
                           detail=f"snapshots for {logical_date.isoformat()} already exist ({when})", warnings=warnings)
            return {"node": self.node, "snapshots": [s.to_dict() for s in existing], "created": []}
        if self.is_dry_run(context):
            self.log.info("Dry run: would snapshot %s of %s", [v.id for v in missing], self.instance_id)
            self.record_outcome(context, status="dry_run", node=self.node,
                           detail=f"would snapshot {', '.join(v.id for v in missing)} of {self.instance_id}")
            return {"node": self.node, "snapshots": [], "created": [], "dry_run": True}
        tags = node_snapshot_tags(
            cluster=self.cluster, node=self.node, instance_id=self.instance_id,
            logical_date=logical_date, run_id=context["run_id"], taken_at=dates.now_utc(),
        )
        description = f"riak {self.cluster} {self.node} {logical_date.isoformat()}"
        if covered:  # an earlier try got some volumes: snapshot only the others, one by one
            created = [hook.create_snapshot(v.id, {**tags, "backup:volume": v.id}, description) for v in missing]
        else:
            created = hook.create_snapshots_for_instance(self.instance_id, tags, description)
        self.log.info(
            "%s: CreateSnapshots returned %s; the node can start now",
            self.node, ", ".join(f"{s.id} ({s.volume_id})" for s in created),
        )
        when, warnings = _dates_of(logical_date, [*existing, *created])
        for warning in warnings:
            self.log.warning("%s", warning)
        self.record_outcome(context, status="done", node=self.node, produced=_produced([*existing, *created]),
                       detail=f"instance {self.instance_id}; {when}", warnings=warnings)
        return {"node": self.node, "snapshots": [s.to_dict() for s in [*existing, *created]],
                "created": [s.id for s in created]}


class RiakCopySnapshotsOperator(EbsCopySnapshotsOperator):
    """Copy this run's snapshots of every node of the cluster (found by their tags) into this
    operator's region, once each (:class:`EbsCopySnapshotsOperator`)."""

    def __init__(self, *, cluster: str, **kwargs: Any) -> None:
        kwargs.setdefault("snapshot_ids", None)
        super().__init__(target=cluster, name=series_name(cluster), **kwargs)
        self.cluster = cluster

    def source_ids(self, context: Any, source_hook: Any) -> list[str]:
        found = source_hook.find_snapshots(run_snapshot_filter(self.cluster, self.run_date(context)))
        return sorted(s.id for s in found)


class RiakRetentionOperator(EbsSnapshotRetention):
    """
    Apply the cluster's retention policy to its snapshots, per source volume, as of the run's
    logical date (:class:`~airflow_backup_provider.operators.retention.RetentionOperator`: never a
    pending snapshot, never one newer than the logical date, never the newest completed one, never
    one this project did not tag, each checked again on a fresh describe before its delete).
    """

    template_fields: Sequence[str] = ("dry_run",)

    def __init__(
        self,
        *,
        cluster: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        copies: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        # the copies in this region (copy_to) instead of the snapshots themselves
        self.copies = copies

    @cached_property
    def hook(self):
        from airflow_backup_provider.hooks.ebs import EbsHook

        return self.aws_hook(EbsHook)

    def list_groups(self, context: Any, as_of: datetime, dry_run: bool) -> list[RetentionGroup]:
        from airflow_backup_provider.hooks.ebs import (
            CREATED_BY,
            TAG_CREATED_BY,
            TAG_NAME,
            format_logical_date,
        )

        date_tag = format_logical_date(as_of)
        snapshots = [
            s for s in self.hook.find_snapshots({TAG_CREATED_BY: CREATED_BY, TAG_NAME: self.series})
            if bool(s.copied_from) == self.copies
        ]
        by_volume: dict[str, list[Any]] = {}
        for snapshot in snapshots:
            by_volume.setdefault(snapshot.source_volume, []).append(snapshot)
        groups = []
        for volume_id, group in sorted(by_volume.items()):
            items = [s.to_backup_item(self.series) for s in group]
            # A dry run made no snapshot: plan with the one the real run would make, or it prunes less.
            if dry_run and not has_good_snapshot_of(group, date_tag):
                items.append(planned_backup(f"(new snapshot of {volume_id})", as_of))
            groups.append(RetentionGroup(f"volume {volume_id}", items))
        return groups

    @property
    def series(self) -> str:
        return series_name(self.cluster)

    def result(self, context: Any, run: RetentionRun) -> dict[str, Any]:
        deleted = [i for i, gone in run.deleted.items() if gone]
        return {"deleted": deleted, "would_delete": run.would_delete, "volumes": len(run.groups)}
