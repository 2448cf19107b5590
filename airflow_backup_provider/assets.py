"""The backup catalog's Assets: one per cluster and kind, one naming scheme for every kind.

The ``report`` task of every backup, restore and drill DAG (builders/common.add_report) adds an
event to its cluster's Asset through the one :data:`CATALOG_ALIAS` outlet, only when the run
really backed up, restored or drilled (never on a dry run, never when every task was skipped).
The event's ``extra`` (:func:`event_extra`) is what the catalog page, its JSON and its metrics
read, from Airflow's metadata alone.

bup's backup DAG also updates its repository's Asset (builders/bup.repository_asset) after each
save, which its S3 sync DAG is scheduled on. That Asset stays separate: the sync DAG closes with a
report too, and a DAG must never emit on the Asset it is scheduled on (it would start itself);
neither may a restore or a drill start a sync.

Pure but for the Asset classes: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from airflow.sdk import Asset, AssetAlias

from airflow_backup_provider.dates import format_instant

ASSET_PREFIX = "backup_"
ASSET_URI_SCHEME = "x-backup"  # "x-": a scheme of our own, which Airflow does not normalize
CATALOG_ALIAS = "backup_catalog"
# the DAG id's suffix after `<kind>_<name>` -> the run type its events record; other DAGs
# (an S3 sync, an fsck) record nothing in the catalog
RUN_TYPES: dict[str, str] = {"": "backup", "_restore": "restore", "_drill": "drill"}
# an event lists at most this many ids (a cluster of many volumes stays a small row)
MAX_IDS = 50


def asset_name(kind: str, name: str) -> str:
    return f"{ASSET_PREFIX}{kind}_{name}"


def cluster_asset(entry: Any) -> Asset:
    """The Asset of one entry of the clusters file (anything with `kind` and `name`)."""
    return Asset(name=asset_name(entry.kind, entry.name), uri=f"{ASSET_URI_SCHEME}://{entry.kind}/{entry.name}")


def catalog_alias() -> AssetAlias:
    return AssetAlias(name=CATALOG_ALIAS)


def run_type_of(dag_id: str, backup_dag_id: str) -> str | None:
    """`backup`, `restore`, `drill` from the DAG id's suffix after the entry's backup DAG id; None
    for the DAGs that record nothing in the catalog."""
    if not dag_id.startswith(backup_dag_id):
        return None
    return RUN_TYPES.get(dag_id[len(backup_dag_id) :])


def catalog_items(backed_up: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """What a run produced, from the report's backed-up rows, without what it only staged for a
    later task (a bup dump, which the save then holds)."""
    return [item for row in backed_up for item in row.get("produced") or [] if not item.get("staged")]


def _verified(produced: Iterable[Mapping[str, Any]], task_states: Mapping[str, str | None]) -> bool:
    """An artifact said it was read back, or a verify task of the run succeeded."""
    if any(item.get("verified") not in (None, False, "no", "") for item in produced):
        return True
    return any(key.split("[")[0].startswith("verify") and state == "success" for key, state in task_states.items())


def event_extra(
    *,
    run_type: str,
    dag_id: str,
    run_id: str,
    logical_date: datetime,
    started: datetime | None,
    ended: datetime,
    backed_up: Iterable[Mapping[str, Any]],
    task_states: Mapping[str, str | None],
) -> dict[str, Any]:
    """The `extra` of one catalog event, from the report's summary rows of what the run produced."""
    produced = catalog_items(backed_up)
    sizes = [item["size"] for item in produced if isinstance(item.get("size"), int) and not isinstance(item["size"], bool)]
    extra: dict[str, Any] = {
        "run_type": run_type,
        "dag_id": dag_id,
        "run_id": run_id,
        "logical_date": format_instant(logical_date),
        "ids": [str(item.get("id")) for item in produced[:MAX_IDS]],
        "bytes": sum(sizes) if sizes else None,
        "items": len(produced),
        "duration_seconds": round((ended - started).total_seconds(), 3) if started else None,
        "verified": _verified(produced, task_states),
    }
    if run_type == "drill":
        # a drill that failed fails its report, and a failed task emits no event: the catalog
        # reads failed drills from their runs' state
        extra["verdict"] = "passed"
    return extra
