"""Restore EBS volumes from snapshots: plan, create, swap in place of the current ones, mount, roll back.

One set of operators for the `ebs_<name>_restore` and `riak_<name>_restore` DAGs:

    plan -> create -> wait_available -> [stop] -> swap -> wait_in_use -> mount -> rollback (all_done) [-> start]

* ``plan`` (pure planning in ``stores/ebs.py``) checks the params (``confirm`` typed), picks a
  snapshot per volume and the new volume's parameters, and what each replaces: a JSON plan in
  XCom, split into parts (``all`` for an ebs entry, one per node for a riak cluster);
* ``create`` makes each volume once per run (found again by its ``backup:restore-run`` and
  ``backup:restored-from`` tags), ``wait_available`` / ``wait_in_use`` are sensors;
* ``swap`` unmounts (refusing a busy mount point, before anything is detached), tags the current
  volume ``backup:replaced-by=<new>``, detaches it only now that the new one is available, and
  attaches the new one at the same device; the replaced volume is never deleted;
* ``mount`` finds the new volume's device by its volume id, checks the filesystem UUID is the one
  the replaced volume carried (the snapshot's), and mounts it;
* ``rollback`` runs whatever happened; when a step failed it reads the state from EC2 and the
  node, puts every original volume back at its device (and mount point), and deletes only the
  volumes this run created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from botocore.exceptions import BotoCoreError, ClientError

from airflow_backup_provider.hooks.ebs import EbsHook
from airflow_backup_provider.hooks.remote import RemoteCommandHook
from airflow_backup_provider.operators.base import BackupOperator
from airflow_backup_provider.stores import blockdev
from airflow_backup_provider.stores.ebs import (
    CREATED_BY,
    TAG_CREATED_BY,
    TAG_DEVICE,
    TAG_LOGICAL_DATE,
    TAG_NAME,
    TAG_REPLACED_BY,
    TAG_RESTORE_RUN,
    TAG_VOLUME,
    RestoreRefused,
    Snapshot,
    Volume,
    VolumeRestore,
    choose_restore_snapshots,
    in_place_of,
    parse_logical_date,
    restore_tags,
    restore_volume_spec,
    restored_by_run,
)

PLAN_TASK_ID = "plan"
MODES = ("create", "replace")
FAILED_STATES = frozenset({"failed", "upstream_failed"})


def param_list(value: Any, field: str) -> list[str]:
    if value in (None, "", [], ()):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise AirflowFailException(f"param '{field}': value {value!r} must be a list of strings")


def param_date(value: Any) -> datetime | None:
    """A form's `logical_date`: empty, a day `YYYY-MM-DD` (midnight UTC) or an ISO 8601 instant."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    parsed = parse_logical_date(str(value).strip())
    if parsed is None:
        raise AirflowFailException(f"param 'logical_date': value {value!r} is not a date YYYY-MM-DD")
    return parsed


class EbsRestoreBase(BackupOperator):
    """What every restore step shares: the AWS connection, the SSH connection, the plan."""

    template_fields: Sequence[str] = ("dry_run",)
    ui_color = "#e3d7ff"

    def __init__(
        self,
        *,
        entry_name: str,
        part: str = "all",
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        ssh_conn_id: str = "backup_ssh",
        sudo_user: str | None = None,
        plan_task_id: str = PLAN_TASK_ID,
        dry_run: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entry_name = entry_name
        self.part = part
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.ssh_conn_id = ssh_conn_id
        self.sudo_user = sudo_user
        self.plan_task_id = plan_task_id
        self.dry_run = dry_run

    def plan(self, context: Any) -> dict[str, Any]:
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        if not plan:
            raise AirflowSkipException(f"{self.plan_task_id} made no plan: nothing to do")
        return plan

    def items(self, plan: Mapping[str, Any]) -> list[VolumeRestore]:
        return [VolumeRestore.from_record(r) for r in (plan.get("parts") or {}).get(self.part, [])]

    def ebs(self, plan: Mapping[str, Any]) -> EbsHook:
        return EbsHook(aws_conn_id=self.aws_conn_id, region_name=plan.get("region") or self.region_name)

    def node_hook(self, item: VolumeRestore) -> RemoteCommandHook:
        return self.remote_hook(item.host, item.port)

    def block_devices(self, remote: RemoteCommandHook, item: VolumeRestore) -> list[blockdev.BlockDevice]:
        result = remote.run(blockdev.lsblk_argv(), timeout=60).check(f"listing the block devices of {item.host}")
        return blockdev.parse_lsblk(result.stdout)


class EbsRestorePlanOperator(EbsRestoreBase):
    """
    Check the params and plan the restore of an ebs entry's volumes; creates nothing.

    The params (the DAG's form): ``logical_date`` (the newest completed snapshot of that date;
    empty: the newest), ``snapshot_ids``, ``volumes`` (source volume ids; empty: every volume the
    entry has snapshots of), ``mode`` (``create`` | ``replace``), ``availability_zone`` (default:
    the original's), ``size_gib`` (larger volumes), ``source_region`` (restore from the copies
    there), ``confirm`` (the entry's name), ``dry_run``.

    :param mounts: ``{volume id: {"host", "port", "path"}}``: where a volume is mounted.
    """

    def __init__(self, *, mounts: Mapping[str, Mapping[str, Any]] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", PLAN_TASK_ID)
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.mounts = {k: dict(v) for k, v in (mounts or {}).items()}

    @property
    def series(self) -> str:
        return self.entry_name

    def check_params(self, context: Any) -> dict[str, Any]:
        params = context["params"]
        dry_run = self.is_dry_run(context)
        confirm = str(params.get("confirm") or "")
        if not dry_run and confirm != self.entry_name:
            raise AirflowFailException(
                f"param 'confirm': value {confirm!r} must be the entry name {self.entry_name!r}: "
                "the restore creates volumes and replaces the ones in use; nothing was done"
            )
        mode = str(params.get("mode") or "replace")
        if mode not in self.modes:
            raise AirflowFailException(f"param 'mode': value {mode!r} must be one of {list(self.modes)}")
        size = params.get("size_gib")
        return {
            "dry_run": dry_run,
            "mode": mode,
            "logical_date": param_date(params.get("logical_date")),
            "snapshot_ids": param_list(params.get("snapshot_ids"), "snapshot_ids"),
            "volumes": param_list(params.get("volumes"), "volumes"),
            "zone": str(params.get("availability_zone") or "") or None,
            "size_gib": int(size) if size not in (None, "", 0) else None,
            "source_region": str(params.get("source_region") or "") or None,
        }

    modes: Sequence[str] = MODES
    # the modes that put the new volumes in place of the current ones
    replacing_modes: Sequence[str] = ("replace",)

    def execute(self, context: Any) -> dict[str, Any]:
        asked = self.check_params(context)
        region = asked["source_region"] or self.region_name
        hook = EbsHook(aws_conn_id=self.aws_conn_id, region_name=region)
        region = hook.conn_region_name
        own_region = EbsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).conn_region_name
        try:
            parts = self.plan_parts(context, hook, asked, same_region=region == own_region)
        except RestoreRefused as exc:
            raise AirflowFailException(str(exc)) from exc
        plan = {"region": region, "mode": asked["mode"], "replace": asked["mode"] in self.replacing_modes, "parts": {k: [i.as_record() for i in v] for k, v in parts.items()}}
        lines = [
            f"{i.source_volume}: snapshot {i.snapshot_id} ({i.logical_date})"
            + (f" in place of {i.replaces} at {i.instance_id} {i.device}" if i.replaces else "")
            + (f", mounted at {i.host}:{i.mount_point}" if i.mount_point else "")
            for items in parts.values()
            for i in items
        ]
        summary = f"{asked['mode']} in {region}: " + "; ".join(lines)
        self.log.info("restore plan: %s", summary)
        if asked["dry_run"]:
            self.record_outcome(context, status="dry_run", node=self.entry_name, detail=f"dry run: would {summary}")
            raise AirflowSkipException(f"dry run: would {summary}")
        self.record_outcome(context, status="done", node=self.entry_name, detail=f"plan: {summary}")
        return plan

    # ---- an ebs entry's plan ------------------------------------------------------------------
    def source_volumes(self, hook: EbsHook, volume_ids: Sequence[str]) -> dict[str, Volume]:
        """The snapshots' source volumes, for their type, IOPS, key and tags: in the entry's own
        region (a restore from a copy elsewhere still reads them if that region answers)."""
        if hook.conn_region_name == EbsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).conn_region_name:
            return hook.describe_volumes_by_id(volume_ids)
        try:
            return EbsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).describe_volumes_by_id(volume_ids)
        except (ClientError, BotoCoreError) as exc:
            self.log.warning("the source volumes cannot be read in %s (%s): the snapshots alone decide", self.region_name, exc)
            return {}

    def our_snapshots(self, hook: EbsHook, tags: Mapping[str, str] | None = None) -> list[Snapshot]:
        return hook.find_snapshots({TAG_CREATED_BY: CREATED_BY, TAG_NAME: self.series, **(tags or {})})

    def plan_parts(self, context: Any, hook: EbsHook, asked: dict[str, Any], *, same_region: bool) -> dict[str, list[VolumeRestore]]:
        chosen = choose_restore_snapshots(
            self.our_snapshots(hook), logical_date=asked["logical_date"], snapshot_ids=asked["snapshot_ids"],
            volumes=asked["volumes"],
        )
        sources = self.source_volumes(hook, list(chosen))
        replace = asked["mode"] in self.replacing_modes
        in_region = hook.describe_volumes_by_id(
            list(chosen) + [v.id for v in hook.find_volumes(tag_filter={TAG_VOLUME: list(chosen)})]
        ) if replace else {}
        items = []
        for volume_id, snapshot in chosen.items():
            source = sources.get(volume_id)
            current = in_place_of(volume_id, in_region) if replace else None
            if replace and current is None:
                raise RestoreRefused(
                    f"param 'mode': volume {volume_id} (or a volume restored in its place) is attached to no instance "
                    f"in {hook.conn_region_name}: nothing to replace; use mode 'create'"
                )
            if current is not None:
                self.refuse_root(hook, current)
            zone = asked["zone"] or (current.zone if current else None) or (source.zone if source else None)
            if not zone:
                raise RestoreRefused(f"param 'availability_zone': needed, volume {volume_id} no longer exists")
            if current is not None and zone != current.zone:
                raise RestoreRefused(
                    f"param 'availability_zone': value {zone!r}: a volume replacing {current.id} must be in its zone {current.zone}"
                )
            mount = self.mounts.get(volume_id, {})
            device = current.device if current else None
            tags = restore_tags(snapshot, source=source, run_id=context["run_id"], series=self.series, device=device)
            items.append(
                VolumeRestore(
                    source_volume=volume_id,
                    snapshot_id=snapshot.id,
                    logical_date=snapshot.tags.get(TAG_LOGICAL_DATE, ""),
                    spec=restore_volume_spec(snapshot, source=source, zone=zone, tags=tags, size_gib=asked["size_gib"], same_region=same_region),
                    replaces=current.id if current else None,
                    instance_id=current.instance_id if current else None,
                    device=device,
                    mount_point=mount.get("path"),
                    host=mount.get("host"),
                    port=int(mount.get("port") or 22),
                    node=mount.get("host"),
                )
            )
        return {"all": items}

    def refuse_root(self, hook: EbsHook, current: Volume) -> None:
        if current.instance_id and current.device and current.device == hook.root_device(current.instance_id):
            raise RestoreRefused(
                f"param 'volumes': volume {current.id} is the root volume of {current.instance_id} ({current.device}); "
                "swapping a root volume (which needs the instance stopped) is not supported: use mode 'create'"
            )


class EbsCreateRestoreVolumesOperator(EbsRestoreBase):
    """Create each planned volume once per run; returns ``{source volume: new volume}``.

    :param only_mode: skip (and so every step after it) unless the plan's mode is this one (a DAG
        that holds the steps of two modes, as the riak restore's node and cluster modes).
    """

    def __init__(self, *, only_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.only_mode = only_mode

    def execute(self, context: Any) -> dict[str, str]:
        plan = self.plan(context)
        if self.only_mode and plan.get("mode") != self.only_mode:
            raise AirflowSkipException(f"mode {plan.get('mode')!r}: these steps are for mode {self.only_mode!r}")
        items = self.items(plan)
        if not items:
            raise AirflowSkipException(f"no volume to restore in part {self.part}")
        hook = self.ebs(plan)
        run_id = context["run_id"]
        mine = hook.find_volumes(tag_filter={TAG_RESTORE_RUN: run_id})
        created: dict[str, str] = {}
        made = []
        for item in items:
            existing = restored_by_run(mine, snapshot_id=item.snapshot_id, run_id=run_id)
            if existing is not None:
                self.log.info("%s: this run already made %s from %s", item.source_volume, existing.id, item.snapshot_id)
                created[item.source_volume] = existing.id
                continue
            volume = hook.create_volume(item.spec)
            created[item.source_volume] = volume.id
            made.append(volume.id)
        self.record_outcome(
            context, status="done" if made else "skipped", node=self.part_label(items),
            produced=[{"id": created[i.source_volume], "snapshot": i.snapshot_id, "source": i.source_volume} for i in items],
            detail="created " + ", ".join(f"{created[i.source_volume]} from {i.snapshot_id}" for i in items),
        )
        return created

    def part_label(self, items: Sequence[VolumeRestore]) -> str:
        return items[0].node or self.entry_name if items else self.entry_name


class EbsSwapVolumesOperator(EbsRestoreBase):
    """
    Replace mode: put each new volume in place of the current one. Unmounts every mount point
    first (a busy one refuses the whole swap before anything is detached), tags the current volume
    ``backup:replaced-by``, detaches it, attaches the new one at its device. Never deletes.
    Pushes ``fs_uuids`` (the filesystem UUID each replaced volume carried) for the mount check.
    """

    def execute(self, context: Any) -> dict[str, str]:
        plan = self.plan(context)
        if not plan.get("replace"):
            raise AirflowSkipException(f"mode {plan.get('mode')!r}: the new volumes stay beside the old ones")
        items = self.items(plan)
        created = context["ti"].xcom_pull(task_ids=self.sibling("create")) or {}
        hook = self.ebs(plan)
        uuids: dict[str, str | None] = {}
        for item in items:
            if item.mount_point:
                with self.node_hook(item) as remote:
                    uuids[item.source_volume] = self.unmount(remote, item)
        context["ti"].xcom_push(key="fs_uuids", value=uuids)
        for item in items:
            new = created[item.source_volume]
            hook.tag_resource(item.replaces, {TAG_REPLACED_BY: new, TAG_DEVICE: item.device})
            hook.detach_volume(item.replaces, item.instance_id, item.device)
        hook.wait_for_volumes([i.replaces for i in items], "available")
        for item in items:
            hook.attach_volume(created[item.source_volume], item.instance_id, item.device)
        swapped = {i.replaces: created[i.source_volume] for i in items}
        self.record_outcome(
            context, status="done", node=items[0].node or self.entry_name if items else self.entry_name,
            detail="detached " + ", ".join(f"{old} (tagged {TAG_REPLACED_BY}={new})" for old, new in swapped.items())
            + "; attached " + ", ".join(f"{created[i.source_volume]} at {i.device}" for i in items),
        )
        return swapped

    def sibling(self, task: str) -> str:
        group = self.task_id.rpartition(".")[0]
        return f"{group}.{task}" if group else task

    def unmount(self, remote: RemoteCommandHook, item: VolumeRestore) -> str | None:
        """Unmount the replaced volume's mount point; its filesystem UUID (the snapshot's, too)."""
        devices = self.block_devices(remote, item)
        current = blockdev.device_of_volume(devices, item.replaces, item.device)
        mounted = blockdev.mounted_at(devices, item.mount_point)
        if mounted is None:
            self.log.info("%s: nothing is mounted at %s", item.host, item.mount_point)
            return current.uuid if current else None
        result = remote.run(blockdev.umount_argv(item.mount_point), timeout=120)
        refusal = blockdev.umount_refusal(result.exit_code, result.stdout + result.stderr, item.mount_point)
        if refusal:
            raise AirflowFailException(f"{item.host}: refusing to detach {item.replaces}: {refusal}")
        self.log.info("%s: unmounted %s (%s, UUID %s)", item.host, item.mount_point, mounted.path, mounted.uuid)
        return mounted.uuid


class EbsMountRestoredOperator(EbsRestoreBase):
    """Mount each new volume where the replaced one was, found by its volume id, after checking
    its filesystem UUID is the replaced volume's; the report's rows say what now runs where."""

    def execute(self, context: Any) -> list[dict[str, str]]:
        plan = self.plan(context)
        if not plan.get("replace"):
            raise AirflowSkipException(f"mode {plan.get('mode')!r}: nothing was attached")
        items = self.items(plan)
        ti = context["ti"]
        group = self.task_id.rpartition(".")[0]
        prefix = f"{group}." if group else ""
        created = ti.xcom_pull(task_ids=f"{prefix}create") or {}
        uuids = ti.xcom_pull(task_ids=f"{prefix}swap", key="fs_uuids") or {}
        rows = []
        for item in items:
            new = created[item.source_volume]
            if item.mount_point:
                with self.node_hook(item) as remote:
                    self.mount(remote, item, new, uuids.get(item.source_volume))
            rows.append(
                {
                    "node": item.node or item.instance_id or "",
                    "device": item.device or "",
                    "volume": new,
                    "from snapshot": f"{item.snapshot_id} ({item.logical_date})",
                    "replaced": f"{item.replaces} (tagged {TAG_REPLACED_BY}={new})",
                    "mount": item.mount_point or "-",
                }
            )
        self.record_outcome(
            context, status="done", node=items[0].node or self.entry_name if items else self.entry_name,
            produced=[{"id": r["volume"], "replaced": r["replaced"]} for r in rows],
            detail="now on restored volumes: " + ", ".join(f"{r['device']} {r['volume']} (was {r['replaced']})" for r in rows),
            rows=rows,
        )
        return rows

    def mount(self, remote: RemoteCommandHook, item: VolumeRestore, volume_id: str, want_uuid: str | None) -> None:
        device = blockdev.device_of_volume(self.block_devices(remote, item), volume_id, item.device)
        if device is None:
            raise AirflowException(f"{item.host}: no block device shows volume {volume_id} (attached at {item.device})")
        if want_uuid and device.uuid != want_uuid:
            raise AirflowFailException(
                f"{item.host}: {device.path} (volume {volume_id}) holds filesystem {device.uuid}, not {want_uuid} "
                f"of the volume it replaces: not mounting it at {item.mount_point}"
            )
        if device.mountpoint != item.mount_point:
            remote.run(blockdev.mount_argv(device.path, item.mount_point), timeout=120).check(
                f"mounting {device.path} at {item.mount_point} on {item.host}"
            )
        again = blockdev.device_of_volume(self.block_devices(remote, item), volume_id, item.device)
        if again is None or again.mountpoint != item.mount_point:
            raise AirflowException(f"{item.host}: {item.mount_point} is not mounted from volume {volume_id} after mount")
        self.log.info("%s: %s (volume %s, UUID %s) mounted at %s", item.host, again.path, volume_id, again.uuid, item.mount_point)


class EbsRestoreRollbackOperator(EbsRestoreBase):
    """
    Runs whatever happened (``all_done``). When none of ``watched_task_ids`` failed it does
    nothing. Otherwise, from what EC2 and the node show now: the new volume comes off the device,
    the original goes back on it (and on its mount point), its ``backup:replaced-by`` tag goes,
    and the volumes this run created, and only those, are deleted. Then the step's failure still
    fails the run (the report), and the rollback's own failure alerts.
    """

    def __init__(self, *, watched_task_ids: Sequence[str], **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.watched_task_ids = list(watched_task_ids)

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=self.watched_task_ids)
        states = {k: str(v) for k, v in (states.get(ti.run_id) or {}).items()}
        failed = sorted(t for t in self.watched_task_ids if states.get(t) in FAILED_STATES)
        if not failed:
            raise AirflowSkipException("no step failed: nothing to roll back")
        plan = ti.xcom_pull(task_ids=self.plan_task_id)
        if not plan:
            raise AirflowSkipException(f"{self.plan_task_id} made no plan: nothing was changed")
        items = self.items(plan)
        hook = self.ebs(plan)
        # this run's volumes of this part (a node's) only: another node's may be in use already
        sources = [i.source_volume for i in items]
        mine = {
            v.id: v
            for v in hook.find_volumes(tag_filter={TAG_RESTORE_RUN: context["run_id"]})
            if v.tags.get(TAG_VOLUME) in sources
        } if sources else {}
        restored_back = []
        for item in items if plan.get("replace") else []:
            if self.put_back(hook, item, mine):
                restored_back.append(item.replaces)
        # never a volume in use (one a plan cleared after its swap would stand for the original)
        now = hook.describe_volumes_by_id(list(mine))
        in_use = sorted(v for v in now if now[v].state != "available")
        if in_use:
            self.log.warning("not deleting this run's volume(s) %s: attached", ", ".join(in_use))
        deleted = [v for v in sorted(now) if v not in in_use and hook.delete_volume(v)]
        detail = (
            f"after {', '.join(failed)} failed: original(s) {', '.join(restored_back) or 'untouched'} in place; "
            f"deleted this run's {', '.join(deleted) or 'nothing'}"
        )
        self.log.info("rollback: %s", detail)
        self.record_outcome(context, status="done", node=items[0].node if items else self.entry_name, detail=detail)
        return {"put_back": restored_back, "deleted": deleted}

    def put_back(self, hook: EbsHook, item: VolumeRestore, mine: Mapping[str, Volume]) -> bool:
        new = next((v for v in mine.values() if v.tags.get(TAG_VOLUME) == item.source_volume), None)
        original = hook.describe_volumes_by_id([item.replaces]).get(item.replaces)
        if original is None:
            raise AirflowException(f"rollback: the replaced volume {item.replaces} is gone")
        if original.instance_id == item.instance_id and original.state == "in-use":
            self.log.info("%s is still at %s of %s", original.id, item.device, item.instance_id)
            moved = False
        else:
            if new is not None and new.instance_id:
                if item.mount_point:
                    with self.node_hook(item) as remote:
                        self.unmount_new(remote, item, new.id)
                hook.detach_volume(new.id, new.instance_id, new.device)
                hook.wait_for_volumes([new.id], "available")
            hook.attach_volume(original.id, item.instance_id, item.device)
            hook.wait_for_volumes([original.id], "in-use")
            moved = True
        hook.untag_resource(original.id, [TAG_REPLACED_BY])
        if item.mount_point:
            with self.node_hook(item) as remote:
                devices = self.block_devices(remote, item)
                device = blockdev.device_of_volume(devices, original.id, item.device)
                if device is None:
                    raise AirflowException(f"rollback: {item.host} shows no device of {original.id}")
                if device.mountpoint != item.mount_point:
                    remote.run(blockdev.mount_argv(device.path, item.mount_point), timeout=120).check(
                        f"rollback: mounting {device.path} at {item.mount_point} on {item.host}"
                    )
        return moved

    def unmount_new(self, remote: RemoteCommandHook, item: VolumeRestore, volume_id: str) -> None:
        device = blockdev.device_of_volume(self.block_devices(remote, item), volume_id, item.device)
        if device is not None and device.mountpoint == item.mount_point:
            result = remote.run(blockdev.umount_argv(item.mount_point), timeout=120)
            refusal = blockdev.umount_refusal(result.exit_code, result.stdout + result.stderr, item.mount_point)
            if refusal:
                raise AirflowException(f"rollback: {item.host}: {refusal}")


__all__ = [
    "EbsCreateRestoreVolumesOperator",
    "EbsMountRestoredOperator",
    "EbsRestorePlanOperator",
    "EbsRestoreRollbackOperator",
    "EbsSwapVolumesOperator",
]
