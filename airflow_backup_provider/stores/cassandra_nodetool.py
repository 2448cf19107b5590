"""The commands run on a Cassandra node (nodetool, sha256sum) and pure parsers of what they print."""

# The texts parsed here are those of reference/cassandra.md (Cassandra 3.x and 4.x).

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_backup_provider.stores.cassandra_layout import (
    validate_abs_path,
    validate_keyspace,
    validate_table,
    validate_tag,
)


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
