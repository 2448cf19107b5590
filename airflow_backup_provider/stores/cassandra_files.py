"""What a Cassandra backup takes from a node (pure): the keyspace/table scope and the data-folder walker."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from airflow_backup_provider.stores.cassandra_layout import (
    BACKUPS_DIR,
    FILE_NAME_RE,
    SNAPSHOT_META_FILES,
    SNAPSHOTS_DIR,
    CassandraNameError,
    split_table_dir,
    validate_keyspace,
    validate_table,
    validate_tag,
)


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
        if not FILE_NAME_RE.match(entry.name) or entry.name in (".", ".."):
            raise CassandraNameError(f"file: value {posixpath.join(folder, relative, entry.name)!r} has an unsafe name")
        name = posixpath.join(relative, entry.name) if relative else entry.name
        if entry.is_dir:
            # secondary indexes live in `.<index>/` subfolders of the table folder
            yield from _walk_files(folder, listdir, name)
        else:
            yield name, entry.size
