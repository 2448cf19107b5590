"""Run real DAGs from the real DAG file: load them for a clusters file, run one with dag.test()."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DAG_FILE = REPO / "tests" / "dags" / "backup_dags.py"  # a link to dags/backup_dags.py
CHECK_FILE = REPO / "dags" / "backup_clusters_check.py"

_migrated = False


def migrate_db() -> None:
    global _migrated
    if _migrated:
        return
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    _migrated = True


@contextmanager
def clusters_file(tmp_path: Path, content: dict[str, Any] | str) -> Iterator[Path]:
    """Write a clusters file and point BACKUP_CLUSTERS_FILE at it for the duration."""
    path = tmp_path / "clusters.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    saved = os.environ.get("BACKUP_CLUSTERS_FILE")
    os.environ["BACKUP_CLUSTERS_FILE"] = str(path)
    try:
        yield path
    finally:
        if saved is None:
            os.environ.pop("BACKUP_CLUSTERS_FILE", None)
        else:
            os.environ["BACKUP_CLUSTERS_FILE"] = saved


def load_dagbag(dag_file: Path = DAG_FILE, safe_mode: bool = False):
    """The DagBag the dag-processor would see for the current BACKUP_CLUSTERS_FILE."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(dag_file), safe_mode=safe_mode)


# id(dag) -> (dag, the clusters file's text it was loaded from); the DAG is kept so its id stays its own
_LOADED_FROM: dict[int, tuple[Any, str]] = {}


def load_dag(dag_id: str):
    bag = load_dagbag()
    assert not bag.import_errors, bag.import_errors
    assert dag_id in bag.dags, f"{dag_id} not in {sorted(bag.dags)}"
    dag = bag.dags[dag_id]
    _LOADED_FROM[id(dag)] = (dag, Path(os.environ["BACKUP_CLUSTERS_FILE"]).read_text())
    return dag


def fresh_copy(dag):
    """The same DAG parsed anew from the clusters file it came from, as the dag-processor gives every
    run: dag.test() on a DAG object that ran before keeps that run's resolved params (a dry run
    stays dry). A DAG not loaded by `load_dag` is returned as it is."""
    loaded = _LOADED_FROM.get(id(dag))
    if loaded is None or loaded[0] is not dag:
        return dag
    with tempfile.TemporaryDirectory(prefix="abp-clusters-") as folder, clusters_file(Path(folder), loaded[1]):
        bag = load_dagbag()
        assert not bag.import_errors, bag.import_errors
        return bag.dags[dag.dag_id]


def as_logical_date(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_dag(dag, logical_date: datetime | str = "2026-11-20", conf: dict[str, Any] | None = None) -> dict[str, str]:
    """Run `dag` once with dag.test() and return {task key: state}; mapped tasks as `task_id[i]`."""
    migrate_db()
    dag = fresh_copy(dag)
    date = as_logical_date(logical_date)
    _set_conf_of_existing_run(dag.dag_id, date, conf or {})
    run = dag.test(logical_date=date, run_conf=conf or None)
    return task_states(dag.dag_id, run.run_id)


def _set_conf_of_existing_run(dag_id: str, logical_date: datetime, conf: dict[str, Any]) -> None:
    """dag.test() reuses (clears and re-runs) the run of that logical date, keeping its old conf;
    a re-run here is "clear and run again with these params", like the UI's clear + trigger."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter_by(dag_id=dag_id, logical_date=logical_date):
            run.conf = conf


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        return {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state) for ti in rows
        }


def run_state(dag_id: str, run_id: str) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return str(session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one().state)


def xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key, map_index=map_index)
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)
