"""Cassandra: nodetool command lines and parsers, the data-directory walker, S3 keys and manifests.

Pure functions only (no Airflow, no I/O): the hooks run the commands and move the bytes.
The texts parsed here are those of ``reference/cassandra.md`` (Cassandra 3.x and 4.x).

Layout on a node::

    <data_dir>/<keyspace>/<table>-<32 hex id>/nb-1-big-Data.db ...
                                             /snapshots/<tag>/nb-1-big-Data.db, manifest.json, schema.cql
                                             /backups/nb-1-big-Data.db ...

Layout in S3 (one folder per day, one per host)::

    <prefix>/<cluster>/<YYYYMMDD>/<host>/<keyspace>/<table dir>/<file>.zst
    <prefix>/<cluster>/<YYYYMMDD>/<host>/backup-meta/<tag>/manifest.json | schema.cql | status.txt
"""

from __future__ import annotations

import difflib
import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from airflow_backup_provider import names

# ------------------------------------------------------------------------------------------------
# names

# The names themselves are checked by airflow_backup_provider.names (the clusters file's checks).
_TABLE_DIR_RE = re.compile(rf"^(?P<table>{names.CASSANDRA_NAME})-(?P<id>[0-9a-f]{{32}})\Z")
# Cassandra 3.0+ lets the table dir go without the id when the table was created without one
_TABLE_DIR_NO_ID_RE = re.compile(rf"^(?P<table>{names.CASSANDRA_NAME})\Z")
# SSTable component files and anything Cassandra writes beside them (TOC.txt, *.crc32, *.db,
# secondary index subfolders start with a dot).
_FILE_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.+-]{0,254}\Z")

SNAPSHOTS_DIR = "snapshots"
BACKUPS_DIR = "backups"
META_DIR = "backup-meta"  # has a '-': can never be a keyspace name
TAG_PREFIX = "abp"
SNAPSHOT_META_FILES = frozenset({"manifest.json", "schema.cql"})
COMPRESSED_SUFFIX = ".zst"
MANIFEST_FORMAT = 1


class CassandraNameError(names.InvalidName):
    """A keyspace, table, host, tag or path that must never reach a command line or an S3 key."""


def _named(check, value: Any, field_name: str) -> str:
    try:
        return check(value, field_name)
    except names.InvalidName as exc:
        raise CassandraNameError(str(exc)) from None


def validate_keyspace(value: str, field_name: str = "keyspace") -> str:
    return _named(names.check_keyspace, value, field_name)


def validate_table(value: str, field_name: str = "table") -> str:
    """`table` or `keyspace.table`."""
    return _named(names.check_table_ref, value, field_name)


def validate_host(value: str, field_name: str = "host") -> str:
    return _named(names.check_host, value, field_name)


def validate_tag(value: str, field_name: str = "tag") -> str:
    return _named(names.check_snapshot_tag, value, field_name)


def validate_day(value: str, field_name: str = "date") -> str:
    """`YYYYMMDD` or `YYYY-MM-DD`, returned as `YYYYMMDD`."""
    text = value.replace("-", "") if isinstance(value, str) else ""
    if not names.DAY_FOLDER_RE.match(text):
        raise CassandraNameError(f"{field_name}: value {value!r} is not a date like 2026-11-20 or 20261120")
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError as exc:
        raise CassandraNameError(f"{field_name}: value {value!r} is not a valid date") from exc
    return text


def validate_abs_path(value: str, field_name: str = "path") -> str:
    return posixpath.normpath(_named(names.check_abs_path, value, field_name))


def split_table_dir(name: str) -> tuple[str, str | None]:
    """`users-0123...ef` -> ("users", "0123...ef"); raises on anything else."""
    match = _TABLE_DIR_RE.match(name) or _TABLE_DIR_NO_ID_RE.match(name)
    if not match:
        raise CassandraNameError(f"table directory: value {name!r} is not '<table>-<32 hex id>'")
    return match.group("table"), match.groupdict().get("id")


def snapshot_tag(backup_time: datetime, run_id: str) -> str:
    """One tag per run: from the logical date (so it sorts) and a digest of the run id (so two
    runs never share it, and a retried task finds its own run's snapshot again)."""
    stamp = backup_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{TAG_PREFIX}-{stamp}-{digest}"


def is_our_tag(tag: str) -> bool:
    return tag.startswith(f"{TAG_PREFIX}-")


def day_of(backup_time: datetime) -> str:
    return backup_time.astimezone(UTC).strftime("%Y%m%d")


def day_start(day: str) -> datetime:
    """`20261120` -> its first instant, UTC: the date retention judges a day folder by."""
    return datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------------------
# nodetool command lines


def flush_argv(nodetool: str = "nodetool", keyspace: str | None = None, tables: Sequence[str] = ()) -> list[str]:
    argv = [nodetool, "flush"]
    if keyspace:
        argv.append(validate_keyspace(keyspace))
        argv += [validate_table(t) for t in tables]
    elif tables:
        raise ValueError("tables: flushing tables needs their keyspace")
    return argv


def snapshot_argv(tag: str, keyspaces: Sequence[str] = (), nodetool: str = "nodetool") -> list[str]:
    return [nodetool, "snapshot", "-t", validate_tag(tag), *(validate_keyspace(k) for k in keyspaces)]


def listsnapshots_argv(nodetool: str = "nodetool") -> list[str]:
    return [nodetool, "listsnapshots"]


def clearsnapshot_argv(tag: str, keyspaces: Sequence[str] = (), nodetool: str = "nodetool") -> list[str]:
    # Always with -t: 4.0+ refuses a bare clearsnapshot, and 3.x would clear every snapshot.
    return [nodetool, "clearsnapshot", "-t", validate_tag(tag), *(validate_keyspace(k) for k in keyspaces)]


def status_argv(nodetool: str = "nodetool") -> list[str]:
    return [nodetool, "status"]


def sha256sum_argv(paths: Sequence[str]) -> list[str]:
    """`sha256sum -- PATH...` (coreutils, on every Linux node) for paths this module built."""
    return ["sha256sum", "--", *(validate_abs_path(p, "file") for p in paths)]


_SHA256SUM_RE = re.compile(r"^(?P<digest>[0-9a-f]{64}) [ *](?P<path>/.*)$")


def parse_sha256sum(text: str) -> dict[str, str]:
    """path -> digest from `sha256sum` output (lines `<64 hex>  <path>`; others ignored)."""
    digests = {}
    for line in text.splitlines():
        match = _SHA256SUM_RE.match(line)
        if match:
            digests[match.group("path")] = match.group("digest")
    return digests


# ------------------------------------------------------------------------------------------------
# nodetool parsers


class NodetoolOutputError(ValueError):
    """nodetool printed something this parser does not recognise."""


@dataclass(frozen=True)
class SnapshotResult:
    tag: str
    keyspaces: tuple[str, ...]  # empty = all keyspaces
    already_exists: bool = False


_SNAPSHOT_RE = re.compile(
    r"Requested creating snapshot\(s\) for \[(?P<ks>[^\]]*)\] with snapshot name \[(?P<tag>[^\]]*)\]"
)
_ALREADY_RE = re.compile(r"Snapshot (?P<tag>\S+) already exists")


def parse_snapshot(text: str, tag: str) -> SnapshotResult:
    """Read `nodetool snapshot` output (stdout and stderr together)."""
    already = _ALREADY_RE.search(text)
    if already and already.group("tag") == tag:
        return SnapshotResult(tag=tag, keyspaces=(), already_exists=True)
    match = _SNAPSHOT_RE.search(text)
    if not match:
        raise NodetoolOutputError(f"nodetool snapshot: unexpected output: {text.strip()[:500]!r}")
    if match.group("tag") != tag:
        raise NodetoolOutputError(f"nodetool snapshot: made tag {match.group('tag')!r}, asked for {tag!r}")
    if f"Snapshot directory: {tag}" not in text:
        raise NodetoolOutputError(f"nodetool snapshot: no 'Snapshot directory: {tag}' line in {text.strip()!r}")
    names = match.group("ks")
    keyspaces = () if names == "all keyspaces" else tuple(n.strip() for n in names.split(",") if n.strip())
    return SnapshotResult(tag=tag, keyspaces=keyspaces)


_CLEAR_RE = re.compile(
    r"Requested clearing snapshot\(s\) for \[(?P<ks>[^\]]*)\] with snapshot name \[(?P<tag>[^\]]*)\]"
)


def parse_clearsnapshot(text: str, tag: str) -> tuple[str, ...]:
    """The keyspaces cleared (empty = all); raises if nodetool did not confirm this tag."""
    if "Specify snapshot name or --all" in text:
        raise NodetoolOutputError("nodetool clearsnapshot: refused without a snapshot name")
    match = _CLEAR_RE.search(text)
    if not match or match.group("tag") != tag:
        raise NodetoolOutputError(f"nodetool clearsnapshot: unexpected output: {text.strip()[:500]!r}")
    names = match.group("ks")
    return () if names == "all keyspaces" else tuple(n.strip() for n in names.split(",") if n.strip())


_SIZE_RE = re.compile(r"^(?P<num>[\d.,]+)\s*(?P<unit>bytes|B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
_UNITS = {
    "bytes": 1, "B": 1,
    "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
}  # fmt: skip


def parse_size(text: str) -> int:
    """`1.5 GB`, `4.87 KiB`, `0 bytes` -> bytes (nodetool's units are powers of 1024)."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise NodetoolOutputError(f"not a nodetool size: {text!r}")
    return int(float(match.group("num").replace(",", "")) * _UNITS[match.group("unit")])


def format_size(value: float, binary: bool = False) -> str:
    """nodetool's way (DecimalFormat `#.##`): `0 bytes`, `4.87 KB` (3.x) / `4.87 KiB` (4.x)."""
    units = ("KiB", "MiB", "GiB", "TiB") if binary else ("KB", "MB", "GB", "TB")
    if value < 1024:
        return f"{_decimal(value)} bytes"
    for power, unit in zip((1, 2, 3, 4), units, strict=True):
        if value < 1024 ** (power + 1) or power == 4:
            return f"{_decimal(value / 1024**power)} {unit}"
    raise AssertionError("unreachable")


def _decimal(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class ListedSnapshot:
    tag: str
    keyspace: str
    table: str
    true_size: int
    size_on_disk: int
    created_at: str | None = None


LISTSNAPSHOTS_COLUMNS = ("Snapshot name", "Keyspace name", "Column family name", "True size", "Size on disk")
CREATION_TIME_COLUMN = "Creation time"


def _header_columns(header: str, known: Sequence[str]) -> list[tuple[str, int]]:
    found = []
    for name in known:
        position = header.find(name)
        if position >= 0:
            found.append((name, position))
    return sorted(found, key=lambda item: item[1])


def _slice_row(line: str, columns: list[tuple[str, int]]) -> dict[str, str]:
    values = {}
    for index, (name, start) in enumerate(columns):
        end = columns[index + 1][1] if index + 1 < len(columns) else None
        values[name] = line[start:end].strip()
    return values


def parse_listsnapshots(text: str) -> tuple[list[ListedSnapshot], int | None]:
    """(rows, Total TrueDiskSpaceUsed in bytes or None). Columns are found by their header, so the
    4.1+ `Creation time` column (or any other added later) does not shift the others."""
    lines = text.splitlines()
    if not any(line.startswith("Snapshot Details:") for line in lines):
        raise NodetoolOutputError(f"nodetool listsnapshots: unexpected output: {text.strip()[:500]!r}")
    if any(line.strip() == "There are no snapshots" for line in lines):
        return [], 0
    header_index = next((i for i, line in enumerate(lines) if line.startswith("Snapshot name")), None)
    if header_index is None:
        raise NodetoolOutputError(f"nodetool listsnapshots: no header line in {text.strip()[:500]!r}")
    columns = _header_columns(lines[header_index], (*LISTSNAPSHOTS_COLUMNS, CREATION_TIME_COLUMN))
    missing = set(LISTSNAPSHOTS_COLUMNS) - {name for name, _ in columns}
    if missing:
        raise NodetoolOutputError(f"nodetool listsnapshots: header lacks {sorted(missing)}")
    rows: list[ListedSnapshot] = []
    total: int | None = None
    for line in lines[header_index + 1 :]:
        if not line.strip():
            continue
        if line.startswith("Total TrueDiskSpaceUsed:"):
            total = parse_size(line.split(":", 1)[1])
            continue
        values = _slice_row(line, columns)
        rows.append(
            ListedSnapshot(
                tag=values["Snapshot name"],
                keyspace=values["Keyspace name"],
                table=values["Column family name"],
                true_size=parse_size(values["True size"]),
                size_on_disk=parse_size(values["Size on disk"]),
                created_at=values.get(CREATION_TIME_COLUMN) or None,
            )
        )
    return rows, total


@dataclass(frozen=True)
class StatusNode:
    datacenter: str
    status: str  # U, D or ?
    state: str  # N, L, J or M
    address: str
    load: str
    tokens: str
    owns: str
    host_id: str
    rack: str

    @property
    def up(self) -> bool:
        return self.status == "U"


_STATUS_ROW_RE = re.compile(
    r"^(?P<status>[UD?])(?P<state>[NLJM?])\s+(?P<address>\S+)\s+(?P<load>\?|[\d.,]+\s*\S+)\s+"
    r"(?P<tokens>\S+)\s+(?P<owns>\S+)\s+(?P<host_id>\S+)\s+(?P<rack>\S+)\s*$"
)


def parse_status(text: str) -> list[StatusNode]:
    datacenter = ""
    nodes: list[StatusNode] = []
    for line in text.splitlines():
        if line.startswith("Datacenter:"):
            datacenter = line.split(":", 1)[1].strip()
            continue
        match = _STATUS_ROW_RE.match(line)
        if match:
            nodes.append(StatusNode(datacenter=datacenter, **match.groupdict()))
    if not nodes:
        raise NodetoolOutputError(f"nodetool status: no node rows in {text.strip()[:500]!r}")
    return nodes


def nodetool_failure(text: str) -> str:
    """The one line worth showing from a failed nodetool (its `error:` line, not the stack trace)."""
    for line in text.splitlines():
        if line.startswith("error:") or line.startswith("nodetool:"):
            return line.strip()
    return text.strip().splitlines()[0] if text.strip() else "no output"


# ------------------------------------------------------------------------------------------------
# scope and the walker


@dataclass(frozen=True)
class Scope:
    """Which keyspaces and tables a backup or restore covers. Empty include lists mean all."""

    keyspaces: tuple[str, ...] = ()
    exclude_keyspaces: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()  # `keyspace.table` or `table`
    exclude_tables: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, values in (("keyspaces", self.keyspaces), ("exclude_keyspaces", self.exclude_keyspaces)):
            for value in values:
                validate_keyspace(value, name)
        for name, values in (("tables", self.tables), ("exclude_tables", self.exclude_tables)):
            for value in values:
                validate_table(value, name)

    @staticmethod
    def _table_matches(patterns: Iterable[str], keyspace: str, table: str) -> bool:
        return any(p == table or p == f"{keyspace}.{table}" for p in patterns)

    def includes_keyspace(self, keyspace: str) -> bool:
        if keyspace in self.exclude_keyspaces:
            return False
        return not self.keyspaces or keyspace in self.keyspaces

    def includes(self, keyspace: str, table: str) -> bool:
        if not self.includes_keyspace(keyspace):
            return False
        if self._table_matches(self.exclude_tables, keyspace, table):
            return False
        return not self.tables or self._table_matches(self.tables, keyspace, table)


@dataclass(frozen=True)
class DirEntry:
    """What a directory listing says about one entry (from SFTP `listdir_attr` or `os.scandir`)."""

    name: str
    is_dir: bool
    size: int = 0


@dataclass(frozen=True)
class NodeFile:
    """One file to back up. `path` is relative to the data dir's table folder layout and is also
    where a restore puts it: `<keyspace>/<table dir>/<file>` (index subfolders kept)."""

    keyspace: str
    table_dir: str
    source: str  # "snapshot", "backups", or "snapshot,backups" (one SSTable linked in both)
    remote_path: str
    name: str  # relative to snapshots/<tag>/ or backups/, e.g. `nb-1-big-Data.db` or `.idx/nb-...`
    size: int

    @property
    def table(self) -> str:
        return split_table_dir(self.table_dir)[0]

    @property
    def path(self) -> str:
        return f"{self.keyspace}/{self.table_dir}/{self.name}"


@dataclass
class WalkResult:
    files: list[NodeFile] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)  # remote paths of the snapshot's schema.cql files
    tables: list[tuple[str, str]] = field(default_factory=list)  # (keyspace, table dir) walked
    # `<keyspace>/<table dir>` of every table the snapshot has, an empty one (no SSTable, only
    # the snapshot's manifest.json) included: a restore makes each of these folders
    snapshot_tables: list[str] = field(default_factory=list)


Lister = Callable[[str], list[DirEntry]]


def walk_data_dir(
    data_dir: str, tag: str, scope: Scope, listdir: Lister, *, include_backups: bool = True
) -> WalkResult:
    """Every file of `snapshots/<tag>/` and `backups/` under `data_dir`, within `scope`.

    `listdir(path)` returns the entries of one folder, or raises FileNotFoundError. A name that
    is not a valid keyspace or table folder raises :class:`CassandraNameError`: data that cannot
    be named safely is a reason to stop and tell someone, never to skip silently.
    """
    validate_tag(tag)
    result = WalkResult()
    for ks_entry in sorted(listdir(data_dir), key=lambda e: e.name):
        if not ks_entry.is_dir:
            continue
        keyspace = validate_keyspace(ks_entry.name, f"keyspace folder {posixpath.join(data_dir, ks_entry.name)}")
        if not scope.includes_keyspace(keyspace):
            continue
        ks_path = posixpath.join(data_dir, keyspace)
        for table_entry in sorted(listdir(ks_path), key=lambda e: e.name):
            if not table_entry.is_dir:
                continue
            table, _ = split_table_dir(table_entry.name)
            if not scope.includes(keyspace, table):
                continue
            table_path = posixpath.join(ks_path, table_entry.name)
            result.tables.append((keyspace, table_entry.name))
            sources = [("snapshot", posixpath.join(table_path, SNAPSHOTS_DIR, tag))]
            if include_backups:
                sources.append(("backups", posixpath.join(table_path, BACKUPS_DIR)))
            for source, folder in sources:
                seen = False
                for name, size in _walk_files(folder, listdir):
                    seen = True
                    remote = posixpath.join(folder, name)
                    if source == "snapshot" and name in SNAPSHOT_META_FILES:
                        if name == "schema.cql":
                            result.schemas.append(remote)
                        continue
                    result.files.append(NodeFile(keyspace, table_entry.name, source, remote, name, size))
                if source == "snapshot" and seen:
                    result.snapshot_tables.append(f"{keyspace}/{table_entry.name}")
    return result


def _walk_files(folder: str, listdir: Lister, relative: str = "") -> Iterator[tuple[str, int]]:
    try:
        entries = listdir(posixpath.join(folder, relative) if relative else folder)
    except FileNotFoundError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        if not _FILE_RE.match(entry.name) or entry.name in (".", ".."):
            raise CassandraNameError(f"file: value {posixpath.join(folder, relative, entry.name)!r} has an unsafe name")
        name = posixpath.join(relative, entry.name) if relative else entry.name
        if entry.is_dir:
            # secondary indexes live in `.<index>/` subfolders of the table folder
            yield from _walk_files(folder, listdir, name)
        else:
            yield name, entry.size


# ------------------------------------------------------------------------------------------------
# S3 keys


def cluster_prefix(prefix: str, cluster: str) -> str:
    return f"{prefix.strip('/')}/{cluster}/"


def day_prefix(prefix: str, cluster: str, day: str) -> str:
    return f"{cluster_prefix(prefix, cluster)}{validate_day(day)}/"


def host_prefix(prefix: str, cluster: str, day: str, host: str) -> str:
    return f"{day_prefix(prefix, cluster, day)}{validate_host(host)}/"


def data_key(prefix: str, cluster: str, day: str, host: str, path: str, variant: str | None = None) -> str:
    """`<prefix>/<cluster>/<day>/<host>/<keyspace>/<table dir>/<file>.zst` (variant: a second
    object for the same path within a day, kept beside the first so neither is overwritten)."""
    name = f"{path}.{variant}" if variant else path
    return f"{host_prefix(prefix, cluster, day, host)}{name}{COMPRESSED_SUFFIX}"


def meta_key(prefix: str, cluster: str, day: str, host: str, tag: str, name: str) -> str:
    return f"{host_prefix(prefix, cluster, day, host)}{META_DIR}/{validate_tag(tag)}/{name}"


def manifest_key(prefix: str, cluster: str, day: str, host: str, tag: str) -> str:
    return meta_key(prefix, cluster, day, host, tag, "manifest.json")


_MANIFEST_KEY_RE = re.compile(
    rf"^(?P<day>\d{{8}})/(?P<host>[^/]+)/{META_DIR}/(?P<tag>[^/]+)/manifest\.json$"
)


@dataclass(frozen=True)
class ManifestRef:
    key: str
    day: str
    host: str
    tag: str


def parse_manifest_keys(keys: Iterable[str], prefix: str, cluster: str) -> list[ManifestRef]:
    """The manifests among `keys` (a listing under the cluster prefix); other keys are ignored."""
    base = cluster_prefix(prefix, cluster)
    refs = []
    for key in keys:
        if not key.startswith(base):
            continue
        match = _MANIFEST_KEY_RE.match(key[len(base) :])
        if match:
            refs.append(ManifestRef(key=key, **match.groupdict()))
    return sorted(refs, key=lambda r: (r.day, r.host, r.tag))


def parse_day_folders(common_prefixes: Iterable[str], prefix: str, cluster: str) -> list[str]:
    base = cluster_prefix(prefix, cluster)
    days = []
    for item in common_prefixes:
        rest = item[len(base) :].strip("/") if item.startswith(base) else ""
        if names.DAY_FOLDER_RE.match(rest):
            days.append(rest)
    return sorted(days)


# ------------------------------------------------------------------------------------------------
# manifests


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # `<keyspace>/<table dir>/<file>`: where a restore writes it
    key: str  # the S3 object (zstd-compressed)
    size: int
    sha256: str
    compressed_size: int
    source: str = "snapshot"  # "backups", or "snapshot,backups"

    @property
    def in_backups(self) -> bool:
        return "backups" in self.source.split(",")
    uploaded_in: str = ""  # the tag of the run that uploaded the object

    @property
    def keyspace(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def table(self) -> str:
        return split_table_dir(self.path.split("/")[1])[0]


@dataclass(frozen=True)
class Manifest:
    cluster: str
    host: str
    day: str
    tag: str
    run_id: str
    created_at: str
    mode: str  # "full" (first of the day) or "incremental"
    files: tuple[ManifestEntry, ...]
    schema_key: str = ""
    status_key: str = ""
    data_dir: str = ""
    cluster_hosts: tuple[str, ...] = ()  # every node of the cluster when the run started
    # `<keyspace>/<table dir>` of every table in the snapshot, also those without a file (empty)
    tables: tuple[str, ...] = ()
    compression: str = "zstd"
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        data = asdict(self)
        data["files"] = [asdict(f) for f in self.files]
        return json.dumps(data, indent=1, sort_keys=True)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def new_files(self) -> list[ManifestEntry]:
        return [f for f in self.files if f.uploaded_in == self.tag]


class ManifestError(ValueError):
    pass


def parse_manifest(text: str | bytes) -> Manifest:
    try:
        data = json.loads(text)
        if data.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"manifest format {data.get('format')!r} is not {MANIFEST_FORMAT}")
        files = tuple(ManifestEntry(**f) for f in data.pop("files"))
        data["cluster_hosts"] = tuple(data.get("cluster_hosts") or ())
        data["tables"] = tuple(data.get("tables") or ())
        manifest = Manifest(files=files, **data)
    except ManifestError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ManifestError(f"not a backup manifest: {exc}") from exc
    for entry in manifest.files:
        _check_relative_path(entry.path)
    for table in manifest.tables:
        keyspace, _, table_dir = table.partition("/")
        validate_keyspace(keyspace, "manifest table")
        split_table_dir(table_dir)
    return manifest


def _check_relative_path(path: str) -> str:
    parts = path.split("/")
    if len(parts) < 3 or any(p in ("", ".", "..") or not _FILE_RE.match(p) for p in parts):
        raise ManifestError(f"manifest entry path {path!r} is not '<keyspace>/<table dir>/<file>'")
    validate_keyspace(parts[0], "manifest entry keyspace")
    split_table_dir(parts[1])
    return path


@dataclass(frozen=True)
class UploadPlan:
    upload: list[tuple[NodeFile, str]]  # (file, key to upload to)
    reuse: list[tuple[NodeFile, ManifestEntry]]  # already in one of the day's manifests
    mode: str


def plan_upload(
    files: Sequence[NodeFile], earlier: Sequence[Manifest], *, prefix: str, cluster: str, day: str, host: str, tag: str
) -> UploadPlan:
    """Which files this run uploads and which it takes from the day's earlier manifests.

    SSTables never change once written, so a path already uploaded today with the same size is
    the same file. A file both in the snapshot and in `backups/` (hard links of one SSTable) is
    uploaded once. A path seen today with another size gets its own key, so no object that an
    earlier manifest lists is ever overwritten.
    """
    known: dict[str, ManifestEntry] = {}
    used_keys: set[str] = set()
    for manifest in sorted(earlier, key=lambda m: m.tag):
        for entry in manifest.files:
            known.setdefault(entry.path, entry)
            used_keys.add(entry.key)
    upload: list[tuple[NodeFile, str]] = []
    reuse: list[tuple[NodeFile, ManifestEntry]] = []
    seen: dict[str, NodeFile] = {}
    merged: list[NodeFile] = []
    for node_file in sorted(files, key=lambda f: (f.path, f.source != "snapshot")):
        first = seen.get(node_file.path)
        if first is not None:
            if first.size != node_file.size:
                raise ManifestError(
                    f"{node_file.path}: snapshot and backups/ copies differ in size "
                    f"({first.size} != {node_file.size})"
                )
            # one SSTable, hard-linked in both places: upload once, remember both sources
            both = replace(first, source=f"{first.source},{node_file.source}")
            seen[node_file.path] = both
            merged[-1] = both
            continue
        seen[node_file.path] = node_file
        merged.append(node_file)
    for node_file in merged:
        previous = known.get(node_file.path)
        if previous is not None and previous.size == node_file.size:
            reuse.append((node_file, previous))
            continue
        key = data_key(prefix, cluster, day, host, node_file.path)
        if key in used_keys:
            key = data_key(prefix, cluster, day, host, node_file.path, variant=tag)
        upload.append((node_file, key))
    return UploadPlan(upload=upload, reuse=reuse, mode="incremental" if earlier else "full")


def build_manifest(
    *,
    cluster: str,
    host: str,
    day: str,
    tag: str,
    run_id: str,
    created_at: datetime,
    plan: UploadPlan,
    uploaded: dict[str, dict],
    schema_key: str,
    status_key: str,
    data_dir: str,
    cluster_hosts: Sequence[str] = (),
    tables: Sequence[str] = (),
) -> Manifest:
    """The manifest of one node's run. `uploaded` maps each planned key to the upload's result
    (`size`, `sha256`, `compressed_size`); a planned file without a result is an error, so a
    manifest can never list an object that was not uploaded."""
    entries = []
    for node_file, key in plan.upload:
        result = uploaded.get(key)
        if result is None:
            raise ManifestError(f"{node_file.path}: planned for {key} but not uploaded")
        entries.append(
            ManifestEntry(
                path=node_file.path,
                key=key,
                size=int(result["size"]),
                sha256=str(result["sha256"]),
                compressed_size=int(result["compressed_size"]),
                source=node_file.source,
                uploaded_in=tag,
            )
        )
    for node_file, previous in plan.reuse:
        entries.append(
            ManifestEntry(
                path=node_file.path,
                key=previous.key,
                size=previous.size,
                sha256=previous.sha256,
                compressed_size=previous.compressed_size,
                source=node_file.source,
                uploaded_in=previous.uploaded_in,
            )
        )
    return Manifest(
        cluster=cluster,
        host=host,
        day=day,
        tag=tag,
        run_id=run_id,
        created_at=created_at.astimezone(UTC).isoformat(),
        mode=plan.mode,
        files=tuple(sorted(entries, key=lambda e: e.path)),
        schema_key=schema_key,
        status_key=status_key,
        data_dir=data_dir,
        cluster_hosts=tuple(cluster_hosts) or (host,),
        tables=tuple(sorted({*tables, *(table_folder_of(e.path) for e in entries)})),
    )


@dataclass(frozen=True)
class VerifyProblem:
    key: str
    problem: str


def verify_entries(entries: Iterable[ManifestEntry], heads: dict[str, int | None]) -> list[VerifyProblem]:
    """Compare manifest entries with S3 (`heads`: key -> ContentLength, None when missing)."""
    problems = []
    for entry in entries:
        length = heads.get(entry.key)
        if length is None:
            problems.append(VerifyProblem(entry.key, "missing"))
        elif length != entry.compressed_size:
            problems.append(
                VerifyProblem(entry.key, f"size {length} in S3, manifest says {entry.compressed_size}")
            )
    return problems


# ------------------------------------------------------------------------------------------------
# day folders, completeness, restore


def complete_hosts(refs: Iterable[ManifestRef], day: str) -> set[str]:
    return {r.host for r in refs if r.day == day}


def is_day_complete(refs: Iterable[ManifestRef], day: str, hosts: Iterable[str]) -> bool:
    """A day counts as a backup when every host of the cluster has a manifest in it (a manifest
    is written only after everything it lists was uploaded)."""
    present = complete_hosts(refs, day)
    return all(h in present for h in hosts)


def latest_manifest(refs: Iterable[ManifestRef], day: str, host: str, tag: str | None = None) -> ManifestRef | None:
    candidates = [r for r in refs if r.day == day and r.host == host and (tag is None or r.tag == tag)]
    return max(candidates, key=lambda r: r.tag, default=None)


def select_restore_entries(manifest: Manifest, scope: Scope) -> list[ManifestEntry]:
    return [e for e in manifest.files if scope.includes(e.keyspace, e.table)]


def table_folder_of(path: str) -> str:
    """`shop/orders-<id>/.idx/nb-1-big-Data.db` -> `shop/orders-<id>`."""
    return "/".join(path.split("/")[:2])


def select_restore_tables(manifest: Manifest, scope: Scope) -> list[str]:
    """Every table folder (`<keyspace>/<table dir>`) the restore makes, empty tables included, so
    that the restore folder lists the same table folders as the data folder."""
    folders = {*manifest.tables, *(table_folder_of(e.path) for e in manifest.files)}
    return sorted(
        f for f in folders if scope.includes(f.split("/")[0], split_table_dir(f.split("/")[1])[0])
    )


# Cassandra's keyspaces of its own (beside the user keyspaces in every data folder). `system` is
# this node's own state: its tokens and host id (`local`), what it knows of the others (`peers`),
# and in-flight work (batchlog, paxos, hints' metadata, repairs, compaction history). The others
# are cluster-wide: the schema (`system_schema`: table ids, columns), roles and permissions
# (`system_auth`), repair history and view status (`system_distributed`), traces.
NODE_LOCAL_SYSTEM_KEYSPACES = ("system",)
CLUSTER_SYSTEM_KEYSPACES = ("system_schema", "system_auth", "system_distributed", "system_traces")
SYSTEM_KEYSPACES = (*NODE_LOCAL_SYSTEM_KEYSPACES, *CLUSTER_SYSTEM_KEYSPACES)
# which system keyspaces a restore takes (the restore form's `system_keyspaces`)
SYSTEM_KEYSPACE_CHOICES = {
    "none": (),
    "cluster": CLUSTER_SYSTEM_KEYSPACES,
    "all": SYSTEM_KEYSPACES,
}
DEFAULT_SYSTEM_KEYSPACES = "cluster"


def excluded_system_keyspaces(choice: str, keyspaces: Sequence[str] = (), tables: Sequence[str] = ()) -> tuple[str, ...]:
    """The system keyspaces a restore leaves out for `choice`; one named in `keyspaces` or as
    `keyspace.table` in `tables` is always taken (asked for by name)."""
    if choice not in SYSTEM_KEYSPACE_CHOICES:
        raise CassandraNameError(
            f"param 'system_keyspaces': value {choice!r} is not one of {sorted(SYSTEM_KEYSPACE_CHOICES)}"
        )
    named = {*keyspaces, *(t.partition(".")[0] for t in tables if "." in t)}
    taken = set(SYSTEM_KEYSPACE_CHOICES[choice]) | named
    return tuple(k for k in SYSTEM_KEYSPACES if k not in taken)


def _did_you_mean(value: str, candidates: Iterable[str]) -> str:
    candidates = sorted(set(candidates))
    same_but_case = [c for c in candidates if c.lower() == value.lower()]
    if same_but_case:
        return f"; did you mean {same_but_case[0]!r}? (names are case-sensitive)"
    close = difflib.get_close_matches(value, candidates, n=1, cutoff=0.75)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (it has: {', '.join(candidates[:20]) or 'nothing'})"


def check_restore_names(keyspaces: Sequence[str], tables: Sequence[str], manifests: Iterable[Manifest], what: str) -> None:
    """Every keyspace and table asked for must be in the backup, exactly (Cassandra's names are
    case-sensitive on disk): else one error naming the param, the value and the close match."""
    folders = {f for m in manifests for f in select_restore_tables(m, Scope())}
    known_tables = {(f.split("/")[0], split_table_dir(f.split("/")[1])[0]) for f in folders}
    known_keyspaces = {k for k, _ in known_tables}
    for keyspace in keyspaces:
        if keyspace not in known_keyspaces:
            raise CassandraNameError(
                f"param 'keyspaces': value {keyspace!r} is not in {what}{_did_you_mean(keyspace, known_keyspaces)}"
            )
    for table in tables:
        if "." in table:
            keyspace, _, name = table.partition(".")
            found = (keyspace, name) in known_tables
            candidates = [f"{k}.{t}" for k, t in known_tables]
        else:
            found = any(t == table for _, t in known_tables)
            candidates = [t for _, t in known_tables]
        if not found:
            raise CassandraNameError(f"param 'tables': value {table!r} is not in {what}{_did_you_mean(table, candidates)}")


def restore_folder_for(template: str, host: str) -> str:
    """`{host}` in the restore folder becomes the node's host (several nodes on one filesystem)."""
    folder = validate_abs_path(template.replace("{host}", validate_host(host)), "restore_folder")
    if folder == "/":
        raise CassandraNameError("restore_folder: value '/' is not a restore folder")
    return folder


def check_outside(folder: str, data_dir: str, field_name: str = "restore_folder") -> str:
    """A restore never writes into the live data folder: neither may contain the other."""
    folder = posixpath.normpath(folder)
    data = posixpath.normpath(data_dir)
    if folder == data or folder.startswith(data.rstrip("/") + "/") or data.startswith(folder.rstrip("/") + "/"):
        raise CassandraNameError(
            f"{field_name}: value {folder!r} overlaps the live data folder {data!r}; restore elsewhere"
        )
    return folder


@dataclass(frozen=True)
class RestoredNode:
    """Where one node's restore went, and that node's own live folders (nodes may differ)."""

    host: str
    folder: str
    data_dir: str
    commitlog_dir: str


def next_steps(nodes: Sequence[RestoredNode], tables: Sequence[str]) -> str:
    """What the operator does after the files are in the restore folders (the node restart method).
    Each node's folders are named; a step names a path itself when every node has the same one."""

    def shared(values: Iterable[str], otherwise: str) -> str:
        distinct = set(values)
        return distinct.pop() if len(distinct) == 1 else otherwise

    data = shared((n.data_dir for n in nodes), "<its data folder>")
    restore = shared((n.folder for n in nodes), "<its restore folder>")
    commitlog = shared((n.commitlog_dir for n in nodes), "<its commit log folder>")
    table_list = ", ".join(tables) or "(none)"
    return "\n".join(
        [
            f"Restored on {', '.join(n.host for n in nodes)}; the live data folders were not touched.",
            "Folders per node (restore folder -> data folder, commit log folder):",
            *(f"  {n.host}: {n.folder} -> {n.data_dir}, {n.commitlog_dir}" for n in nodes),
            f"Tables: {table_list}",
            "Next steps (the node restart method):",
            f"1. On every node, check that {data}/<keyspace>/ and {restore}/<keyspace>/ list the same "
            "table folders: the id suffix must match `SELECT id FROM system_schema.tables WHERE keyspace_name=...`. "
            f"If a table was dropped and recreated, create it again from {restore}/schema.cql and move the "
            "files into the new id's folder.",
            "2. Check the sizes of the restored files against the manifest (the restore already verified each SHA-256).",
            "3. Stop Cassandra on ALL nodes (nodetool drain first).",
            f"4. On each node, one by one: remove {commitlog}/*, then for every restored table copy the files, "
            f"secondary-index folders `.<index>/` included, from {restore}/<keyspace>/<table dir>/ into "
            f"{data}/<keyspace>/<table dir>/ (e.g. `cp -a {restore}/<keyspace>/<table dir>/. {data}/<keyspace>/<table dir>/`), "
            "then give them to the cassandra user (`chown -R cassandra:cassandra`).",
            "5. Start the nodes one at a time; wait for UN in `nodetool status` before the next.",
            "6. Run `nodetool repair` on each node, then sanity-check the data.",
            "Alternative without a full restart: copy the files into the live table folder and run "
            "`nodetool refresh <keyspace> <table>` (or `nodetool import` on 4.0+).",
        ]
    )
