"""The one registry of entry kinds: which kinds exist, the model that validates an entry of each
kind, and the builder that turns such an entry into DAGs.

The loader (:mod:`airflow_backup_provider.config.loading`) validates each entry against
:data:`Entry`, the pydantic union of the models discriminated by `kind`; the factory
(:mod:`airflow_backup_provider.factory`) builds each entry with its kind's builder. Adding a kind
is one line here, a model in ``config/<kind>.py`` and a ``build(entry)`` in ``builders/<kind>.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from airflow_backup_provider.config.bup import BupHost
from airflow_backup_provider.config.cassandra import CassandraCluster
from airflow_backup_provider.config.common import EntryBase
from airflow_backup_provider.config.devicedb import DevicedbCluster
from airflow_backup_provider.config.ebs import EbsPolicy
from airflow_backup_provider.config.riak import RiakCluster


@dataclass(frozen=True)
class Kind:
    model: type[EntryBase]
    # imported only when DAGs are built: builders import the operators (and Airflow), the loader
    # and its tests need only the models
    builder_module: str

    @property
    def name(self) -> str:
        return self.model.model_fields["kind"].default

    def builder(self) -> Callable[[Any], list[Any]]:
        """The kind's `build(entry) -> list[DAG]`."""
        return importlib.import_module(self.builder_module).build


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(RiakCluster, "airflow_backup_provider.builders.riak"),
        Kind(EbsPolicy, "airflow_backup_provider.builders.ebs"),
        Kind(CassandraCluster, "airflow_backup_provider.builders.cassandra"),
        Kind(DevicedbCluster, "airflow_backup_provider.builders.devicedb"),
        Kind(BupHost, "airflow_backup_provider.builders.bup"),
    )
}
ENTRY_MODELS: dict[str, type[EntryBase]] = {name: kind.model for name, kind in KINDS.items()}

# one entry of the clusters file: the model is chosen by `kind`
Entry = Annotated[Union[tuple(ENTRY_MODELS.values())], Field(discriminator="kind")]  # noqa: UP007 - built from the table
ENTRY_ADAPTER: TypeAdapter[EntryBase] = TypeAdapter(Entry)
