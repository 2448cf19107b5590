"""Riak-specific steps of the rolling backup: wait for riak_kv, snapshot a node, apply retention.

Stopping and starting are the generic :mod:`airflow_backup_provider.operators.service` operators
with their Riak presets; the health gates are :mod:`airflow_backup_provider.sensors.riak`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_backup_provider import dates
from airflow_backup_provider.operators.base import BackupOperator
from airflow_backup_provider.operators.ebs import EbsCopySnapshotsOperator, EbsSnapshotRetention
from airflow_backup_provider.operators.ebs_restore import EbsRestorePlanOperator, param_list
from airflow_backup_provider.operators.retention import RetentionGroup, RetentionRun
from airflow_backup_provider.operators.service import node_selected
from airflow_backup_provider.retention import planned_backup
from airflow_backup_provider.stores import riak
from airflow_backup_provider.stores.ebs import (
    TAG_LOGICAL_DATE,
    RestoreRefused,
    VolumeRestore,
    choose_restore_snapshots,
    device_of,
    has_good_snapshot_of,
    newest_logical_date,
    restore_tags,
    restore_volume_spec,
)


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


# ---- restore: a node's volumes from its snapshot set of one date -----------------------------------


class RiakRestorePlanOperator(EbsRestorePlanOperator):
    """
    Check the params and plan a Riak restore: per chosen node, every data volume (every attached
    volume but the root) from that node's snapshot set of ``logical_date`` (empty: the node's
    newest date), each new volume in place of the one now at the snapshot's device. The plan's
    parts are the nodes' Erlang names. Creates nothing.

    :param nodes: ``[{"node", "host", "port", "instance_id", "mounts": {device: path}}]``.
    """

    modes: Sequence[str] = ("node", "cluster")
    replacing_modes: Sequence[str] = ("node", "cluster")

    def __init__(self, *, nodes: Sequence[Mapping[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nodes = [dict(n) for n in nodes]

    @property
    def series(self) -> str:
        return series_name(self.entry_name)

    def check_params(self, context: Any) -> dict[str, Any]:
        asked = super().check_params(context)
        asked["nodes"] = param_list(context["params"].get("nodes"), "nodes")
        known = {n["node"] for n in self.nodes} | {n["host"] for n in self.nodes}
        unknown = [n for n in asked["nodes"] if n not in known]
        if unknown:
            raise AirflowFailException(f"param 'nodes': {unknown} are not nodes of cluster {self.entry_name}")
        return asked

    def plan_parts(self, context: Any, hook: Any, asked: dict[str, Any], *, same_region: bool) -> dict[str, list[VolumeRestore]]:
        chosen_nodes = [n for n in self.nodes if node_selected(asked["nodes"], n["node"], n["host"])]
        return {n["node"]: self.plan_node(context, hook, asked, n, same_region) for n in chosen_nodes}

    def plan_node(self, context: Any, hook: Any, asked: dict[str, Any], node: dict, same_region: bool) -> list[VolumeRestore]:
        name, instance = node["node"], node["instance_id"]
        snapshots = self.our_snapshots(hook, {TAG_NODE: name})
        date = asked["logical_date"] or newest_logical_date(snapshots)
        if date is None:
            raise RestoreRefused(f"param 'logical_date': node {name} has no completed snapshot in {hook.conn_region_name}")
        chosen = choose_restore_snapshots(snapshots, logical_date=date)
        attached = hook.find_volumes(instance_id=instance)
        if not attached:
            raise RestoreRefused(f"param 'nodes': instance {instance} of {name} has no volume in {hook.conn_region_name}")
        known = {**hook.describe_volumes_by_id(chosen), **{v.id: v for v in attached}}
        root = hook.root_device(instance)
        at_device = {v.device: v for v in attached}
        items = []
        for volume_id, snapshot in chosen.items():
            device = device_of(volume_id, known)
            if device is None:
                raise RestoreRefused(f"node {name}: the device of {volume_id} (snapshot {snapshot.id}) is not known")
            if device == root:
                self.log.info("%s: %s is the root volume (%s): not swapped", name, volume_id, device)
                continue
            current = at_device.get(device)
            if current is None:
                raise RestoreRefused(f"node {name}: nothing is attached at {device} of {instance} to replace")
            zone = asked["zone"] or current.zone
            tags = restore_tags(snapshot, source=known.get(volume_id) or current, run_id=context["run_id"], series=self.series, device=device)
            items.append(
                VolumeRestore(
                    source_volume=volume_id,
                    snapshot_id=snapshot.id,
                    logical_date=snapshot.tags.get(TAG_LOGICAL_DATE, ""),
                    spec=restore_volume_spec(
                        snapshot, source=known.get(volume_id) or current, zone=zone, tags=tags,
                        size_gib=asked["size_gib"], same_region=same_region,
                    ),
                    replaces=current.id,
                    instance_id=instance,
                    device=device,
                    mount_point=(node.get("mounts") or {}).get(device),
                    host=node["host"],
                    port=int(node.get("port") or 22),
                    node=name,
                )
            )
        data_devices = {v.device for v in attached if v.device != root}
        missing = sorted(data_devices - {i.device for i in items})
        if missing:
            raise RestoreRefused(
                f"param 'logical_date': node {name} has no snapshot of {date.isoformat()} for its volume(s) at {', '.join(missing)}"
            )
        return items
