"""Build the per-cluster DAGs from the clusters file, each entry with its kind's builder
(:mod:`airflow_backup_provider.kinds` says which kinds exist and where their builders are)."""

from __future__ import annotations

import logging
import os
from typing import Any

from airflow.sdk import DAG

from airflow_backup_provider.config import ClustersFile, EntryBase, load_clusters_file
from airflow_backup_provider.kinds import KINDS

log = logging.getLogger(__name__)


class InvalidEntries(ValueError):
    """Raised by the config-check DAG file so that broken entries show as import errors."""


def build_entry(entry: EntryBase) -> list[DAG]:
    return KINDS[entry.kind].builder()(entry)


def _validation_errors(clusters: ClustersFile) -> list[str]:
    """The bad defaults (also named in each entry that uses one), then the broken entries."""
    return [f"{clusters.path}: {error}" for error in [*clusters.defaults_errors, *clusters.errors]]


def build_dags(clusters: ClustersFile) -> tuple[dict[str, DAG], list[str]]:
    """(dag_id -> DAG for every buildable entry, one error text per entry that could not be built)."""
    dags: dict[str, DAG] = {}
    errors = _validation_errors(clusters)
    for entry in clusters.entries:
        try:
            built = build_entry(entry)
        except Exception as exc:  # one broken entry must never hide the others
            errors.append(f"{clusters.path}: entry {entry.name!r} (kind {entry.kind!r}): {exc}")
            continue
        for dag in built:
            dags[dag.dag_id] = dag
    for error in errors:
        log.error("backup clusters file: %s", error)
    return dags, errors


def register_dags(namespace: dict[str, Any], path: str | os.PathLike | None = None) -> list[str]:
    """Load the clusters file, build every DAG and put it in `namespace` (a DAG file's globals)."""
    dags, errors = build_dags(load_clusters_file(path))
    namespace.update(dags)
    return errors


def check_entries(path: str | os.PathLike | None = None) -> None:
    """Raise one error listing every broken entry, so the UI shows it as an import error.

    Only validates (no DAG is built here, so no DAG id is defined in two files); an entry whose
    builder raises is logged by :func:`register_dags`.
    """
    errors = _validation_errors(load_clusters_file(path))
    if errors:
        raise InvalidEntries("\n".join(errors))
