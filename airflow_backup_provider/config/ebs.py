"""EBS entries: daily snapshots of some volumes, rotated by the retention policy (DAG `ebs_<name>`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from airflow_backup_provider import names
from airflow_backup_provider.config.common import (
    AbsPath,
    Duration,
    EntryBase,
    Host,
    Identifier,
    KmsKey,
    RetentionPolicy,
    StrictModel,
    require_unique,
)

VolumeId = Annotated[str, AfterValidator(names.check_volume_id)]
InstanceId = Annotated[str, AfterValidator(names.check_instance_id)]
Region = Annotated[str, AfterValidator(names.check_region)]
Device = Annotated[str, AfterValidator(names.check_device)]


class VolumeMount(StrictModel):
    """Where a volume is mounted, for a restore in `replace` mode (unmount before, mount after)."""

    volume_id: VolumeId = Field(description="the volume (as the entry's snapshots name it)")
    host: Host = Field(description="the SSH address of the instance it is attached to")
    port: int = Field(22, ge=1, le=65535, description="SSH port")
    path: AbsPath = Field(description="its mount point")


class SnapshotCopy(StrictModel):
    """A copy of every snapshot in another region (CopySnapshot), with that region's own retention."""

    region: Region = Field(description="the region the copies go to")
    kms_key_id: KmsKey | None = Field(
        None, description="encrypt the copies with this key of that region (default: as the source)"
    )
    retention: RetentionPolicy | None = Field(None, description="that region's retention (default: the entry's)")
    timeout: Duration = Field(
        timedelta(hours=24),
        description="how long the copies may stay pending (a first, full copy of a large volume takes hours)",
    )


class SnapshotCopies(StrictModel):
    """What `ebs` and `riak` entries share: the regions their snapshots are copied to."""

    copy_to: list[SnapshotCopy] = Field(
        default_factory=list,
        description="after each snapshot completes, copy it into each of these regions, tags carried over",
    )

    @model_validator(mode="after")
    def _one_copy_per_region(self) -> SnapshotCopies:
        regions = [c.region for c in self.copy_to]
        require_unique("copy_to", regions)
        own = getattr(self, "region", None)
        if own is not None and own in regions:
            raise ValueError(f"field 'copy_to': value {own!r} is the entry's own region")
        return self


DRILL_CHECK_FIELDS = ("device", "mount_point", "volume", "snapshot")


def check_drill_argv(argv: list[str]) -> list[str]:
    """A `drill_check` argv: words with only the known `{placeholders}` (each word is quoted as one)."""
    if not argv or not argv[0].strip():
        raise ValueError("needs a program as its first word")
    for word in argv:
        try:
            word.format(**dict.fromkeys(DRILL_CHECK_FIELDS, "x"))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"word {word!r}: only the placeholders {{{'}, {'.join(DRILL_CHECK_FIELDS)}}} may be used ({exc})") from exc
    return argv


class VolumeDrill(StrictModel):
    """What `ebs` and `riak` entries share for their restore drill (`<kind>_<name>_drill`): a scratch
    volume from each snapshot, attached to a drill instance that is none of the entry's own."""

    drill_instance_id: InstanceId | None = Field(
        None,
        description="the EC2 instance the drill attaches its scratch volumes to (never a live node); "
        "null: no drill DAG. Its address is `drill_host` (reached over ssh_conn_id)",
    )
    drill_availability_zone: Annotated[str, AfterValidator(names.check_zone)] | None = Field(
        None, description="where the scratch volumes are made (the drill instance's zone); default: each source volume's"
    )
    drill_check: Annotated[list[str], AfterValidator(check_drill_argv)] | None = Field(
        None,
        description="the check command's argv, run on drill_host with {device} {mount_point} {volume} {snapshot} "
        "filled in (each word quoted); the volume is mounted read-only at {mount_point} first unless the command "
        "names {device} and not {mount_point} (as `fsck -n {device}`); default: mount read-only and list it",
    )

    def check_drill_instance(self, live: dict[str, str]) -> None:
        """`live`: {instance id: the field naming it}; a drill must never attach to one of them."""
        if self.drill_instance_id is None:
            return
        if self.drill_instance_id in live:
            raise ValueError(
                f"field 'drill_instance_id': value {self.drill_instance_id!r} is {live[self.drill_instance_id]}: "
                "a drill must never touch a live node"
            )
        if getattr(self, "drill_host", None) is None and getattr(self, "drill_schedule", None) is not None:
            raise ValueError(
                f"field 'drill_host': needed with drill_instance_id {self.drill_instance_id!r}: the drill instance's SSH address"
            )


class EbsPolicy(EntryBase, SnapshotCopies, VolumeDrill):
    """Daily EBS snapshots of some volumes, rotated by the `retention` policy (DAG `ebs_<name>`)."""

    kind: Literal["ebs"] = "ebs"
    volume_ids: list[VolumeId] = Field(default_factory=list, description="volumes to snapshot, by id")
    volume_tags: dict[Identifier, str] = Field(
        default_factory=dict, description="also snapshot every volume carrying all these tags"
    )
    instance_id: InstanceId | None = Field(
        None, description="snapshot every volume attached to this instance, crash-consistent (CreateSnapshots)"
    )
    tags: dict[Identifier, str] = Field(default_factory=dict, description="extra tags on every snapshot")
    region: Identifier | None = Field(None, description="AWS region; default: the connection's")
    snapshot_description: str = Field(
        "", max_length=200, description="snapshot description; default 'airflow-backup <name> <volume> <date>'"
    )
    snapshot_timeout: Duration = Field(
        timedelta(hours=6), description="how long a snapshot may stay pending before the run fails"
    )
    mounts: list[VolumeMount] = Field(
        default_factory=list,
        description="mount points of the volumes: a restore in replace mode unmounts them before the swap "
        "and mounts the new volumes after it",
    )
    restore_timeout: Duration = Field(
        timedelta(hours=2), description="how long a restored volume may take to become available or attached"
    )

    @field_validator("tags")
    @classmethod
    def _not_our_tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.startswith("backup:"):
                raise ValueError(f"key {key!r} is reserved: tags starting with 'backup:' are set by the DAG")
        return value

    @model_validator(mode="after")
    def _some_target(self) -> EbsPolicy:
        if not (self.volume_ids or self.volume_tags or self.instance_id):
            raise ValueError("needs one of volume_ids, volume_tags or instance_id")
        require_unique("volume_ids", self.volume_ids)
        require_unique("mounts", [m.volume_id for m in self.mounts])
        self.check_drill_instance({self.instance_id: "the entry's instance_id"} if self.instance_id else {})
        return self
