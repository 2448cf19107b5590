"""rsync-like folder <-> S3 prefix sync: the pure part (what to copy, what to delete, the manifest).

Every synced prefix holds a manifest object, :data:`MANIFEST_NAME`, mapping each file's relative
path to its size, mtime (nanoseconds) and SHA-256. The same values are also written as each
object's metadata (``mtime-ns``, ``sha256``). The manifest makes a "nothing changed" sync one
listing plus one GET, and it is what a download verifies every byte against.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

MANIFEST_NAME = ".s3sync-manifest.json"
META_MTIME = "mtime-ns"
META_SHA256 = "sha256"
Compare = Literal["size_mtime", "checksum"]


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int | None = None
    sha256: str | None = None

    def as_json(self) -> dict:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "sha256": self.sha256}


@dataclass
class SyncPlan:
    copy: list[str] = field(default_factory=list)  # relative paths to upload / download
    delete: list[str] = field(default_factory=list)  # relative paths to remove on the target side
    unchanged: list[str] = field(default_factory=list)
    # size matches but the manifest says nothing about the object: look at its metadata first
    need_metadata: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    def copy_bytes(self, sizes: Mapping[str, int]) -> int:
        return sum(sizes[p] for p in self.copy)


def key_for(prefix: str, rel: str) -> str:
    return f"{prefix.strip('/')}/{rel}" if prefix.strip("/") else rel


def rel_for(prefix: str, key: str) -> str | None:
    base = prefix.strip("/")
    if not base:
        return key
    return key[len(base) + 1 :] if key.startswith(base + "/") else None


def _same(source: FileState, recorded: FileState | None, compare: Compare) -> bool | None:
    """True/False when decidable; None when the record lacks what the comparison needs."""
    if recorded is None:
        return None
    if recorded.size != source.size:
        return False
    if compare == "checksum":
        if recorded.sha256 is None or source.sha256 is None:
            return None
        return recorded.sha256 == source.sha256
    if recorded.mtime_ns is None or source.mtime_ns is None:
        return None
    return recorded.mtime_ns == source.mtime_ns


def plan_sync(
    source: Mapping[str, FileState],
    target_sizes: Mapping[str, int],
    recorded: Mapping[str, FileState],
    *,
    compare: Compare = "size_mtime",
    delete: bool = False,
) -> SyncPlan:
    """
    Decide what to copy from `source` to the target.

    :param source: relative path -> state of each file on the copying side.
    :param target_sizes: relative path -> size of what the target holds now (the truth for presence).
    :param recorded: relative path -> state recorded when the target copy was made (manifest or
        object metadata); the mtime/checksum of the target copy.
    """
    plan = SyncPlan()
    for rel in sorted(source):
        state = source[rel]
        if rel not in target_sizes:
            plan.copy.append(rel)
            plan.reasons[rel] = "new"
            continue
        if target_sizes[rel] != state.size:
            plan.copy.append(rel)
            plan.reasons[rel] = "size differs"
            continue
        same = _same(state, recorded.get(rel), compare)
        if same is None:
            plan.need_metadata.append(rel)
        elif same:
            plan.unchanged.append(rel)
        else:
            plan.copy.append(rel)
            plan.reasons[rel] = "checksum differs" if compare == "checksum" else "mtime differs"
    if delete:
        plan.delete = sorted(set(target_sizes) - set(source))
    return plan


def refuse_wipe(plan: SyncPlan, source_count: int, what: str) -> None:
    """An empty source with deletes on would empty the target: a wrong folder, never a sync."""
    if plan.delete and source_count == 0:
        raise ValueError(
            f"refusing to delete all {len(plan.delete)} file(s) of {what}: the source is empty "
            "(a wrong or unmounted folder?)"
        )


def decide_with_metadata(
    plan: SyncPlan, rel: str, source: FileState, recorded: FileState | None, compare: Compare
) -> None:
    """Settle one `need_metadata` path once the object's own metadata is known."""
    same = _same(source, recorded, compare)
    if same:
        plan.unchanged.append(rel)
    else:
        plan.copy.append(rel)
        plan.reasons[rel] = "no recorded mtime/checksum" if same is None else "metadata differs"


def manifest_dumps(files: Mapping[str, FileState]) -> bytes:
    return json.dumps(
        {"version": 1, "files": {rel: files[rel].as_json() for rel in sorted(files)}}, separators=(",", ":")
    ).encode()


def manifest_loads(data: bytes | str) -> dict[str, FileState]:
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("files"), dict):
        raise ValueError("not a version 1 s3sync manifest")
    return {
        rel: FileState(size=int(v["size"]), mtime_ns=v.get("mtime_ns"), sha256=v.get("sha256"))
        for rel, v in doc["files"].items()
    }


def state_from_metadata(size: int, metadata: Mapping[str, str]) -> FileState:
    mtime = metadata.get(META_MTIME)
    return FileState(size=size, mtime_ns=int(mtime) if mtime and mtime.isdigit() else None, sha256=metadata.get(META_SHA256))


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def progress_line(files_done: int, files_total: int, bytes_done: int, bytes_total: int, seconds: float) -> str:
    rate = bytes_done / seconds if seconds > 0 else 0.0
    return (
        f"{files_done}/{files_total} files, {human_bytes(bytes_done)}/{human_bytes(bytes_total)}, "
        f"{human_bytes(rate)}/s"
    )


def check_rel_paths(paths: Iterable[str]) -> None:
    for rel in paths:
        if rel.startswith("/") or ".." in rel.split("/") or "\x00" in rel:
            raise ValueError(f"unsafe relative path {rel!r} in the S3 listing")
