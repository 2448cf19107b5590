"""Cassandra entries: snapshots and incremental backups uploaded to S3, and their restore
(DAGs `cassandra_<name>` and `cassandra_<name>_restore`)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from airflow_backup_provider import names
from airflow_backup_provider.config.common import (
    AbsPath,
    EntryBase,
    Identifier,
    Node,
    NodeSpecRecord,
    ServerSideEncryption,
    require_unique,
)
from airflow_backup_provider.stores.paths import check_outside


def _check_restore_folder(value: str) -> str:
    names.check_abs_path(value.replace("{host}", "host"))
    if value.rstrip("/") == "":
        raise ValueError("must not be '/'")
    return value


Keyspace = Annotated[str, AfterValidator(names.check_keyspace)]
TableRef = Annotated[str, AfterValidator(names.check_table_ref)]
Command = Annotated[str, AfterValidator(names.check_command)]
RestoreFolder = Annotated[str, AfterValidator(_check_restore_folder)]


class CassandraNode(Node):
    data_dir: AbsPath | None = Field(None, description="this node's data folder, when not the cluster's data_dir")
    commitlog_dir: AbsPath | None = Field(None, description="this node's commit log folder (named in restore steps)")


@dataclasses.dataclass(frozen=True)
class CassandraNodeSpec(NodeSpecRecord):
    """One node as the Cassandra operators take it: fields checked by the clusters file, the
    node's folders resolved against the cluster's defaults. Operators use it as it is."""

    host: str
    port: int | None
    data_dir: str
    commitlog_dir: str


class CassandraCluster(EntryBase, ServerSideEncryption):
    kind: Literal["cassandra"] = "cassandra"
    nodes: list[CassandraNode] = Field(min_length=1)
    data_dir: AbsPath = Field("/var/lib/cassandra/data", description="Cassandra's data_file_directories")
    commitlog_dir: AbsPath = Field("/var/lib/cassandra/commitlog", description="named in the restore steps")
    bucket: Identifier
    prefix: Identifier = "cassandra"
    nodetool: Command = Field("nodetool", description="nodetool on the nodes: a name on their PATH or an absolute path")
    keyspaces: list[Keyspace] = Field(default_factory=list, description="back up only these (empty: all)")
    exclude_keyspaces: list[Keyspace] = Field(default_factory=list)
    tables: list[TableRef] = Field(default_factory=list, description="back up only these `ks.table` (empty: all)")
    exclude_tables: list[TableRef] = Field(default_factory=list)
    compression_level: int = Field(
        1, ge=1, le=19, description="zstd level (1: fastest; SSTables are already compressed by Cassandra)"
    )
    max_parallel_uploads: int = Field(3, ge=1, le=64, description="nodes uploading at the same time")
    upload_pool: Identifier | None = Field(None, description="an Airflow pool that also bounds uploads")
    upload_threads: int = Field(4, ge=1, le=32, description="files in flight per node")
    s3_attempts: int = Field(5, ge=1, le=20, description="tries per S3 object (tenacity)")
    remove_uploaded_incrementals: bool = Field(
        False, description="after a verified upload, delete the uploaded files from backups/"
    )
    verify_checksums: bool = Field(False, description="verify re-reads every object and checks its SHA-256")
    restore_folder: RestoreFolder = Field(
        "/tmp/cassandra_restore", description="default restore folder; `{host}` becomes the node's host"
    )

    @model_validator(mode="after")
    def _unique_nodes(self) -> CassandraCluster:
        require_unique("nodes", [n.host for n in self.nodes])
        live = [("the data folder of drill_host", self.node_data_dir(n)) for n in self.nodes if n.host == self.drill_host]
        check_outside("drill_folder", self.drill_folder, live)  # a drill never writes into live data
        return self

    def node_data_dir(self, node: CassandraNode) -> str:
        return node.data_dir or self.data_dir

    def node_specs(self) -> list[CassandraNodeSpec]:
        return [
            CassandraNodeSpec(
                host=n.host,
                port=n.port,
                data_dir=self.node_data_dir(n),
                commitlog_dir=n.commitlog_dir or self.commitlog_dir,
            )
            for n in self.nodes
        ]
