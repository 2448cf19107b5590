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
    "Snapshot",
    "SnapshotDecision",
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
