"""Pure EBS knowledge: the tags of our snapshots, volumes and snapshots as values, whether a
volume already has its snapshot for a logical date, the status table.

No Airflow and no AWS calls here: the hook (hooks/ebs.py) lists, the operators decide with this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_backup_provider.dates import TAG_TAKEN_AT, format_instant, parse_instant
from airflow_backup_provider.retention import BackupItem

TAG_CREATED_BY = "backup:created-by"
CREATED_BY = "airflow-backup-provider"
TAG_NAME = "backup:name"
TAG_VOLUME = "backup:volume"
TAG_LOGICAL_DATE = "backup:logical-date"
TAG_RUN_ID = "backup:run-id"
# on a copy in another region: the snapshot it was copied from, and that snapshot's region
TAG_SOURCE_SNAPSHOT = "backup:source-snapshot"
TAG_SOURCE_REGION = "backup:source-region"
RESERVED_TAG_PREFIX = "backup:"
# on a volume a restore made: the snapshot it holds and the run that made it (a re-run finds it)
TAG_RESTORED_FROM = "backup:restored-from"
TAG_RESTORE_RUN = "backup:restore-run"
# on a volume a restore took out: the volume that took its place (it is left for a person to remove)
TAG_REPLACED_BY = "backup:replaced-by"
# on both: the device it was (or is to be) attached at, so a later restore finds the place of a
# snapshot's volume that is no longer attached
TAG_DEVICE = "backup:device"


def format_logical_date(value: datetime) -> str:
    """The tag value of a logical date: UTC, ISO 8601, seconds precision (`2026-11-20T00:00:00+00:00`)."""
    if value.tzinfo is None:
        raise ValueError(f"field 'logical_date': value {value!r} must be timezone-aware")
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def parse_logical_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def backup_tags(
    *,
    name: str,
    logical_date: datetime,
    run_id: str,
    volume_id: str | None = None,
    extra: Mapping[str, str] | None = None,
    taken_at: datetime | None = None,
) -> dict[str, str]:
    """The tags of a snapshot made by this project. User tags may not override the `backup:` ones.
    `taken_at`: the wall clock when it is made (a late run's snapshot holds that day's data)."""
    tags: dict[str, str] = {}
    for key, value in (extra or {}).items():
        if key.startswith(RESERVED_TAG_PREFIX):
            raise ValueError(f"field 'tags': key {key!r} is reserved (tags starting with 'backup:' are ours)")
        tags[str(key)] = str(value)
    tags.update(
        {
            TAG_CREATED_BY: CREATED_BY,
            TAG_NAME: name,
            TAG_LOGICAL_DATE: format_logical_date(logical_date),
            TAG_RUN_ID: run_id,
        }
    )
    if volume_id:
        tags[TAG_VOLUME] = volume_id
    if taken_at is not None:
        tags[TAG_TAKEN_AT] = format_instant(taken_at)
    return tags


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_dict(resource: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def tag_filters(tags: Mapping[str, str | Iterable[str]]) -> list[dict[str, Any]]:
    """`{"backup:name": "x"}` -> EC2 `Filters` (a list value matches any of its values)."""
    return [
        {"Name": f"tag:{k}", "Values": [v] if isinstance(v, str) else list(v)} for k, v in tags.items()
    ]


@dataclass(frozen=True)
class Volume:
    id: str
    state: str
    size_gib: int | None = None
    instance_id: str | None = None
    device: str | None = None
    tags: dict[str, str] = field(default_factory=dict, compare=False)
    zone: str | None = None
    volume_type: str | None = None
    iops: int | None = None
    throughput: int | None = None
    encrypted: bool = False
    kms_key_id: str | None = None
    snapshot_id: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Volume:
        attachment = (data.get("Attachments") or [{}])[0]
        return cls(
            id=data["VolumeId"],
            state=data.get("State", ""),
            size_gib=data.get("Size"),
            instance_id=attachment.get("InstanceId"),
            device=attachment.get("Device"),
            tags=tag_dict(data),
            zone=data.get("AvailabilityZone"),
            volume_type=data.get("VolumeType"),
            iops=data.get("Iops"),
            throughput=data.get("Throughput"),
            encrypted=bool(data.get("Encrypted")),
            kms_key_id=data.get("KmsKeyId"),
            snapshot_id=data.get("SnapshotId") or None,
        )


@dataclass(frozen=True)
class Snapshot:
    id: str
    volume_id: str
    state: str  # pending | completed | error | recoverable | recovering
    start_time: datetime | None
    description: str = ""
    progress: str = ""
    state_message: str = ""
    size_gib: int | None = None
    tags: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Snapshot:
        start = data.get("StartTime")
        if isinstance(start, str):
            start = datetime.fromisoformat(start.replace("Z", "+00:00"))
        return cls(
            id=data["SnapshotId"],
            volume_id=data.get("VolumeId", ""),
            state=data.get("State", ""),
            start_time=start,
            description=data.get("Description", ""),
            progress=data.get("Progress", ""),
            state_message=data.get("StateMessage", ""),
            size_gib=data.get("VolumeSize"),
            tags=tag_dict(data),
        )

    @property
    def ours(self) -> bool:
        return self.tags.get(TAG_CREATED_BY) == CREATED_BY

    @property
    def logical_date(self) -> datetime | None:
        return parse_logical_date(self.tags.get(TAG_LOGICAL_DATE))

    @property
    def source_volume(self) -> str:
        """The volume it holds: our tag, else EBS's VolumeId (a copy's VolumeId is arbitrary,
        `vol-ffffffff`, so copies are told apart by the tag alone)."""
        return self.tags.get(TAG_VOLUME) or self.volume_id

    @property
    def copied_from(self) -> str | None:
        """The snapshot this one is a copy of (``copy_to``), None for a snapshot of a volume."""
        return self.tags.get(TAG_SOURCE_SNAPSHOT)

    @property
    def taken_at(self) -> datetime | None:
        """When it was really taken: our tag, else EBS's own start time (snapshots made before the tag)."""
        return parse_instant(self.tags.get(TAG_TAKEN_AT)) or (parse_instant(self.start_time) if self.start_time else None)

    def to_backup_item(self, name: str | None = None) -> BackupItem:
        """
        Retention's view. Ours means: our created-by tag, a logical-date tag, and (when `name` is
        given) made for that clusters-file entry; anything else is foreign and never pruned.
        """
        logical = self.logical_date
        created = logical or self.start_time or datetime(1970, 1, 1, tzinfo=UTC)
        ours = self.ours and logical is not None and (name is None or self.tags.get(TAG_NAME) == name)
        return BackupItem(
            id=self.id,
            created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
            complete=self.state == "completed",
            ours=ours,
            meta={"state": self.state, "volume_id": self.volume_id},
            taken_at=self.taken_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (for XCom)."""
        return {
            "SnapshotId": self.id,
            "VolumeId": self.volume_id,
            "State": self.state,
            "StartTime": self.start_time.isoformat() if self.start_time else None,
            "Description": self.description,
            "Progress": self.progress,
            "StateMessage": self.state_message,
            "VolumeSize": self.size_gib,
            "Tags": tag_list(self.tags),
        }



# A snapshot in `error` is not a backup: it neither blocks nor satisfies the day.
FAILED_STATES = frozenset({"error"})
STATUS_COLUMNS = ("volume", "snapshot", "state", "date", "taken at", "description")


@dataclass(frozen=True)
class SnapshotDecision:
    """What the snapshot task does for one volume: ``create`` or ``skip`` (with why)."""

    volume_id: str
    action: str  # "create" | "skip"
    reason: str
    existing: Snapshot | None = None  # this logical date's snapshot, when there is one
    blocking: tuple[Snapshot, ...] = field(default_factory=tuple)  # pending snapshots of other dates


def is_ours_for(snapshot: Snapshot, name: str) -> bool:
    """Created by this project for this clusters-file entry (another entry's snapshots are foreign)."""
    return snapshot.ours and snapshot.tags.get(TAG_NAME) == name


def decide_snapshot(listing: Iterable[Snapshot], *, volume_id: str, name: str, date_tag: str) -> SnapshotDecision:
    """
    The source script's rule, keyed on the logical date instead of today: skip a volume that
    already has this date's snapshot (pending or completed) or any pending snapshot at all.
    """
    of_volume = [s for s in listing if s.volume_id == volume_id]
    today = [
        s
        for s in of_volume
        if is_ours_for(s, name) and s.tags.get(TAG_LOGICAL_DATE) == date_tag and s.state not in FAILED_STATES
    ]
    if today:
        existing = sorted(today, key=lambda s: s.id)[0]
        return SnapshotDecision(
            volume_id,
            "skip",
            f"volume {volume_id} already has snapshot {existing.id} ({existing.state}) for logical date {date_tag}",
            existing=existing,
        )
    pending = tuple(sorted((s for s in of_volume if s.state == "pending"), key=lambda s: s.id))
    if pending:
        ids = ", ".join(s.id for s in pending)
        return SnapshotDecision(
            volume_id,
            "skip",
            f"volume {volume_id} has a snapshot still pending ({ids}); creating nothing for {date_tag}",
            blocking=pending,
        )
    return SnapshotDecision(volume_id, "create", f"volume {volume_id} has no snapshot for logical date {date_tag}")


def has_good_snapshot_of(snapshots: Iterable[Snapshot], date_tag: str) -> bool:
    """Whether one of `snapshots` holds the logical date `date_tag` and is not in `error`: a
    dry run that finds none plans with the one its real run would make."""
    return any(s.tags.get(TAG_LOGICAL_DATE) == date_tag and s.state not in FAILED_STATES for s in snapshots)


def copy_tags(source: Snapshot, source_region: str) -> dict[str, str]:
    """The tags of a copy: the source's own (ours, the user's) and where it was copied from."""
    return {**source.tags, TAG_SOURCE_SNAPSHOT: source.id, TAG_SOURCE_REGION: source_region}


def copies_to_make(sources: Iterable[Snapshot], copies: Iterable[Snapshot]) -> tuple[list[Snapshot], dict[str, Snapshot]]:
    """Which sources still need a copy, and the copies that exist already (by source id). A copy
    in `error` does not count: it is made again, as a failed snapshot is."""
    existing: dict[str, Snapshot] = {}
    for copy in sorted(copies, key=lambda c: c.id):
        if copy.copied_from and copy.state not in FAILED_STATES:
            existing.setdefault(copy.copied_from, copy)
    return [s for s in sources if s.id not in existing], existing


def status_row(volume_id: str, snapshot: Snapshot | None, *, state: str | None = None, date: str = "", description: str = "") -> dict[str, str]:
    """One line of the status table (volume, snapshot, state, date, taken at, description): the
    logical date and when the snapshot was really taken side by side."""
    if snapshot is None:
        return {"volume": volume_id, "snapshot": "-", "state": state or "-", "date": date, "taken at": "-", "description": description}
    taken = snapshot.taken_at
    return {
        "volume": volume_id,
        "snapshot": snapshot.id,
        "state": state or snapshot.state,
        "date": snapshot.tags.get(TAG_LOGICAL_DATE) or (snapshot.start_time.isoformat() if snapshot.start_time else date),
        "taken at": format_instant(taken) if taken else "-",
        "description": description or snapshot.description,
    }


def status_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] = STATUS_COLUMNS) -> str:
    """Fixed-width text table, as the source script printed it."""
    widths = [max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(row.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    return "\n".join(lines)


# ---- restore: which snapshot, the new volume, what it replaces ----------------------------------


class RestoreRefused(ValueError):
    """A restore that cannot be planned as asked: the message names the param and the value."""


# volume types whose IOPS (and, for gp3, throughput) are set rather than derived from the size
PROVISIONED_IOPS_TYPES = frozenset({"io1", "io2", "gp3"})
GONE_VOLUME_STATES = frozenset({"deleting", "deleted", "error"})
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _newest_first(snapshot: Snapshot) -> tuple[datetime, datetime, str]:
    return (snapshot.logical_date or _EARLIEST, snapshot.taken_at or _EARLIEST, snapshot.id)


def newest_logical_date(snapshots: Iterable[Snapshot]) -> datetime | None:
    """The newest logical date that has a completed snapshot (a node's set is restored by date)."""
    dates = [s.logical_date for s in snapshots if s.state == "completed" and s.logical_date]
    return max(dates) if dates else None


def choose_restore_snapshots(
    snapshots: Iterable[Snapshot],
    *,
    logical_date: datetime | None = None,
    snapshot_ids: Sequence[str] = (),
    volumes: Sequence[str] = (),
) -> dict[str, Snapshot]:
    """`{source volume: the snapshot to restore it from}`.

    `snapshot_ids`: exactly those, each completed. Otherwise, per source volume (only `volumes`
    when given), the newest completed snapshot of `logical_date`, or the newest completed overall
    when it is None. A volume asked for without such a snapshot is refused, naming it.
    """
    listing = list(snapshots)
    if snapshot_ids:
        by_id = {s.id: s for s in listing}
        chosen: dict[str, Snapshot] = {}
        for snapshot_id in snapshot_ids:
            snapshot = by_id.get(snapshot_id)
            if snapshot is None:
                raise RestoreRefused(f"param 'snapshot_ids': value {snapshot_id!r} is no snapshot of this entry")
            if snapshot.state != "completed":
                raise RestoreRefused(f"param 'snapshot_ids': snapshot {snapshot_id} is {snapshot.state}, not completed")
            if snapshot.source_volume in chosen:
                raise RestoreRefused(
                    f"param 'snapshot_ids': {chosen[snapshot.source_volume].id} and {snapshot_id} are both of "
                    f"volume {snapshot.source_volume}"
                )
            chosen[snapshot.source_volume] = snapshot
        missing = [v for v in volumes if v not in chosen]
        if missing:
            raise RestoreRefused(f"param 'volumes': {missing} have no snapshot among 'snapshot_ids' {list(snapshot_ids)}")
        return {v: chosen[v] for v in (volumes or sorted(chosen))}
    wanted = format_logical_date(logical_date) if logical_date else None
    candidates: dict[str, list[Snapshot]] = {}
    for snapshot in listing:
        if snapshot.state == "completed" and (wanted is None or snapshot.tags.get(TAG_LOGICAL_DATE) == wanted):
            candidates.setdefault(snapshot.source_volume, []).append(snapshot)
    asked = list(volumes) or sorted({s.source_volume for s in listing})
    when = f"of logical date {wanted}" if wanted else "at all"
    field_name = "logical_date" if wanted else "volumes"
    if not asked:
        raise RestoreRefused(f"param '{field_name}': there is no snapshot of this entry here {when}")
    missing = [v for v in asked if v not in candidates]
    if missing:
        raise RestoreRefused(f"param '{field_name}': no completed snapshot {when} of volume(s) {', '.join(missing)}")
    return {v: max(candidates[v], key=_newest_first) for v in asked}


def restore_tags(
    snapshot: Snapshot, *, source: Volume | None, run_id: str, series: str, device: str | None = None
) -> dict[str, str]:
    """The tags of a new volume: the source volume's own (not ours), where it came from, which run made it."""
    tags = {k: v for k, v in (source.tags if source else {}).items() if not k.startswith(RESERVED_TAG_PREFIX)}
    tags.update(
        {
            TAG_CREATED_BY: CREATED_BY,
            TAG_NAME: series,
            TAG_VOLUME: snapshot.source_volume,
            TAG_RESTORED_FROM: snapshot.id,
            TAG_RESTORE_RUN: run_id,
        }
    )
    if snapshot.tags.get(TAG_LOGICAL_DATE):
        tags[TAG_LOGICAL_DATE] = snapshot.tags[TAG_LOGICAL_DATE]
    if device:
        tags[TAG_DEVICE] = device
    return tags


def restore_volume_spec(
    snapshot: Snapshot,
    *,
    source: Volume | None,
    zone: str,
    tags: Mapping[str, str],
    size_gib: int | None = None,
    same_region: bool = True,
) -> dict[str, Any]:
    """The CreateVolume parameters of the volume restored from `snapshot`: the source volume's size
    (or `size_gib`, never smaller), type, IOPS and throughput, its encryption and KMS key (only in
    the source's own region: a key belongs to one region; a copy's volume takes the copy's key)."""
    floor = max(snapshot.size_gib or 0, (source.size_gib or 0) if source else 0)
    if size_gib is not None and size_gib < floor:
        raise RestoreRefused(f"param 'size_gib': value {size_gib} is smaller than the snapshot's volume ({floor} GiB)")
    spec: dict[str, Any] = {"AvailabilityZone": zone, "SnapshotId": snapshot.id}
    size = size_gib or floor
    if size:
        spec["Size"] = size
    if source is not None and source.volume_type:
        spec["VolumeType"] = source.volume_type
        if source.volume_type in PROVISIONED_IOPS_TYPES and source.iops:
            spec["Iops"] = source.iops
        if source.volume_type == "gp3" and source.throughput:
            spec["Throughput"] = source.throughput
    if source is not None and source.encrypted:
        spec["Encrypted"] = True
        if same_region and source.kms_key_id:
            spec["KmsKeyId"] = source.kms_key_id
    spec["TagSpecifications"] = [{"ResourceType": "volume", "Tags": tag_list(tags)}]
    return spec


def restored_by_run(volumes: Iterable[Volume], *, snapshot_id: str, run_id: str) -> Volume | None:
    """The volume this run already made from `snapshot_id` (a retry, a cleared task): made once."""
    mine = [
        v
        for v in volumes
        if v.tags.get(TAG_RESTORED_FROM) == snapshot_id
        and v.tags.get(TAG_RESTORE_RUN) == run_id
        and v.state not in GONE_VOLUME_STATES
    ]
    return min(mine, key=lambda v: v.id) if mine else None


def in_place_of(volume_id: str, volumes: Mapping[str, Volume]) -> Volume | None:
    """The attached volume now standing for `volume_id`: itself, or the one an earlier restore put in
    its place (following `backup:replaced-by`); None when the chain ends at a detached volume."""
    seen: set[str] = set()
    current = volumes.get(volume_id)
    while current is not None and current.id not in seen:
        if current.instance_id and current.state == "in-use":
            return current
        seen.add(current.id)
        current = volumes.get(current.tags.get(TAG_REPLACED_BY, ""))
    return None


def device_of(volume_id: str, volumes: Mapping[str, Volume]) -> str | None:
    """Where a snapshot's source volume belongs: its attachment, else the device a restore tagged."""
    volume = volumes.get(volume_id)
    if volume is None:
        return None
    return volume.device or volume.tags.get(TAG_DEVICE)


@dataclass(frozen=True)
class VolumeRestore:
    """One volume of a restore plan (a JSON record in XCom): which snapshot, the new volume's
    CreateVolume parameters, and, to replace, what stands in its place and where it is mounted."""

    source_volume: str
    snapshot_id: str
    logical_date: str
    spec: dict[str, Any]
    replaces: str | None = None
    instance_id: str | None = None
    device: str | None = None
    mount_point: str | None = None
    host: str | None = None
    port: int = 22
    node: str | None = None

    def as_record(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> VolumeRestore:
        return cls(**dict(record))


__all__ = [
    "CREATED_BY",
    "STATUS_COLUMNS",
    "TAG_CREATED_BY",
    "TAG_LOGICAL_DATE",
    "TAG_NAME",
    "TAG_RUN_ID",
    "TAG_SOURCE_REGION",
    "TAG_SOURCE_SNAPSHOT",
    "TAG_TAKEN_AT",
    "TAG_VOLUME",
    "TAG_DEVICE",
    "TAG_REPLACED_BY",
    "TAG_RESTORED_FROM",
    "TAG_RESTORE_RUN",
    "RestoreRefused",
    "Snapshot",
    "SnapshotDecision",
    "VolumeRestore",
    "choose_restore_snapshots",
    "device_of",
    "in_place_of",
    "newest_logical_date",
    "restore_tags",
    "restore_volume_spec",
    "restored_by_run",
    "Volume",
    "backup_tags",
    "copies_to_make",
    "copy_tags",
    "decide_snapshot",
    "has_good_snapshot_of",
    "format_logical_date",
    "is_ours_for",
    "parse_logical_date",
    "status_row",
    "status_table",
    "tag_dict",
    "tag_filters",
    "tag_list",
]


# ---- restore drills: scratch volumes on a drill instance --------------------------------------

TAG_DRILL_RUN = "backup:drill-run"  # `<dag id>/<run id>` on every scratch volume of a drill run
TAG_LAST_DRILL = "backup:last-drill"  # on a drilled snapshot: `<verdict>@<time>`
# attachment points a drill uses on its instance (not the root's, not the usual first data ones)
DRILL_DEVICES = tuple(f"/dev/sd{letter}" for letter in "ponmlkjihg")


def drill_run_tag(dag_id: str, run_id: str) -> str:
    return f"{dag_id}/{run_id}"[:256]


def drill_volume_tags(restore: Mapping[str, str], *, drill_run: str) -> dict[str, str]:
    """A scratch volume's tags: ours and where it came from, never the source's own (a selector
    such as an entry's `volume_tags` must not take a scratch volume for a live one)."""
    tags = {k: v for k, v in restore.items() if k.startswith(RESERVED_TAG_PREFIX)}
    tags[TAG_DRILL_RUN] = drill_run
    tags["Name"] = f"drill of {restore.get(TAG_VOLUME, '?')}"
    return tags


def free_drill_devices(used: Iterable[str | None], count: int) -> list[str]:
    """`count` attachment points of the drill instance that nothing uses (Xen names count as used)."""
    taken = {d for d in used if d} | {"/dev/" + xen for xen in (d.removeprefix("/dev/").replace("sd", "xvd", 1) for d in used if d)}
    free = [d for d in DRILL_DEVICES if d not in taken and d.replace("/dev/sd", "/dev/xvd") not in taken]
    if len(free) < count:
        raise RestoreRefused(f"field 'drill_instance_id': {count} volumes to attach, only {len(free)} free attachment points")
    return free[:count]


def last_drill_value(verdict: str, at: datetime) -> str:
    return f"{verdict}@{at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
