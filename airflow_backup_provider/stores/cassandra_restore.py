"""Cassandra restore planning (pure): which day and tables, which system keyspaces, where, next steps."""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from airflow_backup_provider.stores.cassandra_files import Scope
from airflow_backup_provider.stores.cassandra_layout import (
    CassandraNameError,
    ManifestRef,
    split_table_dir,
    table_folder_of,
    validate_abs_path,
    validate_host,
)
from airflow_backup_provider.stores.cassandra_manifest import (
    Manifest,
    ManifestEntry,
)


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


def partial_name(final: str) -> str:
    """Where a restored file is written before it is checked: hidden, and clearly unfinished."""
    return posixpath.join(posixpath.dirname(final), f".{posixpath.basename(final)}.part")


def final_name(partial: str) -> str:
    return posixpath.join(posixpath.dirname(partial), posixpath.basename(partial)[1 : -len(".part")])


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
