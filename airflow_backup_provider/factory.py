"""Build the per-cluster DAGs from the clusters file.

A registry maps each entry kind to a builder ``(entry) -> list[DAG]``. Builders live in
``airflow_backup_provider/builders/<kind>.py`` and register themselves on import.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from typing import Any

from airflow.sdk import DAG

from airflow_backup_provider.config import ClustersFile, EntryBase, load_clusters_file

log = logging.getLogger(__name__)

Builder = Callable[[Any], list[DAG]]
BUILDERS: dict[str, Builder] = {}
BUILDER_MODULES = ("riak", "ebs", "cassandra", "devicedb", "bup")


class NotImplementedKind(NotImplementedError):
    pass


class InvalidEntries(ValueError):
    """Raised by the config-check DAG file so that broken entries show as import errors."""


def register(kind: str) -> Callable[[Builder], Builder]:
    def decorator(builder: Builder) -> Builder:
        BUILDERS[kind] = builder
        return builder

    return decorator


def _load_builders() -> None:
    for name in BUILDER_MODULES:
        try:
            importlib.import_module(f"airflow_backup_provider.builders.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"airflow_backup_provider.builders.{name}":
                raise


def build_entry(entry: EntryBase) -> list[DAG]:
    _load_builders()
    builder = BUILDERS.get(entry.kind)
    if builder is None:
        raise NotImplementedKind(f"entry {entry.name!r}: kind {entry.kind!r} is not implemented yet")
    return builder(entry)


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
    clusters = load_clusters_file(path)
    _load_builders()
    errors = _validation_errors(clusters)
    errors += [
        f"{clusters.path}: entry {e.name!r} (kind {e.kind!r}): kind {e.kind!r} is not implemented yet"
        for e in clusters.entries
        if e.kind not in BUILDERS
    ]
    if errors:
        raise InvalidEntries("\n".join(errors))
