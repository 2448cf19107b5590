"""Restore drills (pure): where a drill may write, what a restored folder must look like, the verdict record.

A drill restores a backup somewhere harmless (a scratch folder of its own run under the entry's
`drill_folder`), checks what came back against what the backup recorded, and removes the
scratch folder whatever happened. Its verdict goes to the report and, per backup, into a small
JSON object next to that backup's manifest (`<manifest key>.drill.json`).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_backup_provider import names

DRILL_SUFFIX = "_drill"
RECORD_SUFFIX = ".drill.json"
RECORD_FORMAT = "airflow-backup-provider/drill/1"
PASSED = "passed"
FAILED = "failed"
# how many problems one message names (the record keeps more)
NAMED_PROBLEMS = 5
RECORDED_PROBLEMS = 100


def scratch_folder(drill_folder: str, dag_id: str, run_id: str) -> str:
    """The one folder a drill run writes to: `<drill_folder>/<dag id>/<run id, made safe>`."""
    base = names.check_abs_path(drill_folder, "drill_folder").rstrip("/")
    if not base:
        raise names.InvalidName("drill_folder: value '/' is not a folder of its own")
    safe_run = re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id).strip(".")[:120] or "run"
    return posixpath.join(base, _safe(dag_id), safe_run)


def _safe(word: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", word).strip(".")[:200] or "dag"


def record_key(manifest_key: str) -> str:
    """Where the drill's verdict on one backup goes: next to its manifest."""
    return manifest_key + RECORD_SUFFIX


def build_record(
    *,
    dag_id: str,
    run_id: str,
    backup: str,
    manifest_key: str,
    checked_at: datetime,
    files: int,
    size: int,
    problems: Iterable[str],
    what: str,
) -> dict[str, Any]:
    problems = list(problems)
    return {
        "format": RECORD_FORMAT,
        "dag_id": dag_id,
        "run_id": run_id,
        "backup": backup,
        "manifest": manifest_key,
        "checked_at": checked_at.isoformat(),
        "verdict": FAILED if problems else PASSED,
        "checked": what,
        "files": files,
        "bytes": size,
        "problems": problems[:RECORDED_PROBLEMS],
        "problem_count": len(problems),
    }


def record_json(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, indent=1, sort_keys=True) + "\n").encode()


def produced_entry(backup_id: str, size: int, problems: list[str]) -> dict[str, Any]:
    """One `produced` item of a drill's outcome: the backup it proved (or not)."""
    return {"id": backup_id, "size": size, "verified": not problems, "verdict": FAILED if problems else PASSED}


def named(problems: list[str]) -> str:
    shown = "; ".join(problems[:NAMED_PROBLEMS])
    return shown + (f"; and {len(problems) - NAMED_PROBLEMS} more" if len(problems) > NAMED_PROBLEMS else "")


# ---- what a restored folder holds ----------------------------------------------------------------


@dataclass(frozen=True)
class TreeEntry:
    kind: str  # "f" file, "d" folder, "l" symlink, other `find -printf %y` letters otherwise
    size: int
    path: str  # relative to the listed folder
    mode: str = ""  # as `ls -l` shows it, e.g. "-rw-r--r--"


FIND_FORMAT = "%y %M %s %P\\0"


def find_argv(folder: str) -> list[str]:
    """`find FOLDER -mindepth 1 -printf '%y %s %P\\0'`: every entry under the folder, NUL-separated."""
    return ["find", names.check_abs_path(folder, "scratch folder"), "-mindepth", "1", "-printf", FIND_FORMAT]


def parse_find(output: str) -> list[TreeEntry]:
    entries = []
    for record in output.split("\0"):
        if not record:
            continue
        kind, mode, size, path = record.split(" ", 3)
        entries.append(TreeEntry(kind=kind, size=int(size), path=path, mode=mode))
    return entries


def folders_of(files: Iterable[str], also: Iterable[str] = ()) -> set[str]:
    """Every folder the relative `files` (and the folders `also`) need, their parents included."""
    folders: set[str] = set()
    for path in [*(posixpath.dirname(f) for f in files), *also]:
        while path:
            folders.add(path)
            path = posixpath.dirname(path)
    return folders


def compare_tree(found: Iterable[TreeEntry], files: Mapping[str, int], folders: Iterable[str]) -> list[str]:
    """What differs between a restored folder and what it must hold: each expected file with its
    size, exactly the expected folders, nothing else (no leftover `.part`, no stray file)."""
    problems = []
    want_folders = set(folders)
    seen_files: dict[str, int] = {}
    seen_folders: set[str] = set()
    for entry in found:
        if entry.kind == "f":
            seen_files[entry.path] = entry.size
        elif entry.kind == "d":
            seen_folders.add(entry.path)
        else:
            problems.append(f"{entry.path}: is not a plain file or folder (type {entry.kind})")
    for path, size in sorted(files.items()):
        if path not in seen_files:
            problems.append(f"{path}: missing from the restored folder")
        elif seen_files[path] != size:
            problems.append(f"{path}: {seen_files[path]} bytes on disk, the manifest says {size}")
    problems += [f"{p}: a file the backup does not list" for p in sorted(set(seen_files) - set(files))]
    problems += [f"{p}/: a folder the restore would not make" for p in sorted(seen_folders - want_folders)]
    problems += [f"{p}/: a folder the restore makes is missing" for p in sorted(want_folders - seen_folders)]
    return problems


def compare_listing(recorded: Mapping[str, int], listed: Mapping[str, int]) -> list[str]:
    """A bucket listing (key -> size) against what a manifest recorded: each recorded object there
    with its size, and none the manifest does not know."""
    problems = []
    for key, size in sorted(recorded.items()):
        if key not in listed:
            problems.append(f"{key}: missing from the bucket")
        elif listed[key] != size:
            problems.append(f"{key}: {listed[key]} bytes in the bucket, the manifest says {size}")
    problems += [f"{k}: in the bucket but not in the manifest" for k in sorted(set(listed) - set(recorded))]
    return problems


# ---- a bup save, as `bup ls -l -s` recorded it, against its restored folder ----------------------

FIND_KIND_OF = {"file": "f", "dir": "d", "symlink": "l", "fifo": "p", "socket": "s"}
# `bup ls -l` shows the setuid/setgid/sticky bits as plain x/- (a 1777 /tmp is drwxrwxrwx): compare the rest
_PLAIN_MODE = str.maketrans({"s": "x", "t": "x", "S": "-", "T": "-"})


def plain_mode(mode: str) -> str:
    return mode.translate(_PLAIN_MODE)


@dataclass(frozen=True)
class SavedEntry:
    """One path of a save as ``bup ls -l -s -A`` lists it."""

    path: str  # relative to the save's root
    kind: str  # "file", "dir", "symlink", ...
    mode: str
    size: int
    hash: str


def compare_save(recorded: Iterable[SavedEntry], found: Iterable[TreeEntry]) -> list[str]:
    """Kind, mode and size of every saved path against the restored folder; nothing missing, nothing more.
    (Folders' sizes are the filesystem's own, not the save's.)"""
    problems = []
    on_disk = {t.path: t for t in found}
    saved = {e.path: e for e in recorded}
    for path, entry in sorted(saved.items()):
        got = on_disk.get(path)
        if got is None:
            problems.append(f"{path}: in the save, missing from the restored folder")
        elif got.kind != FIND_KIND_OF.get(entry.kind, "?"):
            problems.append(f"{path}: restored as type {got.kind}, the save has a {entry.kind}")
        elif plain_mode(got.mode) != plain_mode(entry.mode):
            problems.append(f"{path}: restored with mode {got.mode}, the save has {entry.mode}")
        elif entry.kind != "dir" and got.size != entry.size:
            problems.append(f"{path}: {got.size} bytes restored, the save has {entry.size}")
    problems += [f"{p}: restored but not in the save" for p in sorted(set(on_disk) - set(saved))]
    return problems


# ---- a scratch server of the drill's own (a devicedb node on a restored store) ---------------------

SCRATCH_JOBS = "jobs"  # `<scratch>/jobs/<job>/`: the detached processes a drill started (pid, log)
SCRATCH_PORTS = range(20000, 60000)  # where a scratch server's port is chosen (never a live node's)


def listening_ports_argv() -> list[str]:
    """`ss -Htln`: every listening TCP socket of the drill host, no header, numeric."""
    return ["ss", "-Htln"]


def parse_listening_ports(output: str) -> set[int]:
    """The ports of `ss -Htln` lines (``LISTEN 0 128 127.0.0.11:22 0.0.0.0:*``, ``[::]:80``, ``*:8080``)."""
    ports = set()
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3].rpartition(":")[2].isdigit():
            ports.add(int(fields[3].rpartition(":")[2]))
    return ports


def free_port(listening: Iterable[int], avoid: Iterable[int], seed: str) -> int:
    """A port no socket of the drill host listens on and no live node is configured on: the
    same for the same `seed` (the run) while it stays free, so a retry finds its own server."""
    taken = set(listening) | set(avoid)
    span = len(SCRATCH_PORTS)
    start = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % span
    for step in range(span):
        port = SCRATCH_PORTS[(start + step * 7919) % span]  # 7919 is prime to the span: every port once
        if port not in taken:
            return port
    raise ValueError("no free TCP port on the drill host")
