"""EBS operators: find the volumes, snapshot one target (idempotent per logical date), apply retention.

Thin: the hook (hooks/ebs.py) talks to EC2, the pure decisions live in stores/ebs.py and
retention.py. Every operator takes ``dry_run``: it logs what it would create or delete and
changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowFailException

from airflow_backup_provider import dates
from airflow_backup_provider.hooks.ebs import EbsHook, VolumeNotFound
from airflow_backup_provider.operators.base import BackupOperatorMixin
from airflow_backup_provider.operators.retention import RetentionGroup, RetentionOperator, RetentionRun
from airflow_backup_provider.retention import BackupItem, planned_backup
from airflow_backup_provider.stores.ebs import (
    TAG_LOGICAL_DATE,
    TAG_NAME,
    TAG_SOURCE_SNAPSHOT,
    TAG_VOLUME,
    Snapshot,
    backup_tags,
    copies_to_make,
    copy_tags,
    decide_snapshot,
    format_logical_date,
    has_good_snapshot_of,
    is_ours_for,
    status_row,
    status_table,
)


def target_kind(target: str) -> str:
    if target.startswith("vol-"):
        return "volume"
    if target.startswith("i-"):
        return "instance"
    raise AirflowFailException(f"field 'target': value {target!r} is neither a volume (vol-...) nor an instance (i-...)")


class EbsFindTargetsOperator(BackupOperatorMixin, AwsBaseOperator[EbsHook]):
    """
    The targets of this run: listed volume ids as given (a vanished one is reported by its own
    snapshot task), the volumes matching a tag filter, or the instance. Fails when nothing matches,
    so an emptied tag filter never looks like a quiet success.
    """

    aws_hook_class = EbsHook
    template_fields: Sequence[str] = aws_template_fields("volume_ids", "volume_tags", "instance_id")

    def __init__(
        self,
        *,
        volume_ids: Sequence[str] = (),
        volume_tags: Mapping[str, str] | None = None,
        instance_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.volume_ids = list(volume_ids)
        self.volume_tags = dict(volume_tags or {})
        self.instance_id = instance_id

    def execute(self, context: Any) -> list[str]:
        targets: list[str] = list(self.volume_ids)
        if self.volume_tags:
            found = [v.id for v in self.hook.find_volumes(tag_filter=self.volume_tags)]
            self.log.info("volumes tagged %s: %s", self.volume_tags, found or "none")
            targets += [v for v in found if v not in targets]
        if self.instance_id:
            targets.append(self.instance_id)
        if not targets:
            raise AirflowFailException(f"no volume to back up: nothing matches volume_tags {self.volume_tags!r}")
        self.log.info("targets: %s", ", ".join(targets))
        return targets


class EbsSnapshotOperator(BackupOperatorMixin, AwsBaseOperator[EbsHook]):
    """
    Snapshot one volume (or every volume of an instance, crash-consistent), at most once per
    logical date.

    Skips, and says why, when the volume already has this logical date's snapshot (pending or
    completed) or any pending snapshot. Pushes XComs ``snapshot_ids`` (what to wait for: this
    date's snapshots) and ``listing`` (the volume's snapshots as seen, for the retention task).

    :param target: a volume id (``vol-...``) or an instance id (``i-...``).
    :param name: the clusters-file entry; tag ``backup:name``, and the scope of idempotency.
    :param tags: user tags added to every snapshot.
    """

    aws_hook_class = EbsHook
    template_fields: Sequence[str] = aws_template_fields("target", "description", "dry_run")

    def __init__(
        self,
        *,
        target: str,
        name: str,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        dry_run: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.name = name
        self.tags = dict(tags or {})
        self.description = description
        self.dry_run = dry_run

    def execute(self, context: Any) -> list[str]:
        dry_run = self.is_dry_run(context)
        logical = self.run_date(context)
        date_tag = format_logical_date(logical)
        kind = target_kind(self.target)
        description = self.description or f"airflow-backup {self.name} {self.target} {date_tag}"
        try:
            if kind == "instance":
                volume_ids = [v.id for v in self.hook.find_volumes(instance_id=self.target)]
                if not volume_ids:
                    raise VolumeNotFound(f"instance {self.target!r} does not exist or has no volume attached")
            else:
                volume_ids = [self.target]
                if dry_run and not self.hook.find_volumes(volume_ids=volume_ids):
                    raise VolumeNotFound(f"volume {self.target!r} does not exist")
            listing = self.hook.find_snapshots(volume_ids=volume_ids)
            decisions = [
                decide_snapshot(listing, volume_id=v, name=self.name, date_tag=date_tag) for v in volume_ids
            ]
            for decision in decisions:
                self.log.info("%s: %s", decision.action, decision.reason)
            to_create = [d.volume_id for d in decisions if d.action == "create"]
            blocked = any(d.blocking for d in decisions)
            created: list[Snapshot] = []
            if to_create and not blocked and not dry_run:
                created = self._create(kind, to_create, volume_ids, logical, context["run_id"], description, dates.now_utc())
            elif to_create and not blocked:
                for volume_id in to_create:
                    self.log.info(
                        "dry run: would create a snapshot of %s with tags %s",
                        volume_id,
                        backup_tags(name=self.name, logical_date=logical, run_id=context["run_id"], volume_id=volume_id, extra=self.tags),
                    )
        except VolumeNotFound as exc:
            row = status_row(self.target, None, state="volume not found", date=date_tag, description=str(exc))
            self.log.error("%s\n%s", exc, status_table([row]))
            self.record_outcome(context, status="failed", node=self.target, detail=str(exc), rows=[row])
            raise AirflowFailException(f"{exc}; the other volumes go on, this run will fail") from exc

        existing = [d.existing for d in decisions if d.existing is not None]
        today = existing + created
        listing += created
        rows = []
        for decision in decisions:
            mine = next((s for s in today if s.volume_id == decision.volume_id), None)
            if mine is not None:
                rows.append(status_row(decision.volume_id, mine))
            else:
                state = "dry run: would create" if dry_run and not blocked else "skipped: pending snapshot"
                rows.append(status_row(decision.volume_id, None, state=state, date=date_tag, description=decision.reason))
        self.log.info("snapshot status:\n%s", status_table(rows))
        # A cleared old run or a backfill snapshots today's data under an old date: say so.
        warnings = [
            w for s in today if (w := dates.late_warning(logical, s.taken_at, f"snapshot {s.id} of {s.volume_id}"))
        ]
        for warning in warnings:
            self.log.warning("%s", warning)

        if created:
            status, detail = "done", f"created {', '.join(s.id for s in created)} for {date_tag}"
        elif dry_run and to_create and not blocked:
            status, detail = "dry_run", f"would create a snapshot of {', '.join(to_create)} for {date_tag}"
        else:
            status, detail = "skipped", "; ".join(d.reason for d in decisions)
        self.record_outcome(
            context,
            status=status,
            node=self.target,
            produced=[{"id": s.id, "volume": s.volume_id} for s in created],
            detail=detail,
            rows=rows,
            warnings=warnings,
        )
        ti = context["ti"]
        snapshot_ids = [s.id for s in today]
        ti.xcom_push(key="snapshot_ids", value=snapshot_ids)
        ti.xcom_push(key="listing", value=[s.to_dict() for s in listing])
        return snapshot_ids

    def _create(
        self, kind: str, to_create: list[str], volume_ids: list[str], logical: datetime, run_id: str, description: str,
        taken_at: datetime,
    ) -> list[Snapshot]:
        if kind == "instance" and to_create == volume_ids:
            tags = backup_tags(name=self.name, logical_date=logical, run_id=run_id, extra=self.tags, taken_at=taken_at)
            return self.hook.create_snapshots_for_instance(self.target, tags, description)
        if kind == "instance":
            self.log.warning(
                "only %s of instance %s lack this date's snapshot: snapshotting them one by one "
                "(not crash-consistent with the others)",
                to_create,
                self.target,
            )
        return [
            self.hook.create_snapshot(
                volume_id,
                backup_tags(
                    name=self.name, logical_date=logical, run_id=run_id, volume_id=volume_id, extra=self.tags,
                    taken_at=taken_at,
                ),
                description,
            )
            for volume_id in to_create
        ]


class EbsCopySnapshotsOperator(BackupOperatorMixin, AwsBaseOperator[EbsHook]):
    """
    Copy this run's completed snapshots of one target into this operator's region
    (``region_name``), at most once each: a copy is found again by its ``backup:source-snapshot``
    tag, so a retry or a re-run of the day copies nothing twice. Tags are carried over; with
    ``kms_key_id`` (a key of the copy's region) the copies are encrypted with it.

    Returns the ids of this run's copies (made now or before) for the completion sensor.

    :param snapshot_ids: the run's snapshots (the snapshot task's ``snapshot_ids`` XCom).
    :param source_region: where they are (default: the connection's region).
    """

    aws_hook_class = EbsHook
    template_fields: Sequence[str] = aws_template_fields("target", "snapshot_ids", "dry_run")

    def __init__(
        self,
        *,
        target: str,
        name: str,
        snapshot_ids: Any,
        source_region: str | None = None,
        kms_key_id: str | None = None,
        dry_run: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.name = name
        self.snapshot_ids = snapshot_ids
        self.source_region = source_region
        self.kms_key_id = kms_key_id
        self.dry_run = dry_run

    def source_ids(self, context: Any, source_hook: EbsHook) -> list[str]:
        """This run's snapshots to copy."""
        return list(self.snapshot_ids or [])

    def execute(self, context: Any) -> list[str]:
        source_hook = EbsHook(aws_conn_id=self.aws_conn_id, region_name=self.source_region)
        ids = self.source_ids(context, source_hook)
        source_region, region = source_hook.conn_region_name, self.hook.conn_region_name
        if source_region == region:
            raise AirflowFailException(f"field 'copy_to': value {region!r} is the region of the snapshots themselves")
        where = f"{source_region} -> {region}"
        if not ids:
            self.record_outcome(context, status="skipped", node=self.target, detail=f"{where}: no snapshot of this run to copy")
            return []
        sources = source_hook.find_snapshots(snapshot_ids=ids)
        unfinished = [f"{s.id} ({s.state})" for s in sources if s.state != "completed"]
        missing = sorted(set(ids) - {s.id for s in sources})
        if unfinished or missing:
            raise AirflowFailException(f"{where}: only completed snapshots are copied; not completed: {unfinished}, gone: {missing}")
        to_copy, existing = copies_to_make(sources, self.hook.find_snapshots({TAG_NAME: self.name, TAG_SOURCE_SNAPSHOT: ids}))
        for source_id, copy in existing.items():
            self.log.info("%s: %s already has copy %s (%s)", where, source_id, copy.id, copy.state)
        if self.is_dry_run(context):
            detail = f"{where}: would copy {', '.join(s.id for s in to_copy) or 'nothing'}"
            self.record_outcome(context, status="dry_run", node=self.target, detail=detail)
            return []
        made = [
            self.hook.copy_snapshot(
                source,
                source_region=source_region,
                tags=copy_tags(source, source_region),
                description=f"copy of {source.id} from {source_region}: {source.description}",
                kms_key_id=self.kms_key_id,
            )
            for source in to_copy
        ]
        copies = list(existing.values()) + made
        rows = [
            status_row(c.source_volume, c, state=f"{c.state} in {region}", description=f"copy of {c.copied_from}")
            for c in copies
        ]
        self.record_outcome(
            context,
            status="done" if made else "skipped",
            node=self.target,
            produced=[{"id": c.id, "region": region, "source": c.copied_from} for c in made],
            detail=f"{where}: copied {', '.join(f'{c.copied_from} as {c.id}' for c in made) or 'nothing new'}",
            rows=rows,
        )
        return [c.id for c in copies]


class EbsSnapshotRetention(RetentionOperator):
    """How the retention of EBS snapshots (an ``ebs`` entry's, a Riak cluster's) re-reads and
    deletes them; the operator gives its ``hook`` (an EbsHook) and ``series`` (the ``backup:name``)."""

    series: str

    def reread(self, group: RetentionGroup, item: BackupItem) -> BackupItem | None:
        return self.reread_many(group, [item])[item.id]

    def reread_many(self, group: RetentionGroup, items: Sequence[BackupItem]) -> dict[str, BackupItem | None]:
        # one DescribeSnapshots for the snapshot about to go and the newest one
        found = {s.id: s.to_backup_item(self.series) for s in self.hook.find_snapshots(snapshot_ids=[i.id for i in items])}
        return {item.id: found.get(item.id) for item in items}

    def delete_item(self, group: RetentionGroup, item: BackupItem) -> bool:
        return self.hook.delete_snapshot(item.id)


class EbsRetentionOperator(EbsSnapshotRetention, AwsBaseOperator[EbsHook]):
    """
    Apply the retention policy to this entry's snapshots of one target, as of the run's logical
    date (:class:`~airflow_backup_provider.operators.retention.RetentionOperator`).

    Only snapshots tagged ``backup:created-by=airflow-backup-provider`` and ``backup:name=<name>``
    are judged; pending ones, the newest completed one and those dated after the logical date are
    kept whatever the policy says, and each is checked again on a fresh describe before its delete.

    :param listing: the target's snapshots as the snapshot task saw them (its ``listing`` XCom);
        when None, they are listed afresh. A snapshot missing from the listing is never deleted.
    :param states: ``{snapshot id: state}`` from the completion sensor, newer than the listing.
    :param copies: judge the copies in this operator's region (``copy_to``) instead: they are
        listed afresh by their tags (a copy's VolumeId is arbitrary) and only copies are judged.
    """

    aws_hook_class = EbsHook
    template_fields: Sequence[str] = aws_template_fields("target", "listing", "states", "dry_run")

    def __init__(
        self, *, target: str, name: str, listing: Any = None, states: Any = None, copies: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.name = name
        self.listing = listing
        self.states = states
        self.copies = copies

    def _snapshots(self) -> list[Snapshot]:
        if self.copies:
            tags = {TAG_NAME: self.name}
            if target_kind(self.target) == "volume":
                tags[TAG_VOLUME] = self.target
            return [s for s in self.hook.find_snapshots(tags) if s.copied_from]
        if self.listing is None:
            if target_kind(self.target) == "volume":
                return self.hook.find_snapshots(volume_ids=[self.target])
            return self.hook.find_snapshots({TAG_NAME: self.name})
        states = dict(self.states or {})
        snapshots = []
        for data in self.listing:
            snapshot = Snapshot.from_api(data)
            if snapshot.id in states and states[snapshot.id] != "missing":
                snapshot = Snapshot(**{**snapshot.__dict__, "state": states[snapshot.id]})
            snapshots.append(snapshot)
        return snapshots

    def list_groups(self, context: Any, as_of: datetime, dry_run: bool) -> list[RetentionGroup]:
        by_volume: dict[str, list[Snapshot]] = {}
        for snapshot in self._snapshots():
            by_volume.setdefault(snapshot.source_volume, []).append(snapshot)
        date_tag = format_logical_date(as_of)
        groups = []
        for volume_id in sorted(by_volume):
            items = [s.to_backup_item(self.name) for s in by_volume[volume_id]]
            # A dry run made no snapshot (nor copy): plan with the one the real run would make, or it prunes less.
            if dry_run and self._would_make(by_volume[volume_id], volume_id, date_tag):
                items.append(planned_backup(f"(new {'copy' if self.copies else 'snapshot'} of {volume_id})", as_of))
            groups.append(RetentionGroup(f"volume {volume_id}", items, context=by_volume[volume_id]))
        return groups

    def _would_make(self, snapshots: list[Snapshot], volume_id: str, date_tag: str) -> bool:
        if self.copies:
            return not has_good_snapshot_of(snapshots, date_tag)
        return decide_snapshot(snapshots, volume_id=volume_id, name=self.name, date_tag=date_tag).action == "create"

    @property
    def series(self) -> str:
        return self.name

    def outcome_node(self) -> str:
        return self.target

    def outcome_rows(self, context: Any, run: RetentionRun) -> list[dict[str, str]]:
        date_tag = format_logical_date(run.as_of)
        rows = []
        for group in run.groups.values():
            snapshots: list[Snapshot] = group.context
            mine = [s for s in snapshots if is_ours_for(s, self.name) and s.tags.get(TAG_LOGICAL_DATE) == date_tag]
            volume_id = group.label.removeprefix("volume ")
            rows.append(
                status_row(volume_id, mine[0], description=mine[0].description)
                if mine
                else status_row(volume_id, None, state="no snapshot for this date", date=date_tag)
            )
        self.log.info("status:\n%s", status_table(rows))
        return rows

    def result(self, context: Any, run: RetentionRun) -> dict[str, Any]:
        deleted = [i for i, gone in run.deleted.items() if gone]
        return {"kept": len(run.kept), "deleted": deleted, "would_delete": run.would_delete}


__all__ = ["EbsCopySnapshotsOperator", "EbsFindTargetsOperator", "EbsRetentionOperator", "EbsSnapshotOperator"]
