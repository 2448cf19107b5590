"""Restore drills of `ebs` and `riak` entries: a scratch volume from each newest snapshot, on a drill instance.

    plan -> create -> wait_available -> attach -> wait_in_use -> drill -> cleanup_scratch (all_done) -> report

* ``plan`` is the restore's own planning (:class:`EbsRestorePlanOperator`, :class:`RiakRestorePlanOperator`)
  in a mode that replaces nothing, with the drill's zone; every new volume is tagged only with our
  tags and ``backup:drill-run=<dag id>/<run id>``, and gets a free attachment point on the drill
  instance. A drill instance that one of the snapshots' volumes is attached to is refused.
* ``create`` and the two waits are the restore's operator and sensor;
* ``attach`` puts each scratch volume on the drill instance;
* ``drill`` (over SSH to ``drill_host``) finds each volume's device by its id, checks its filesystem
  UUID is the source volume's (read with ``lsblk`` on the node it is attached to, when the entry
  names that node), mounts it read-only under the run's scratch folder and runs the check command;
  the verdict goes to the report and to the snapshot's ``backup:last-drill`` tag;
* ``cleanup_scratch`` runs whatever happened: unmounts, detaches and deletes every volume tagged
  with this run's drill tag, then removes the scratch folder.

No live node is changed: the drill reads snapshots and works on the drill instance only, so it
takes no turn of the cluster.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from airflow_backup_provider import dates
from airflow_backup_provider.config.ebs import DRILL_CHECK_FIELDS
from airflow_backup_provider.hooks.ebs import EbsHook
from airflow_backup_provider.hooks.remote import RemoteCommandHook
from airflow_backup_provider.names import SNAPSHOT_ID
from airflow_backup_provider.operators.drill import BackupCheck, DrillMixin
from airflow_backup_provider.operators.ebs_restore import EbsRestoreBase, EbsRestorePlanOperator, param_date
from airflow_backup_provider.operators.riak import RiakRestorePlanOperator
from airflow_backup_provider.stores import blockdev
from airflow_backup_provider.stores import drill as store
from airflow_backup_provider.stores.ebs import (
    TAG_DRILL_RUN,
    TAG_LAST_DRILL,
    RestoreRefused,
    VolumeRestore,
    drill_run_tag,
    drill_volume_tags,
    free_drill_devices,
    last_drill_value,
    tag_dict,
    tag_list,
)

DEFAULT_LIST = ["ls", "-la", "--", "{mount_point}"]


def scratch_mount_point(scratch: str, volume_id: str) -> str:
    return posixpath.join(scratch, volume_id)


def mounts_first(check: Sequence[str]) -> bool:
    """A check that names the device and not the mount point (`fsck -n {device}`) runs unmounted."""
    text = " ".join(check)
    return "{mount_point}" in text or "{device}" not in text


def check_argv(check: Sequence[str], **values: str) -> list[str]:
    return [word.format(**{k: values.get(k, "") for k in DRILL_CHECK_FIELDS}) for word in check]


class DrillPlanMixin:
    """The restore's planning, for a drill: replaces nothing, refuses a live drill instance."""

    drill_instance_id: str
    drill_zone: str | None

    def init_plan(self, *, drill_instance_id: str, drill_zone: str | None) -> None:
        self.drill_instance_id = drill_instance_id
        self.drill_zone = drill_zone

    def drill_params(self, context: Any, mode: str) -> dict[str, Any]:
        backup = str(context["params"].get("backup") or "").strip()
        snapshot_ids = [b.strip() for b in backup.split(",") if b.strip()] if backup.startswith("snap-") else []
        return {
            "dry_run": self.is_dry_run(context),  # type: ignore[attr-defined]
            "mode": mode,
            "logical_date": None if snapshot_ids else param_date(backup),
            "snapshot_ids": snapshot_ids,
            "volumes": [],
            "zone": self.drill_zone,
            "size_gib": None,
            "source_region": None,
        }

    def execute(self, context: Any) -> dict[str, Any]:
        asked = self.check_params(context)  # type: ignore[attr-defined]
        hook = EbsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)  # type: ignore[attr-defined]
        try:
            parts = self.plan_parts(context, hook, asked, same_region=True)  # type: ignore[attr-defined]
            items = [i for part in parts.values() for i in part]
            self.refuse_live_drill_instance(hook, items)
            used = [v.device for v in hook.find_volumes(instance_id=self.drill_instance_id)]
            devices = free_drill_devices(used, len(items))
        except RestoreRefused as exc:
            raise AirflowFailException(str(exc)) from exc
        run = drill_run_tag(context["ti"].dag_id, context["run_id"])
        planned = []
        for item, device in zip(items, devices, strict=True):
            spec = dict(item.spec)
            tags = drill_volume_tags(tag_dict({"Tags": spec["TagSpecifications"][0]["Tags"]}), drill_run=run)
            spec["TagSpecifications"] = [{"ResourceType": "volume", "Tags": tag_list(tags)}]
            planned.append(
                VolumeRestore(
                    source_volume=item.source_volume, snapshot_id=item.snapshot_id, logical_date=item.logical_date,
                    spec=spec, replaces=None, instance_id=self.drill_instance_id, device=device,
                    mount_point=None, host=item.host, port=item.port, node=item.node,
                )
            )
        summary = "; ".join(
            f"{i.source_volume}: snapshot {i.snapshot_id} ({i.logical_date}) -> scratch volume in {i.spec['AvailabilityZone']} "
            f"at {self.drill_instance_id} {i.device}" for i in planned
        )
        self.log.info("drill plan: %s", summary)  # type: ignore[attr-defined]
        if asked["dry_run"]:
            self.record_outcome(context, status="dry_run", node=self.entry_name, detail=f"dry run: would {summary}")  # type: ignore[attr-defined]
            raise AirflowSkipException(f"dry run: would {summary}")
        self.record_outcome(context, status="done", node=self.entry_name, detail=f"plan: {summary}")  # type: ignore[attr-defined]
        return {"region": hook.conn_region_name, "mode": "drill", "replace": False, "drill_run": run,
                "parts": {"all": [i.as_record() for i in planned]}}

    def refuse_live_drill_instance(self, hook: EbsHook, items: Sequence[VolumeRestore]) -> None:
        """The drill instance must be none of the instances the snapshots' volumes are attached to."""
        sources = hook.describe_volumes_by_id([i.source_volume for i in items])
        live = {v.instance_id: v.id for v in sources.values() if v.instance_id}
        live.update({i.instance_id: i.source_volume for i in items if i.replaces and i.instance_id})
        if self.drill_instance_id in live:
            raise RestoreRefused(
                f"field 'drill_instance_id': value {self.drill_instance_id!r} is the instance volume "
                f"{live[self.drill_instance_id]} is attached to: a drill must never touch a live node"
            )


class EbsDrillPlanOperator(DrillPlanMixin, EbsRestorePlanOperator):
    """Plan an ebs entry's drill: per volume, its newest completed snapshot (or the form's `backup`:
    a date, or snapshot ids) to a scratch volume on the drill instance. Creates nothing."""

    def __init__(self, *, drill_instance_id: str, drill_zone: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.init_plan(drill_instance_id=drill_instance_id, drill_zone=drill_zone)

    def check_params(self, context: Any) -> dict[str, Any]:
        return self.drill_params(context, "create")


class RiakDrillPlanOperator(DrillPlanMixin, RiakRestorePlanOperator):
    """Plan a Riak cluster's drill: every node's data volumes from its newest snapshot set (or the
    form's date) to scratch volumes on the drill instance. Creates nothing; no node is touched."""

    def __init__(self, *, drill_instance_id: str, drill_zone: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.init_plan(drill_instance_id=drill_instance_id, drill_zone=drill_zone)

    def check_params(self, context: Any) -> dict[str, Any]:
        asked = self.drill_params(context, "node")
        if asked["snapshot_ids"]:
            raise AirflowFailException(f"param 'backup': value {context['params'].get('backup')!r}: a Riak drill takes a date")
        asked["nodes"] = []
        return asked


class EbsDrillAttachOperator(EbsRestoreBase):
    """Attach each scratch volume to the drill instance at its planned attachment point (once)."""

    def execute(self, context: Any) -> dict[str, str]:
        plan = self.plan(context)
        created = context["ti"].xcom_pull(task_ids="create") or {}
        hook = self.ebs(plan)
        now = hook.describe_volumes_by_id(list(created.values()))
        attached = {}
        for item in self.items(plan):
            volume_id = created[item.source_volume]
            volume = now.get(volume_id)
            if volume is None or volume.instance_id != item.instance_id:
                hook.attach_volume(volume_id, item.instance_id, item.device)
            attached[volume_id] = item.device
        self.record_outcome(
            context, status="done", node=self.entry_name,
            detail="attached " + ", ".join(f"{v} at {d}" for v, d in attached.items()) + f" of {self.items(plan)[0].instance_id}",
        )
        return attached


class EbsDrillBase(DrillMixin, EbsRestoreBase):
    """The drill host (the drill instance's address) and the run's scratch folder there."""

    def __init__(
        self, *, drill_folder: str, drill_host: str, drill_port: int | None = None, drill_instance_id: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.init_drill(drill_folder=drill_folder, drill_host=drill_host, drill_port=drill_port)
        self.drill_instance_id = drill_instance_id

    def drill_remote(self) -> RemoteCommandHook:
        return self.remote_hook(self.drill_host or "", self.drill_port or 22)

    def devices(self, remote: RemoteCommandHook, host: str) -> list[blockdev.BlockDevice]:
        result = remote.run(blockdev.lsblk_argv(), timeout=60).check(f"listing the block devices of {host}")
        return blockdev.parse_lsblk(result.stdout)


class EbsDrillCheckOperator(EbsDrillBase):
    """Check each scratch volume on the drill host: its device by volume id, its filesystem UUID
    (the source volume's, when the entry names the node it is on), then the check command on it
    mounted read-only (default: list it). Fails naming every volume and snapshot that did not pass."""

    def __init__(self, *, check: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = list(check or DEFAULT_LIST)

    def execute(self, context: Any) -> dict[str, Any]:
        plan = self.plan(context)
        created = context["ti"].xcom_pull(task_ids="create") or {}
        items = self.items(plan)
        scratch_folder = store.scratch_folder(self.drill_folder, context["ti"].dag_id, context["run_id"])
        checks = []
        with self.scratch_hook(context) as scratch, self.drill_remote() as remote:
            scratch.makedirs(*[scratch_mount_point(scratch_folder, created[i.source_volume]) for i in items])
            for item in items:
                checks.append(self.check_volume(remote, item, created[item.source_volume], scratch_folder))
        hook = self.ebs(plan)
        now = dates.now_utc()
        for item, check in zip(items, checks, strict=True):
            verdict = store.FAILED if check.problems else store.PASSED
            hook.tag_resource(item.snapshot_id, {TAG_LAST_DRILL: last_drill_value(verdict, now)})
        return self.finish_drill(context, None, None, checks)

    def source_uuid(self, item: VolumeRestore) -> str | None:
        """The live source volume's filesystem UUID (its snapshot's), read with lsblk on its node."""
        if not item.host:
            return None
        with self.remote_hook(item.host, item.port) as node:
            device = blockdev.device_of_volume(self.devices(node, item.host), item.source_volume)
        return device.uuid if device else None

    def check_volume(self, remote: RemoteCommandHook, item: VolumeRestore, volume_id: str, scratch: str) -> BackupCheck:
        check = BackupCheck(backup=f"{item.snapshot_id} (volume {item.source_volume})", what=f"scratch volume {volume_id}")
        problem = f"volume {item.source_volume}, snapshot {item.snapshot_id}, scratch volume {volume_id}"
        device = blockdev.device_of_volume(self.devices(remote, self.drill_host or ""), volume_id, item.device)
        if device is None:
            check.problems.append(f"{problem}: no block device of it on {self.drill_host}")
            return check
        want = self.source_uuid(item)
        if want and device.uuid != want:
            check.problems.append(f"{problem}: filesystem UUID {device.uuid} is not the snapshot's {want}")
            return check
        mount_point = scratch_mount_point(scratch, volume_id)
        values = {"device": device.path, "mount_point": mount_point, "volume": volume_id, "snapshot": item.snapshot_id}
        if mounts_first(self.check) and device.mountpoint != mount_point:
            result = remote.run(["mount", "-o", "ro", "--", device.path, mount_point], timeout=300)
            if not result.ok:
                check.problems.append(f"{problem}: mount -o ro {device.path} exited {result.exit_code}: {tail(result)}")
                return check
        result = remote.run(check_argv(self.check, **values), timeout=3600)
        if not result.ok:
            check.problems.append(f"{problem}: {' '.join(self.check[:1])} exited {result.exit_code}: {tail(result)}")
            return check
        check.files = len(result.stdout.splitlines())
        check.what = f"scratch volume {volume_id} ({device.path}, UUID {device.uuid}"
        check.what += ", the snapshot's)" if want else ", the source's not known here)"
        check.what += f": `{' '.join(self.check)}` passed"
        return check


def tail(result: Any) -> str:
    return " ".join((result.stderr + result.stdout).split())[-300:] or "no output"


class EbsDrillCleanupOperator(EbsDrillBase):
    """Whatever happened (``all_done``): unmount, detach and delete every volume tagged with this run's
    drill tag, then remove the scratch folder; every step is tried, and any failure fails this task."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)

    def execute(self, context: Any) -> dict[str, Any]:
        run = drill_run_tag(context["ti"].dag_id, context["run_id"])
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id) or {}
        hook = self.ebs(plan)
        mine = hook.find_volumes(tag_filter={TAG_DRILL_RUN: run})
        errors: list[str] = []
        kept: set[str] = set()  # still mounted: never detached under a mount
        try:
            with self.drill_remote() as remote:
                for volume in mine:
                    if volume.instance_id and not self.unmount(remote, volume.id, errors):
                        kept.add(volume.id)
        except Exception as exc:  # the drill host unreachable: what is attached may be mounted; the rest still goes
            errors.append(f"{self.drill_host}: cannot check the mounts ({exc})")
            kept.update(v.id for v in mine if v.instance_id)
        detaching = [v for v in mine if v.instance_id == self.drill_instance_id and v.state != "available" and v.id not in kept]
        for volume in detaching:
            hook.detach_volume(volume.id, volume.instance_id, volume.device)
        hook.wait_for_volumes([v.id for v in detaching], "available")
        deleted = [v.id for v in mine if v.id not in kept and v.instance_id in (None, self.drill_instance_id) and hook.delete_volume(v.id)]
        mounted_left = bool(kept)
        if mounted_left:
            errors.append("the scratch folder was kept: something is still mounted in it")
        else:
            with self.scratch_hook(context) as scratch:
                scratch.remove_scratch()
        detail = f"deleted scratch volume(s) {', '.join(deleted) or 'none'} of {run}"
        if errors:
            self.record_outcome(context, status="failed", node=self.entry_name, detail=detail + "; " + "; ".join(errors))
            raise AirflowException("drill cleanup: " + "; ".join(errors))
        self.record_outcome(context, status="done", node=self.entry_name, detail=detail)
        return {"deleted": deleted}

    def unmount(self, remote: RemoteCommandHook, volume_id: str, errors: list[str]) -> bool:
        device = blockdev.device_of_volume(self.devices(remote, self.drill_host or ""), volume_id)
        if device is None or not device.mountpoint:
            return True
        result = remote.run(blockdev.umount_argv(device.mountpoint), timeout=120)
        refusal = blockdev.umount_refusal(result.exit_code, result.stdout + result.stderr, device.mountpoint)
        if refusal:
            errors.append(f"{self.drill_host}: {volume_id}: {refusal}")
            return False
        return True


def drill_plan_form(kind: str) -> str:
    """The form's `backup` pattern: empty (the newest), a day, or (ebs) snapshot ids."""
    day = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    snaps = rf"|{SNAPSHOT_ID}(,{SNAPSHOT_ID})*" if kind == "ebs" else ""
    return rf"^(|{day}{snaps})$"


__all__ = [
    "EbsDrillAttachOperator",
    "EbsDrillCheckOperator",
    "EbsDrillCleanupOperator",
    "EbsDrillPlanOperator",
    "RiakDrillPlanOperator",
]
