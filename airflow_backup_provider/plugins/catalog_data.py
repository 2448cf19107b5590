"""The catalog's facts from Airflow's metadata DB alone (never S3, EC2 or a node): a fixed number
of bounded queries for any number of entries, each restricted to the entries asked for.

Runs in the api-server (which owns the DB session); tasks read the same facts through the Task
SDK instead (dags/backup_freshness.py).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from airflow_backup_provider.assets import asset_name
from airflow_backup_provider.catalog import FINISHED_STATES, Entry, Event, Facts, Point, Run, entry_of

# the chart's window
HISTORY = timedelta(days=90)

_ENTRIES_CACHE: dict[tuple[str, int, int], list[Entry]] = {}


def catalog_entries(path: str | os.PathLike | None = None) -> list[Entry]:
    """The clusters file's valid entries, read again only when the file changed."""
    from airflow_backup_provider.config import load_clusters_file
    from airflow_backup_provider.config.loading import resolve_clusters_file

    resolved = Path(resolve_clusters_file(path))
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    if key not in _ENTRIES_CACHE:
        _ENTRIES_CACHE.clear()
        _ENTRIES_CACHE[key] = [entry_of(model) for model in load_clusters_file(resolved).entries]
    return _ENTRIES_CACHE[key]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_facts(
    session: Session, entries: Sequence[Entry], *, now: datetime, history_of: Collection[str] = ()
) -> dict[str, Facts]:
    """dag_id of each entry's backup DAG -> its Facts; the chart's points only for the entries
    whose backup DAG id is in `history_of` (the rows a page shows)."""
    from airflow.models import DagModel
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun

    if not entries:
        return {}
    since = now - HISTORY
    by_asset = {asset_name(e.kind, e.name): e for e in entries}
    backup_ids = [e.dag_id for e in entries]
    drill_ids = [e.drill_dag_id for e in entries if e.drill_dag_id]
    asset_ids: dict[str, int] = {
        name: asset_id
        for asset_id, name in session.execute(select(AssetModel.id, AssetModel.name).where(AssetModel.name.in_(list(by_asset))))
    }
    dags = {
        dag_id: (paused, _aware(next_run))
        for dag_id, paused, next_run in session.execute(
            select(DagModel.dag_id, DagModel.is_paused, DagModel.next_dagrun_create_after).where(
                DagModel.dag_id.in_(backup_ids + drill_ids)
            )
        )
    }

    # The newest event of each (asset, source DAG): the last backup, the last passed drill. Looked
    # for in the chart's window first (the asset/timestamp index bounds it); only the clusters
    # without one there are searched further back.
    def newest(asset_id_list: list[int], bounded: bool) -> dict[tuple[int, str | None], Event]:
        if not asset_id_list:
            return {}
        ids = select(func.max(AssetEvent.id)).where(AssetEvent.asset_id.in_(asset_id_list))
        if bounded:
            ids = ids.where(AssetEvent.timestamp >= since)
        ids = ids.group_by(AssetEvent.asset_id, AssetEvent.source_dag_id)
        return {
            (asset_id, dag_id): Event(at=_aware(at), extra=extra or {})
            for asset_id, dag_id, at, extra in session.execute(
                select(AssetEvent.asset_id, AssetEvent.source_dag_id, AssetEvent.timestamp, AssetEvent.extra).where(
                    AssetEvent.id.in_(ids.scalar_subquery())
                )
            )
        }

    last_events = newest(list(asset_ids.values()), bounded=True)
    older = [
        asset_ids[name]
        for name, entry in by_asset.items()
        if name in asset_ids
        and ((asset_ids[name], entry.dag_id) not in last_events
             or (entry.drill_dag_id in dags and (asset_ids[name], entry.drill_dag_id) not in last_events))
    ]
    last_events.update(newest(older, bounded=False))

    points: dict[tuple[int, str | None], list[Point]] = defaultdict(list)
    charted = [asset_ids[name] for name, entry in by_asset.items() if entry.dag_id in history_of and name in asset_ids]
    if charted:
        # the two numbers the chart draws, taken out of `extra` by the database (JSON-decoding
        # every event's whole extra is most of the time of a page otherwise)
        for asset_id, dag_id, at, size, duration in session.execute(
            select(
                AssetEvent.asset_id,
                AssetEvent.source_dag_id,
                AssetEvent.timestamp,
                AssetEvent.extra["bytes"].as_float(),
                AssetEvent.extra["duration_seconds"].as_float(),
            )
            .where(AssetEvent.asset_id.in_(charted), AssetEvent.timestamp >= since)
            .order_by(AssetEvent.timestamp)
        ):
            points[asset_id, dag_id].append((_aware(at).timestamp(), size, duration))

    # the last finished run of each backup and drill DAG
    last_run_ids = (
        select(func.max(DagRun.id))
        .where(DagRun.dag_id.in_(backup_ids + drill_ids), DagRun.state.in_(list(FINISHED_STATES)))
        .group_by(DagRun.dag_id)
    )
    last_runs = {
        dag_id: Run(run_id=run_id, state=str(state), logical_date=_aware(logical), end_date=_aware(end))
        for dag_id, run_id, state, logical, end in session.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.logical_date, DagRun.end_date).where(
                DagRun.id.in_(last_run_ids.scalar_subquery())
            )
        )
    }
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for dag_id, state, count in session.execute(
        select(DagRun.dag_id, DagRun.state, func.count()).where(DagRun.dag_id.in_(backup_ids)).group_by(DagRun.dag_id, DagRun.state)
    ):
        counts[dag_id][str(state)] = count

    facts: dict[str, Facts] = {}
    for name, entry in by_asset.items():
        asset_id = asset_ids.get(name)
        paused, next_run = dags.get(entry.dag_id, (None, None))
        facts[entry.dag_id] = Facts(
            last_backup=last_events.get((asset_id, entry.dag_id)),
            last_run=last_runs.get(entry.dag_id),
            last_drill=last_events.get((asset_id, entry.drill_dag_id)),
            last_drill_run=last_runs.get(entry.drill_dag_id) if entry.drill_dag_id else None,
            next_run=next_run,
            paused=paused,
            run_counts=counts.get(entry.dag_id, {}),
            history=points.get((asset_id, entry.dag_id), []),
        )
    return facts


def catalog_rows(
    session: Session, entries: Sequence[Entry], *, now: datetime | None = None, history_of: Collection[str] = ()
) -> list[dict[str, Any]]:
    from airflow_backup_provider.catalog import catalog_row

    now = now or datetime.now(UTC)
    facts = read_facts(session, entries, now=now, history_of=history_of)
    return [catalog_row(entry, facts[entry.dag_id], now) for entry in entries]


SUMMARY_KEYS = ("kind", "cluster", "status", "last_success", "age", "size_bytes", "items", "last_drill_verdict", "next_run")


def summary_document(rows: Sequence[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The JSON summary (GET /backups/api/summary): the counts and the main columns of each row."""
    from airflow_backup_provider.catalog import summary

    return {"generated_at": now.isoformat(), "summary": summary(rows), "clusters": [{k: r[k] for k in SUMMARY_KEYS} for r in rows]}


def print_summary() -> None:
    """The catalog's JSON summary of every entry, read from this process's metadata DB (the demo's)."""
    import json

    from airflow.utils.session import create_session

    now = datetime.now(UTC)
    with create_session() as session:
        rows = catalog_rows(session, catalog_entries(), now=now)
    print(json.dumps(summary_document(rows, now), indent=2))
