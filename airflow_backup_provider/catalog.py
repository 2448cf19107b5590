"""The backup catalog, pure: what one entry's row says (status, age, sizes, drills), its JSON, and
the Prometheus text of every row. No Airflow, no I/O: the plugin (plugins/catalog_data.py) reads
the facts from Airflow's metadata DB, the freshness DAG from the Task SDK, and both hand them here.

A status is one of:

- ``failing``: the last finished run of the backup DAG failed;
- ``never``: no backup has been recorded for the entry;
- ``stale``: the last good backup is older than the entry's ``max_age`` (default twice the
  schedule's period), e.g. its DAG is paused, no longer imports, or its runs stopped;
- ``ok``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

STATUSES = ("ok", "stale", "failing", "never")
FINISHED_STATES = frozenset({"success", "failed"})


@dataclass(frozen=True)
class Event:
    """One catalog Asset event: when it was recorded and its `extra` (see assets.event_extra)."""

    at: datetime
    extra: Mapping[str, Any] = field(default_factory=dict)


# one point of a chart: (Unix time, bytes, duration in seconds), the numbers possibly missing
Point = tuple[float, float | None, float | None]


@dataclass(frozen=True)
class Run:
    """One DAG run as the catalog shows it."""

    run_id: str
    state: str | None
    logical_date: datetime | None = None
    end_date: datetime | None = None


@dataclass(frozen=True)
class Facts:
    """What Airflow's metadata says about one entry (each part may be missing)."""

    last_backup: Event | None = None
    last_run: Run | None = None  # the last finished run of the backup DAG
    last_drill: Event | None = None  # the last drill that passed
    last_drill_run: Run | None = None  # the last finished drill run, passed or failed
    next_run: datetime | None = None
    paused: bool | None = None
    run_counts: Mapping[str, int] = field(default_factory=dict)  # backup DAG runs by state
    history: Sequence[Point] = ()  # backup events of the chart's window, oldest first


@dataclass(frozen=True)
class Entry:
    """The part of a clusters file entry the catalog needs."""

    kind: str
    name: str
    dag_id: str
    max_age: timedelta | None
    drill_dag_id: str | None = None


def entry_of(model: Any) -> Entry:
    """The catalog's view of a validated clusters file entry (config.EntryBase)."""
    return Entry(kind=model.kind, name=model.name, dag_id=model.dag_id(), max_age=model.effective_max_age(),
                 drill_dag_id=model.dag_id("_drill"))


def status(*, last_success: datetime | None, last_run_state: str | None, max_age: timedelta | None, now: datetime) -> str:
    """The row's status (see the module's docstring); a manual-only entry (no max_age) is never stale."""
    if last_run_state == "failed":
        return "failing"
    if last_success is None:
        return "never"
    if max_age is not None and now - last_success > max_age:
        return "stale"
    return "ok"


def format_age(age: timedelta | None) -> str:
    """`3d 4h`, `5h 12m`, `42m`, `10s`: the two largest units."""
    if age is None:
        return ""
    seconds = max(0, int(age.total_seconds()))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def catalog_row(entry: Entry, facts: Facts, now: datetime) -> dict[str, Any]:
    """One row of the page and of the JSON."""
    backup = facts.last_backup
    extra = backup.extra if backup else {}
    age = now - backup.at if backup else None
    drill_run = facts.last_drill_run
    drill_verdict = None
    if drill_run is not None:
        drill_verdict = "passed" if drill_run.state == "success" else "failed"
    last_run = facts.last_run
    return {
        "kind": entry.kind,
        "cluster": entry.name,
        "dag_id": entry.dag_id,
        "status": status(
            last_success=backup.at if backup else None,
            last_run_state=last_run.state if last_run else None,
            max_age=entry.max_age,
            now=now,
        ),
        "last_success": _iso(backup.at) if backup else None,
        "last_success_logical_date": extra.get("logical_date"),
        "age_seconds": int(age.total_seconds()) if age is not None else None,
        "age": format_age(age),
        "max_age_seconds": int(entry.max_age.total_seconds()) if entry.max_age is not None else None,
        "size_bytes": _number(extra.get("bytes")),
        "items": _number(extra.get("items")),
        "verified": extra.get("verified"),
        "last_run_id": last_run.run_id if last_run else None,
        "last_run_state": last_run.state if last_run else None,
        "last_drill": _iso(drill_run.end_date or drill_run.logical_date) if drill_run else None,
        "last_drill_verdict": drill_verdict,
        "last_drill_success": _iso(facts.last_drill.at) if facts.last_drill else None,
        "next_run": _iso(facts.next_run) if not facts.paused else None,
        "paused": facts.paused,
        "runs": dict(sorted(facts.run_counts.items())),
        # [unix time, bytes, duration seconds] per backup: compact, for a page of hundreds of charts
        "history": [[at, _number(size), _number(duration)] for at, size, duration in facts.history],
    }


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = {name: 0 for name in STATUSES}
    for row in rows:
        counts[row["status"]] += 1
    return {"clusters": len(rows), **counts}


# ---- Prometheus text format ---------------------------------------------------------------------------

METRICS = (
    ("backup_last_success_timestamp_seconds", "gauge", "Unix time of the last successful backup of the cluster."),
    ("backup_last_size_bytes", "gauge", "Bytes written by the last successful backup of the cluster."),
    ("backup_last_drill_success_timestamp_seconds", "gauge", "Unix time of the last restore drill that passed."),
    ("backup_runs_total", "counter", "Runs of the cluster's backup DAG, by final state."),
)


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{_label_value(str(value))}"' for key, value in labels.items()) + "}"


def _sample(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def render_metrics(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as Prometheus text exposition format (version 0.0.4); a missing value is no sample."""
    rows = list(rows)
    lines: list[str] = []
    for name, kind, text in METRICS:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for row in rows:
            labels = {"kind": row["kind"], "cluster": row["cluster"]}
            if name == "backup_runs_total":
                for state, count in sorted((row.get("runs") or {}).items()):
                    lines.append(f"{name}{_labels(**labels, state=state)} {_sample(count)}")
                continue
            value = {
                "backup_last_success_timestamp_seconds": _timestamp(row.get("last_success")),
                "backup_last_size_bytes": row.get("size_bytes"),
                "backup_last_drill_success_timestamp_seconds": _timestamp(row.get("last_drill_success")),
            }[name]
            if value is not None:
                lines.append(f"{name}{_labels(**labels)} {_sample(value)}")
    return "\n".join(lines) + "\n"


def _timestamp(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None
