"""A Cassandra node's backup manifest (pure): model and JSON, the upload plan it records, the S3 check."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from airflow_backup_provider.stores.cassandra_files import NodeFile
from airflow_backup_provider.stores.cassandra_layout import (
    FILE_NAME_RE,
    data_key,
    split_table_dir,
    table_folder_of,
    validate_keyspace,
)

MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # `<keyspace>/<table dir>/<file>`: where a restore writes it
    key: str  # the S3 object (zstd-compressed)
    size: int
    sha256: str
    compressed_size: int
    source: str = "snapshot"  # "backups", or "snapshot,backups"
    uploaded_in: str = ""  # the tag of the run that uploaded the object

    @property
    def in_backups(self) -> bool:
        return "backups" in self.source.split(",")

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
    if len(parts) < 3 or any(p in ("", ".", "..") or not FILE_NAME_RE.match(p) for p in parts):
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
