"""The clusters file: typed models, loading and validation.

One YAML file describes every backup this deployment runs::

    defaults:            # applied to every entry unless the entry sets the field itself
      alert_emails: [oncall@example.com]
      schedule: "@daily"
    entries:
      - kind: riak
        name: prod
        nodes: [...]

Loading never lets one broken entry hide the others: :func:`load_clusters_file` returns the
valid entries and, separately, one :class:`EntryError` per broken entry naming its fields and values.
"""

from __future__ import annotations

import functools
import math
import os
import re
import reprlib
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

CLUSTERS_FILE_ENV = "BACKUP_CLUSTERS_FILE"
DEFAULT_CLUSTERS_FILE = Path(__file__).resolve().parent.parent / "dags" / "clusters.yaml"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# A hostname (RFC 1123 labels), an IPv4 address or a bracket-free IPv6 address. Nothing else
# (spaces, quotes, `;`, `$`, `/`) can ever reach a command line or a URL.
_HOST_RE = re.compile(
    r"^(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
    r"|^[0-9A-Fa-f:]{2,39}\Z"
)
_EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\Z")
_DURATION_RE = re.compile(r"^\s*(\d{1,20})\s*(s|m|h|d|w)\s*\Z")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SAFE_PATH_RE = re.compile(r"^/[A-Za-z0-9_./@+-]*\Z")
_IDENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@:+-]{0,127}\Z")


class ClustersFileError(ValueError):
    """The clusters file as a whole cannot be read (missing, not YAML, not a mapping)."""


# What one error message may quote of a value: the UI's import errors and the logs stay readable,
# and quoting never walks a huge (or self-containing) value.
QUOTE_LIMIT = 200


def _clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _BoundedRepr(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 8
        self.maxstring = self.maxother = QUOTE_LIMIT

    def repr1(self, x: Any, level: int) -> str:
        if isinstance(x, dict) and type(x) is not dict:  # the loader's mapping: bounded like a dict
            return self.repr_dict(x, level)
        return super().repr1(x, level)

    def repr_str(self, x: str, level: int) -> str:
        return repr(x[: self.maxstring + 1])

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:  # repr() of a huge int is slow, and refused beyond 4300 digits
            return f"<an integer of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return repr(x)


_REPR = _BoundedRepr()


def _quote(value: Any) -> str:
    """repr() of `value`, at most QUOTE_LIMIT characters, ending in '…' when cut."""
    return _clip(_REPR.repr(value))


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            "must start with a letter or digit and contain only letters, digits, '_', '-', '.' (at most 64)"
        )
    return value


def _check_host(value: str) -> str:
    if not _HOST_RE.match(value):
        raise ValueError("is not a hostname or IP address")
    return value


def _check_email(value: str) -> str:
    if not _EMAIL_RE.match(value):
        raise ValueError("is not an e-mail address")
    return value


def _check_abs_path(value: str) -> str:
    if not _SAFE_PATH_RE.match(value) or "/../" in f"{value}/":
        raise ValueError("must be an absolute path of letters, digits and _ . / @ + - (no '..')")
    return value


def _check_identifier(value: str) -> str:
    if not _IDENT_RE.match(value):
        raise ValueError("must contain only letters, digits and _ . @ : + -")
    return value


# Every duration fits this (the date arithmetic of the DAGs and of retention stays far from
# timedelta's limits); a field whose meaning gives a smaller maximum declares it (RetryDelay).
MAX_DURATION = timedelta(days=36525)  # 100 years
# Airflow caps every retry delay at [core] max_task_retry_delay (default 24 h): more means nothing.
MAX_RETRY_DELAY = timedelta(hours=24)
_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(value: Any) -> timedelta:
    """`30s`, `5m`, `2h`, `7d`, `1w`, a number of seconds, or a timedelta; at most MAX_DURATION.

    Raises only ValueError (never OverflowError), so that a huge value stays a validation
    error of its entry.
    """
    if isinstance(value, bool):
        raise ValueError("is not a duration")
    if isinstance(value, timedelta):
        seconds: float = value.total_seconds()
    elif isinstance(value, int):
        seconds = value  # compared as an int: a huge one must not reach float()
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("is not a finite number of seconds")
        seconds = value
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        unit = _DURATION_UNITS[match.group(2)]
        seconds = int(match.group(1)) * _UNIT_SECONDS[unit]  # a Python int: never overflows
    else:
        raise ValueError("is not a duration like '30s', '5m', '2h', '7d' or a number of seconds")
    if seconds < 0:
        raise ValueError("must not be negative")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"must be at most {_format_duration(MAX_DURATION)} (100 years)")
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


@functools.lru_cache(maxsize=256)
def _schedule_problem(value: str) -> str | None:
    """Why Airflow would refuse `value` as a DAG's schedule, or None.

    Builds the timetable with the function `DAG(schedule=...)` uses and validates it as the
    DagBag does; then asks croniter for the next time, as the scheduler does (a cron expression
    that never fires, like `0 0 30 2 *`, passes validate() but fails there).
    """
    import pendulum
    from airflow.sdk.definitions.dag import _create_timetable
    from airflow.sdk.exceptions import AirflowTimetableInvalid
    from croniter import CroniterBadDateError, croniter

    try:
        timetable = _create_timetable(value, pendulum.UTC)
        timetable.validate()
    except (AirflowTimetableInvalid, ValueError) as exc:  # croniter's errors are ValueErrors
        return _clip(str(exc) or type(exc).__name__, 150)
    expression = getattr(timetable, "expression", None)  # cron timetables (presets resolved)
    try:
        if expression is not None:
            croniter(expression).get_next(datetime)
    except (CroniterBadDateError, OverflowError):
        return "it never fires"
    return None


def check_schedule(value: str | None, *, example: str) -> str | None:
    """A cron expression, a preset (`@daily`), or None (manual only), as Airflow parses it."""
    if value is None:
        return value
    problem = _schedule_problem(value)
    if problem is not None:
        raise ValueError(
            f"is not a schedule Airflow accepts ({problem}): use a cron expression, a preset like {example!r}, or null"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Host = Annotated[str, AfterValidator(_check_host)]
Email = Annotated[str, AfterValidator(_check_email)]
AbsPath = Annotated[str, AfterValidator(_check_abs_path)]
Identifier = Annotated[str, AfterValidator(_check_identifier)]

# a key id, alias/NAME, or the ARN of either
_KMS_KEY_RE = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:)?(key/[A-Za-z0-9-]{1,128}|alias/[A-Za-z0-9/_-]{1,250})\Z"
    r"|^[A-Za-z0-9-]{1,128}\Z"
)


def _check_kms_key(value: str) -> str:
    if not _KMS_KEY_RE.match(value):
        raise ValueError("must be a KMS key id, alias/NAME, or the ARN of a key or alias")
    return value


KmsKey = Annotated[str, AfterValidator(_check_kms_key)]


class Duration(timedelta):
    """A timedelta that pydantic reads from `5m`-style strings, at most MAX_DURATION."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            parse_duration,
            # JSON shows "0:05:00"; model_dump() keeps the timedelta, so defaults pass into entries
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )


def _at_most(maximum: timedelta, why: str) -> AfterValidator:
    def check(value: timedelta) -> timedelta:
        if value > maximum:
            raise ValueError(f"must be at most {_format_duration(maximum)} ({why})")
        return value

    return AfterValidator(check)


RetryDelay = Annotated[Duration, _at_most(MAX_RETRY_DELAY, "Airflow's max_task_retry_delay")]
PokeInterval = Annotated[Duration, _at_most(timedelta(hours=24), "a sensor looks at least once a day")]


class StrictModel(BaseModel):
    """Unknown keys are typos: refuse them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionPolicy(StrictModel):
    """restic `forget` semantics: rules ORed, newest item per calendar bucket."""

    keep_last: int | None = Field(None, ge=0, description="keep the newest N backups")
    keep_hourly: int | None = Field(None, ge=0)
    keep_daily: int | None = Field(None, ge=0)
    keep_weekly: int | None = Field(None, ge=0)
    keep_monthly: int | None = Field(None, ge=0)
    keep_yearly: int | None = Field(None, ge=0)
    keep_within: Duration | None = Field(
        None, description="keep every backup strictly newer than (the newest backup - this), as restic --keep-within"
    )

    def is_empty(self) -> bool:
        return all(getattr(self, f) is None for f in type(self).model_fields)


class CommonSettings(StrictModel):
    """Settings that `defaults` supplies and any entry may override."""

    owner: str = "backup"
    alert_emails: list[Email] = Field(default_factory=list)
    alert_on_retry: bool = False
    alert_from: Email = "airflow-backup@localhost"
    schedule: str | None = "@daily"
    catchup: bool = False
    start_date: datetime = datetime(2026, 1, 1)
    retries: int = Field(2, ge=0, le=20)
    retry_delay: RetryDelay = timedelta(minutes=5)
    ssh_conn_id: Identifier = "backup_ssh"
    aws_conn_id: Identifier = "aws_default"
    smtp_conn_id: Identifier = "smtp_default"
    retention: RetentionPolicy = RetentionPolicy(keep_last=7)
    gate_timeout: Duration = Field(timedelta(hours=1), description="how long a health gate may wait")
    poke_interval: PokeInterval = Field(timedelta(seconds=30), description="how often sensors look")
    other_runs_timeout: Duration = Field(
        timedelta(days=1), description="how long a run may wait for another run of its DAG (a backfill's) to end"
    )
    deferrable: bool = Field(True, description="sensors hand their wait to the triggerer")
    sudo_user: Identifier | None = Field(None, description="run node commands as this user via sudo")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value, example="@daily")

    @field_validator("start_date")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        from datetime import UTC

        return value if value.tzinfo else value.replace(tzinfo=UTC)


class Defaults(CommonSettings):
    pass


class EntryBase(CommonSettings):
    kind: ClassVar[str]
    name: Name
    description: str = ""

    def dag_id(self, suffix: str = "") -> str:
        return f"{self.kind}_{self.name}{suffix}"


class Node(StrictModel):
    """A machine reached over SSH (`host`), optionally named differently inside the data store."""

    host: Host
    port: int = Field(22, ge=1, le=65535)


# --- per-kind entries. Each kind's issue owns its class below. ---------------------------------


class RiakNode(Node):
    node_name: Identifier | None = Field(None, description="the Erlang node name, e.g. riak@10.0.0.1")
    instance_id: Identifier = Field(description="the EC2 instance whose volumes are snapshotted")

    @field_validator("node_name")
    @classmethod
    def _erlang_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z0-9_.+-]+@[A-Za-z0-9_.:-]+\Z", value):
            raise ValueError("is not an Erlang node name like 'riak@10.0.0.1'")
        return value

    @property
    def erlang_name(self) -> str:
        return self.node_name or f"riak@{self.host}"


class RiakCluster(EntryBase):
    """A Riak KV cluster backed up one node at a time: stop, EBS-snapshot, start, health gates."""

    kind: ClassVar[str] = "riak"
    nodes: list[RiakNode] = Field(min_length=1, description="the nodes, in the order they are backed up")
    region: Identifier | None = Field(None, description="AWS region of the instances (default: the connection's)")
    service_timeout: Duration = Field(
        timedelta(minutes=10), description="how long `riak-admin wait-for-service riak_kv` may wait after a start"
    )
    node_down_retry_delay: RetryDelay = Field(
        timedelta(seconds=30),
        description="retry delay of the tasks that run while a node is stopped (snapshot, start): the node "
        "stays down while they wait, so it is short",
    )

    @model_validator(mode="after")
    def _unique_nodes(self) -> RiakCluster:
        _require_unique("nodes", [n.host for n in self.nodes])
        _require_unique("nodes", [n.erlang_name for n in self.nodes])
        _require_unique("nodes", [n.instance_id for n in self.nodes])
        return self


_VOLUME_ID_RE = re.compile(r"^vol-[0-9a-f]{8,17}\Z")
_INSTANCE_ID_RE = re.compile(r"^i-[0-9a-f]{8,17}\Z")


def _check_volume_id(value: str) -> str:
    if not _VOLUME_ID_RE.match(value):
        raise ValueError("is not an EBS volume id like 'vol-0123456789abcdef0'")
    return value


def _check_instance_id(value: str) -> str:
    if not _INSTANCE_ID_RE.match(value):
        raise ValueError("is not an EC2 instance id like 'i-0123456789abcdef0'")
    return value


VolumeId = Annotated[str, AfterValidator(_check_volume_id)]
InstanceId = Annotated[str, AfterValidator(_check_instance_id)]


class EbsPolicy(EntryBase):
    """Daily EBS snapshots of some volumes, rotated by the `retention` policy (DAG `ebs_<name>`)."""

    kind: ClassVar[str] = "ebs"
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
        _require_unique("volume_ids", self.volume_ids)
        return self


_CASSANDRA_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,48}\Z")
_NODETOOL_RE = re.compile(r"^(?:[A-Za-z0-9_.+-]+|/[A-Za-z0-9_./@+-]+)\Z")


def _check_keyspace(value: str) -> str:
    if not _CASSANDRA_NAME_RE.match(value):
        raise ValueError("is not a Cassandra keyspace name (1 to 48 letters, digits or '_')")
    return value


def _check_table_ref(value: str) -> str:
    parts = value.split(".")
    if len(parts) > 2 or not all(_CASSANDRA_NAME_RE.match(p) for p in parts):
        raise ValueError("is not a Cassandra table name: 'table' or 'keyspace.table' (letters, digits, '_')")
    return value


def _check_restore_folder(value: str) -> str:
    _check_abs_path(value.replace("{host}", "host"))
    if value.rstrip("/") == "":
        raise ValueError("must not be '/'")
    return value


def _check_command(value: str) -> str:
    if not _NODETOOL_RE.match(value) or "/../" in f"{value}/":
        raise ValueError("must be a command name or an absolute path (letters, digits, _ . / @ + -)")
    return value


Keyspace = Annotated[str, AfterValidator(_check_keyspace)]
TableRef = Annotated[str, AfterValidator(_check_table_ref)]


class CassandraNode(Node):
    data_dir: AbsPath | None = Field(None, description="this node's data folder, when not the cluster's data_dir")
    commitlog_dir: AbsPath | None = Field(None, description="this node's commit log folder (named in restore steps)")


class CassandraCluster(EntryBase):
    kind: ClassVar[str] = "cassandra"
    nodes: list[CassandraNode] = Field(min_length=1)
    data_dir: AbsPath = Field("/var/lib/cassandra/data", description="Cassandra's data_file_directories")
    commitlog_dir: AbsPath = Field("/var/lib/cassandra/commitlog", description="named in the restore steps")
    bucket: Identifier
    prefix: Identifier = "cassandra"
    nodetool: Annotated[str, AfterValidator(_check_command)] = Field(
        "nodetool", description="nodetool on the nodes: a name on their PATH or an absolute path"
    )
    keyspaces: list[Keyspace] = Field(default_factory=list, description="back up only these (empty: all)")
    exclude_keyspaces: list[Keyspace] = Field(default_factory=list)
    tables: list[TableRef] = Field(default_factory=list, description="back up only these `ks.table` (empty: all)")
    exclude_tables: list[TableRef] = Field(default_factory=list)
    sse: Literal["AES256", "aws:kms"] = Field("AES256", description="S3 server-side encryption")
    kms_key_id: KmsKey | None = Field(None, description="KMS key for sse aws:kms (implies aws:kms)")
    compression_level: int = Field(
        1, ge=1, le=19, description="zstd level (1: fastest; SSTables are already compressed by Cassandra)"
    )
    max_parallel_uploads: int = Field(3, ge=1, le=64, description="nodes uploading at the same time")
    upload_pool: Identifier | None = Field(None, description="an Airflow pool that also bounds uploads")
    upload_threads: int = Field(4, ge=1, le=32, description="files in flight per node")
    s3_attempts: int = Field(5, ge=1, le=20, description="tries per S3 object (tenacity)")
    remove_uploaded_incrementals: bool = Field(
        False, description="after a verified upload, delete the uploaded files from backups/"
    )
    verify_checksums: bool = Field(False, description="verify re-reads every object and checks its SHA-256")
    restore_folder: Annotated[str, AfterValidator(_check_restore_folder)] = Field(
        "/tmp/cassandra_restore", description="default restore folder; `{host}` becomes the node's host"
    )

    @model_validator(mode="after")
    def _unique_nodes(self) -> CassandraCluster:
        _require_unique("nodes", [n.host for n in self.nodes])
        return self

    def node_data_dir(self, node: CassandraNode) -> str:
        return node.data_dir or self.data_dir


class DevicedbNode(Node):
    """A devicedb node: reached over SSH at `host`:`port`, serving its HTTP API on `http_port`."""

    http_port: int = Field(8080, ge=1, le=65535, description="the node's cluster HTTP port")
    http_host: Host | None = Field(
        None,
        description="the address the HTTP API listens on, if not `host` (with ssh_tunnel: as seen from the node; default localhost)",
    )
    store_dir: AbsPath | None = Field(None, description="this node's -store folder (default: the cluster's store_dir)")
    snapshot_dir: AbsPath | None = Field(
        None, description="this node's -snapshot_store folder (default: the cluster's snapshot_dir)"
    )


_SERVICE_WORD_RE = re.compile(r"^[A-Za-z0-9_./@%+=:,-]+\Z")


def _check_service_argv(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("must be a non-empty argv list")
    for word in value:
        if not _SERVICE_WORD_RE.match(word):
            raise ValueError(f"word {word!r} must contain only letters, digits and _ . / @ % + = : , -")
    return value


ServiceArgv = Annotated[list[str], AfterValidator(_check_service_argv)]


class DevicedbCluster(EntryBase):
    kind: ClassVar[str] = "devicedb"
    nodes: list[DevicedbNode] = Field(min_length=1)
    bucket: Identifier = Field(description="the S3 bucket the node tars and manifests go to")
    prefix: Identifier = Field("devicedb", description="S3 key prefix: <prefix>/<cluster>/<uuid>/<node>.tar")
    store_dir: AbsPath = Field("/var/lib/devicedb/store", description="each node's -store folder")
    snapshot_dir: AbsPath | None = Field(
        None, description="each node's -snapshot_store folder (needed for cleanup_local_snapshots)"
    )
    missing_grace: Duration = Field(
        timedelta(minutes=5),
        description="how long a node may report `missing` (or not answer) after the trigger before it is a failure",
    )
    http_timeout: Duration = Field(timedelta(seconds=30), description="connect/read timeout of one HTTP call")
    ssh_tunnel: bool = Field(False, description="reach each node's HTTP port through an SSH tunnel (ssh_conn_id)")
    part_size_mb: int = Field(16, ge=5, le=5120, description="S3 multipart part size in MiB")
    verify_upload: bool = Field(True, description="read every uploaded tar back from S3 and check its SHA-256")
    cleanup_local_snapshots: bool = Field(
        False,
        description="after a verified upload, delete the node's <snapshot_dir>/snapshot-<uuid>-<nodeID> folder (and the run's orphaned snapshots) over SSH",
    )
    spool_dir: AbsPath | None = Field(
        None,
        description="worker folder each node tar is read into at the network's speed before its upload (devicedb cuts a response after 45 s); default: the worker's temp folder",
    )
    spool_max_bytes: int = Field(
        64 * 1024**3,
        ge=1024**2,
        description="the largest node tar the spool takes (bytes); a bigger one fails the upload at once",
    )
    check_site: Identifier | None = Field(
        "airflow-backup",
        description="site of the key written before each snapshot and read back after a restore (null: no key check)",
    )
    check_bucket: Literal["default", "lww", "cloud", "local"] = "lww"
    check_key: Identifier = "airflow-backup-check"
    membership_check: Literal["required", "best_effort", "off"] = Field(
        "best_effort",
        description="after a restore, compare the node ids every node reports (GET /cluster, as `devicedb cluster overview`)",
    )
    service_stop_command: ServiceArgv = Field(["systemctl", "stop", "devicedb"], description="argv that stops a node")
    service_start_command: ServiceArgv = Field(["systemctl", "start", "devicedb"], description="argv that starts a node")
    service_status_command: ServiceArgv = Field(
        ["systemctl", "is-active", "devicedb"],
        description="argv that exits 0 and prints service_running_output while a node runs",
    )
    service_running_output: str = Field(
        "active", min_length=1, description="the line service_status_command prints while a node runs"
    )
    transfer_dir: AbsPath | None = Field(
        None,
        description="where the restore uploads each node's tar (over SFTP, as the SSH user) before extracting it; default: beside the store",
    )
    keep_old_stores: bool = Field(
        True, description="after a verified restore, keep each node's previous store beside the new one"
    )
    start_timeout: Duration = Field(timedelta(minutes=10), description="how long restarted nodes may take to answer")

    @model_validator(mode="after")
    def _unique_nodes(self) -> DevicedbCluster:
        _require_unique("nodes", [f"{n.host}:{n.http_port}" for n in self.nodes])
        if self.cleanup_local_snapshots and not (self.snapshot_dir or all(n.snapshot_dir for n in self.nodes)):
            raise ValueError("cleanup_local_snapshots needs snapshot_dir (the nodes' -snapshot_store folder)")
        if self.cleanup_local_snapshots and not self.verify_upload:
            # the local copy is deleted only after its upload was read back and matched
            raise ValueError("cleanup_local_snapshots needs verify_upload: true")
        return self

    def node_store_dir(self, node: DevicedbNode) -> str:
        return node.store_dir or self.store_dir

    def node_snapshot_dir(self, node: DevicedbNode) -> str | None:
        return node.snapshot_dir or self.snapshot_dir


_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}\Z")
_CONN_FIELD_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.(login|password|host|port|schema|extra\.[A-Za-z0-9_-]+)\Z")
_PASSWORD_ARG_RE = re.compile(
    r"(?i)^--?[a-z_-]*(password|passwd|passwort|pwd|pass|secret|token)=."  # --password=, --db-pass=, -pwd=
    r"|^[a-z][a-z0-9+.-]*://[^/@:\s]+:[^/@\s]+@"  # scheme://user:secret@host
    r"|^[A-Z_][A-Z0-9_]*(PASSWORD|PASSWD|PWD|PASS|SECRET|TOKEN)[A-Z0-9_]*=."  # env PGPASSWORD=... cmd
)
# a flag whose value is the next argument
_PASSWORD_FLAG_RE = re.compile(r"(?i)^--?[a-z_-]*(password|passwd|pwd|pass|secret|token)$")
# MySQL's clients take the password glued to -p (-pSECRET); -p alone prompts
_MYSQL_TOOLS = frozenset({"mysql", "mysqldump", "mysqlpump", "mysqlsh", "mariadb", "mariadb-dump", "mydumper"})
_BUP_PERIOD_RE = re.compile(r"^(?:\d+(?:s|min|h|d|w|m|y)|forever)\Z")


def _check_plain_arg(value: str) -> str:
    if "\x00" in value or "\n" in value:
        raise ValueError("must not contain NUL or newline characters")
    return value


PlainArg = Annotated[str, AfterValidator(_check_plain_arg)]


class BupDump(StrictModel):
    """One pre-backup dump: `argv` runs on the host and its standard output becomes one file."""

    name: Name = Field(description="names the dump in logs and the report")
    argv: list[PlainArg] = Field(
        min_length=1, description="the dump command as an argument list, e.g. [sqlite3, /db/app.db, .dump]"
    )
    output: str = Field(description="file name in staging_dir that receives the command's stdout")
    env_from_connection: dict[str, str] = Field(
        default_factory=dict,
        description="environment for the command, taken from Airflow connections at run time: "
        "{MYSQL_PWD: 'mysql_backup.password'} (fields: login, password, host, port, schema, extra.KEY)",
    )
    timeout: Duration = Field(timedelta(hours=2), description="how long the dump may stay silent")

    @field_validator("argv")
    @classmethod
    def _no_password(cls, value: list[str]) -> list[str]:
        mysql = PurePosixPath(value[0]).name in _MYSQL_TOOLS
        for position, arg in enumerate(value):
            glued = mysql and len(arg) > 2 and arg.startswith("-p") and not arg.startswith("--")
            valued_flag = (
                _PASSWORD_FLAG_RE.match(arg) and position + 1 < len(value) and not value[position + 1].startswith("-")
            )
            if _PASSWORD_ARG_RE.search(arg) or glued or valued_flag:
                position += 1 if valued_flag else 0
                raise ValueError(
                    f"argument #{position} carries a password (not repeated here): the clusters file holds none; "
                    "use env_from_connection (e.g. MYSQL_PWD, PGPASSWORD) instead"
                )
        return value

    @field_validator("output")
    @classmethod
    def _output(cls, value: str) -> str:
        if not _FILE_NAME_RE.match(value):
            raise ValueError("must be a plain file name (letters, digits, _ . + -), not a path")
        return value

    @field_validator("env_from_connection")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if not _ENV_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if not _CONN_FIELD_RE.match(source):
                raise ValueError(
                    f"{name}: {source!r} must be 'CONN_ID.FIELD' (login, password, host, port, schema, extra.KEY)"
                )
        return value


def _check_not_root(value: str | None) -> str | None:
    if value is not None and value.strip("/") == "":
        raise ValueError("must be a folder of its own, not the root folder '/'")
    return value


# a folder the project writes to or syncs as a whole (the S3 sync of '/' walks the whole disk)
OwnFolder = Annotated[AbsPath, AfterValidator(_check_not_root)]


class BupServer(StrictModel):
    """The backup server holding the repository; bup reaches it over SSH from the host."""

    host: Host
    repo_dir: OwnFolder = Field(description="the repository directory on the server (one per entry)")
    user: Identifier | None = Field(None, description="SSH user for `bup -r user@host:path` and server tasks")
    port: int = Field(22, ge=1, le=65535)
    ssh_conn_id: Identifier | None = Field(
        None, description="Airflow connection for prune/fsck on the server (default: the entry's)"
    )


class BupPruneOlder(StrictModel):
    """`bup prune-older` keep periods, used when prune_mode is `prune-older`."""

    keep_all_for: str | None = None
    keep_dailies_for: str | None = None
    keep_monthlies_for: str | None = None
    keep_yearlies_for: str | None = None

    @field_validator("keep_all_for", "keep_dailies_for", "keep_monthlies_for", "keep_yearlies_for")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is not None and not _BUP_PERIOD_RE.match(value):
            raise ValueError("must be a bup period like 7d, 12h, 4w, 6m, 1y, 30min or forever")
        return value

    @model_validator(mode="after")
    def _one(self) -> BupPruneOlder:
        if not any((self.keep_all_for, self.keep_dailies_for, self.keep_monthlies_for, self.keep_yearlies_for)):
            raise ValueError("needs at least one keep_*_for period")
        return self


class BupS3Sync(StrictModel):
    """The weekly rsync-like copy of the repository directory to S3."""

    bucket: Identifier
    prefix: str = Field("bup", description="key prefix; the entry's repository goes under PREFIX/NAME/")
    schedule: str | None = Field(
        "0 3 * * 6", description="cron or preset for bup_<name>_s3_sync (default Saturdays 03:00), or null"
    )
    on_backup: bool = Field(False, description="also run after every successful backup (its Asset)")
    delete: bool = Field(False, description="delete objects whose file is gone from the repository")
    compare: Literal["size_mtime", "checksum"] = "size_mtime"
    concurrency: int = Field(16, ge=1, le=256)
    queue: Identifier | None = Field(
        None, description="Celery queue of a worker on the backup server (the sync reads the repository)"
    )

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if not re.match(r"^[A-Za-z0-9_.=+-]+(?:/[A-Za-z0-9_.=+-]+)*\Z", value) or ".." in value.split("/"):
            raise ValueError("must be an S3 key prefix of letters, digits and _ . = + - separated by '/'")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value, example="@weekly")


class BupHost(EntryBase):
    kind: ClassVar[str] = "bup"
    host: Host = Field(description="the machine whose files are backed up ('localhost' with ssh_conn_id local)")
    port: int = Field(22, ge=1, le=65535)
    paths: list[AbsPath] = Field(min_length=1, description="folders and files to back up")
    excludes: list[AbsPath] = Field(default_factory=list, description="bup index --exclude")
    exclude_rx: list[PlainArg] = Field(default_factory=list, description="bup index --exclude-rx (Python regex)")
    one_file_system: bool = Field(False, description="bup index -x: stay on each path's filesystem")
    bup_dir: OwnFolder | None = Field(None, description="the host's local bup dir (index); default /var/cache/bup/NAME")
    branch: Name | None = Field(None, description="bup save -n: the backup set name (default: the entry name)")
    staging_dir: OwnFolder | None = Field(None, description="where dumps are written; backed up with the paths")
    dumps: list[BupDump] = Field(default_factory=list)
    server: BupServer
    prune: bool = Field(False, description="prune old saves after each backup")
    prune_mode: Literal["retention", "prune-older"] = Field(
        "retention", description="retention: the entry's retention policy, applied with bup rm + gc"
    )
    prune_older: BupPruneOlder | None = None
    fsck: bool = Field(True, description="bup fsck (with par2 recovery blocks when installed) before the S3 sync")
    fsck_schedule: str | None = Field(
        "0 3 * * 6",
        description="without s3_sync: cron or preset of bup_<name>_fsck, the weekly check (default Saturdays "
        "03:00), or null",
    )
    s3_sync: BupS3Sync | None = None
    command_timeout: Duration = Field(timedelta(hours=6), description="how long index/save/restore may stay silent")

    @field_validator("fsck_schedule")
    @classmethod
    def _fsck_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value, example="@weekly")

    @field_validator("exclude_rx")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BupHost:
        if self.dumps and not self.staging_dir:
            raise ValueError("dumps need a staging_dir")
        _require_unique("dumps", [d.name for d in self.dumps])
        _require_unique("dumps output", [d.output for d in self.dumps])
        if self.prune and self.prune_mode == "prune-older" and self.prune_older is None:
            raise ValueError("prune_mode 'prune-older' needs prune_older keep periods")
        if self.prune and self.prune_mode == "retention" and self.retention.is_empty():
            raise ValueError("prune with prune_mode 'retention' needs a non-empty retention policy")
        return self

    @property
    def backup_set(self) -> str:
        return self.branch or self.name

    @property
    def local_bup_dir(self) -> str:
        return self.bup_dir or f"/var/cache/bup/{self.name}"

    @property
    def saved_paths(self) -> list[str]:
        paths = list(self.paths)
        if self.dumps and self.staging_dir and not any(
            self.staging_dir == p or self.staging_dir.startswith(p.rstrip("/") + "/") for p in paths
        ):
            paths.append(self.staging_dir)
        return paths


ENTRY_MODELS: dict[str, type[EntryBase]] = {
    m.kind: m for m in (RiakCluster, EbsPolicy, CassandraCluster, DevicedbCluster, BupHost)
}
Entry = RiakCluster | EbsPolicy | CassandraCluster | DevicedbCluster | BupHost


def _require_unique(field: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{field}: {value!r} is listed twice")
        seen.add(value)


class EntryError(StrictModel):
    """One broken entry: where it is, and every field that is wrong, with its value."""

    index: int
    name: str
    kind: str
    problems: list[str]

    def __str__(self) -> str:
        label = f"entry #{self.index} {self.name!r} (kind {self.kind!r})"
        return f"{label}: " + "; ".join(self.problems)


class ClustersFile(StrictModel):
    path: str
    defaults: Defaults  # the valid defaults; the invalid ones are in defaults_errors
    entries: list[Any]  # validated Entry models
    errors: list[EntryError]
    defaults_errors: list[str] = []  # each also counts against every entry that uses the default


# At most this many values (list items, mapping values, scalars; a string one per started KiB)
# in one entry or default once YAML aliases are expanded: validation walks the expanded tree, so
# an alias bomb (a few lines that expand to 10**9 values) must be refused before it.
MAX_VALUES = 100_000
# an entry (a default) reports at most this many problems
MAX_PROBLEMS = 20


class _Mapping(dict):
    """A YAML mapping as the loader builds it, with the keys it found more than once."""

    repeated_keys: list[tuple[Any, str]]


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that keeps what one entry does wrong to that entry.

    A key written twice in one mapping is recorded (PyYAML keeps the last one silently), and a
    number or date that Python cannot build (`2026-13-45`, an integer of 5000 digits) stays the
    string it was, so that validation names its field and value instead of the whole file failing.
    """

    def construct_yaml_map(self, node: yaml.MappingNode):
        data = _Mapping()
        data.repeated_keys = []
        yield data
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue  # keys merged in with `<<` may be overridden; complex keys fail in construct_mapping
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_line:
                data.repeated_keys.append(
                    (key, f"key {_quote(key)} is written twice in one mapping (lines {first_line[key]} and {line})")
                )
            else:
                first_line[key] = line
        data.update(self.construct_mapping(node))

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return node.value

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return node.value


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


class _Refused(Exception):
    pass


def _inspect(value: Any, sizes: dict[int, int], active: set[int], repeated: list[str]) -> int:
    """The size of `value` with aliases expanded (memoized, so linear in the distinct objects);
    collects repeated keys; raises _Refused beyond MAX_VALUES or when a value contains itself."""
    if isinstance(value, str):
        return 1 + len(value) // 1024
    if not isinstance(value, dict | list):
        return 1
    ident = id(value)
    if ident in sizes:
        return sizes[ident]
    if ident in active:
        raise _Refused("contains itself (a recursive YAML alias)")
    active.add(ident)
    repeated.extend(text for _, text in getattr(value, "repeated_keys", ()))
    total = 1
    for child in value.values() if isinstance(value, dict) else value:
        total += _inspect(child, sizes, active, repeated)
        if total > MAX_VALUES:
            raise _Refused(f"expands to more than {MAX_VALUES} values (YAML aliases?): refused unread")
    active.discard(ident)
    sizes[ident] = total
    return total


def _precheck(mapping: dict[Any, Any]) -> dict[Any, list[str]]:
    """Problems found before validation, by top-level key: repeated keys, and values too big to
    validate (the fields kept add up to at most MAX_VALUES)."""
    problems: dict[Any, list[str]] = {}
    for key, text in getattr(mapping, "repeated_keys", ()):
        problems.setdefault(key, []).append(text)
    sizes: dict[int, int] = {}
    total = 1
    for key, value in mapping.items():
        repeated: list[str] = []
        try:
            size = _inspect(value, sizes, set(), repeated)
            if total + size > MAX_VALUES:
                raise _Refused(f"makes its mapping expand to more than {MAX_VALUES} values (YAML aliases?): refused unread")
            total += size
        except _Refused as exc:
            repeated = [str(exc)]
        except RecursionError:
            repeated = ["nests too deeply"]
        if repeated:
            problems.setdefault(key, []).extend(f"field {_quote(key)}: {text}" for text in repeated)
    return problems


def _describe(error: dict[str, Any]) -> str:
    location = _clip(".".join(str(part) for part in error["loc"]))
    message = _clip(error["msg"].removeprefix("Value error, "), 2 * QUOTE_LIMIT)
    if error["type"] == "extra_forbidden":
        return f"field {location!r}: unknown key (a typo?) with value {_quote(error['input'])}"
    if error["type"] == "missing":
        return f"field {location!r}: is required"
    if not location:
        return message
    if "password" in message:  # never echo a secret into logs and the UI's import errors
        return f"field {location!r}: value <redacted> {message}"
    return f"field {location!r}: value {_quote(error['input'])} {message}"


def _problems(exc: ValidationError) -> list[str]:
    return [_describe(e) for e in exc.errors(include_url=False)]


def _bounded(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more problems"]


def resolve_clusters_file(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get(CLUSTERS_FILE_ENV) or DEFAULT_CLUSTERS_FILE)


def load_clusters_file(path: str | os.PathLike | None = None) -> ClustersFile:
    """Read and validate the clusters file. Broken entries are reported, not raised."""
    resolved = resolve_clusters_file(path)
    try:
        raw = yaml.load(resolved.read_text(), Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except OSError as exc:
        raise ClustersFileError(f"clusters file {str(resolved)!r}: cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ClustersFileError(
            f"clusters file {str(resolved)!r}: is not valid YAML: {_clip(str(exc), 5 * QUOTE_LIMIT)}"
        ) from exc
    except RecursionError as exc:
        raise ClustersFileError(f"clusters file {str(resolved)!r}: nests too deeply to be read") from exc
    return parse_clusters(raw, str(resolved))


def _check_defaults(raw_defaults: Any) -> tuple[Defaults, dict[Any, list[str]]]:
    """The valid part of `defaults`, and the problems of the rest by field (None: all fields).

    A bad default is not applied: each entry that would use it (does not set the field itself)
    is refused with the default's problem, and the entries that set the field still load.
    """
    if not isinstance(raw_defaults, dict):
        return Defaults(), {None: [f"must be a mapping, got {_quote(raw_defaults)}"]}
    problems = _precheck(raw_defaults)
    candidate = {k: v for k, v in raw_defaults.items() if k not in problems}
    while True:
        try:
            return Defaults.model_validate(candidate), problems
        except ValidationError as exc:
            bad = {}
            for error in exc.errors(include_url=False):
                bad.setdefault(error["loc"][0] if error["loc"] else None, []).append(_describe(error))
            if None in bad or not set(bad) <= set(candidate):  # not a field's problem: refuse them all
                problems.setdefault(None, []).extend(_problems(exc))
                return Defaults(), problems
            for field, texts in bad.items():
                problems.setdefault(field, []).extend(texts)
                candidate.pop(field)


def _label(value: Any) -> str:
    return _clip(value if isinstance(value, str) else "?" if value is None else _quote(value), 80)


def parse_clusters(raw: Any, source: str = "<clusters file>") -> ClustersFile:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ClustersFileError(f"clusters file {source!r}: must be a mapping with 'defaults' and 'entries'")
    unknown = set(raw) - {"defaults", "entries"}
    if unknown:
        raise ClustersFileError(
            f"clusters file {source!r}: unknown top-level key(s) {_quote(sorted(map(str, unknown)))}; "
            "expected 'defaults' and 'entries'"
        )
    for _, text in getattr(raw, "repeated_keys", ()):
        raise ClustersFileError(f"clusters file {source!r}: {text}")
    raw_defaults = raw.get("defaults") or {}
    defaults, defaults_problems = _check_defaults(raw_defaults)
    defaults_errors = [f"defaults: {text}" for texts in defaults_problems.values() for text in texts]
    raw_entries = raw.get("entries") or []
    if not isinstance(raw_entries, list):
        raise ClustersFileError(f"clusters file {source!r}: 'entries' must be a list")

    entries: list[EntryBase] = []
    errors: list[EntryError] = []
    dag_ids: dict[str, int] = {}
    explicit_defaults = defaults.model_dump(exclude_unset=True)
    for index, item in enumerate(raw_entries):
        name = _label(item.get("name")) if isinstance(item, dict) else "?"
        kind = _label(item.get("kind")) if isinstance(item, dict) else "?"

        def fail(problems: list[str], index=index, name=name, kind=kind) -> None:
            errors.append(EntryError(index=index, name=name, kind=kind, problems=_bounded(problems)))

        if not isinstance(item, dict):
            fail([f"must be a mapping, got {_quote(item)}"])
            continue
        model = ENTRY_MODELS.get(item.get("kind")) if isinstance(item.get("kind"), str) else None
        if model is None:
            fail([f"field 'kind': value {_quote(item.get('kind'))} is not one of {sorted(ENTRY_MODELS)}"])
            continue
        # a bad default counts against every entry that would use it
        inherited = [
            f"defaults: {text}"
            for field, texts in defaults_problems.items()
            if field is None or field not in item
            for text in texts
        ]
        prechecked = _precheck(item)
        if prechecked:  # never validate (nor quote) what is refused unread
            fail([text for texts in prechecked.values() for text in texts] + inherited)
            continue
        data = {**explicit_defaults, **{k: v for k, v in item.items() if k != "kind"}}
        try:
            entry = model.model_validate(data)
        except ValidationError as exc:
            fail(_problems(exc) + inherited)
            continue
        if inherited:
            fail(inherited)
            continue
        key = f"{kind}_{entry.name}"
        if key in dag_ids:
            fail([f"field 'name': value {entry.name!r} is already used by entry #{dag_ids[key]}"])
            continue
        dag_ids[key] = index
        entries.append(entry)
    return ClustersFile(
        path=source, defaults=defaults, entries=entries, errors=errors, defaults_errors=defaults_errors
    )


__all__ = [
    "CLUSTERS_FILE_ENV",
    "AbsPath",
    "BupDump",
    "BupHost",
    "BupPruneOlder",
    "BupS3Sync",
    "BupServer",
    "CassandraCluster",
    "CassandraNode",
    "ClustersFile",
    "ClustersFileError",
    "Defaults",
    "DevicedbCluster",
    "Duration",
    "EbsPolicy",
    "Entry",
    "EntryBase",
    "EntryError",
    "Host",
    "Identifier",
    "Literal",
    "Name",
    "Node",
    "RetentionPolicy",
    "RiakCluster",
    "RiakNode",
    "load_clusters_file",
    "parse_clusters",
    "parse_duration",
]
