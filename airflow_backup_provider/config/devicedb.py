"""devicedb entries: one cluster snapshot, per-node tars to S3, and their restore
(DAGs `devicedb_<name>` and `devicedb_<name>_restore`)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from airflow_backup_provider import names
from airflow_backup_provider.config.common import (
    AbsPath,
    Duration,
    EntryBase,
    Host,
    Identifier,
    Node,
    NodeSpecRecord,
    ServerSideEncryption,
    require_unique,
)


class DevicedbNode(Node):
    """A devicedb node: reached over SSH at `host`:`port`, serving its HTTP API on `http_port`."""

    http_port: int = Field(8080, ge=1, le=65535, description="the node's cluster HTTP port")
    http_host: Host | None = Field(
        None,
        description="the address the HTTP API listens on, if not `host` (with ssh_tunnel: as seen from the node; default localhost)",
    )
    store_dir: AbsPath | None = Field(None, description="this node's -store folder (default: the cluster's store_dir)")
    snapshot_dir: AbsPath | None = Field(
        None, description="this node's -snapshot_store folder (default: the cluster's snapshot_dir)"
    )


@dataclasses.dataclass(frozen=True)
class DevicedbNodeSpec(NodeSpecRecord):
    """One node as the devicedb operators, sensors and trigger take it: fields checked by the
    clusters file, folders resolved against the cluster's defaults, and its file-name-safe
    `label` (the name of its tar and of its tasks)."""

    label: str
    host: str
    ssh_port: int
    http_port: int
    http_host: str | None
    store_dir: str
    snapshot_dir: str | None
    transfer_dir: str | None


def _check_service_argv(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("must be a non-empty argv list")
    for word in value:
        try:
            names.check_service_word(word)
        except names.InvalidName as exc:
            raise ValueError(f"word {word!r} {exc}") from None
    return value


ServiceArgv = Annotated[list[str], AfterValidator(_check_service_argv)]


class DevicedbCluster(EntryBase, ServerSideEncryption):
    kind: Literal["devicedb"] = "devicedb"
    nodes: list[DevicedbNode] = Field(min_length=1)
    bucket: Identifier = Field(description="the S3 bucket the node tars and manifests go to")
    prefix: Identifier = Field("devicedb", description="S3 key prefix: <prefix>/<cluster>/<uuid>/<node>.tar")
    store_dir: AbsPath = Field("/var/lib/devicedb/store", description="each node's -store folder")
    snapshot_dir: AbsPath | None = Field(
        None, description="each node's -snapshot_store folder (needed for cleanup_local_snapshots)"
    )
    missing_grace: Duration = Field(
        timedelta(minutes=5),
        description="how long a node may report `missing` (or not answer) after the trigger before it is a failure",
    )
    http_timeout: Duration = Field(timedelta(seconds=30), description="connect/read timeout of one HTTP call")
    ssh_tunnel: bool = Field(False, description="reach each node's HTTP port through an SSH tunnel (ssh_conn_id)")
    part_size_mb: int = Field(16, ge=5, le=5120, description="S3 multipart part size in MiB")
    verify_upload: bool = Field(True, description="read every uploaded tar back from S3 and check its SHA-256")
    cleanup_local_snapshots: bool = Field(
        False,
        description="after a verified upload, delete the node's <snapshot_dir>/snapshot-<uuid>-<nodeID> folder (and the run's orphaned snapshots) over SSH",
    )
    spool_dir: AbsPath | None = Field(
        None,
        description="worker folder each node tar is read into at the network's speed before its upload (devicedb cuts a response after 45 s); default: the worker's temp folder",
    )
    spool_max_bytes: int = Field(
        64 * 1024**3,
        ge=1024**2,
        description="the largest node tar the spool takes (bytes); a bigger one fails the upload at once",
    )
    check_site: Identifier | None = Field(
        "airflow-backup",
        description="site of the key written before each snapshot and read back after a restore (null: no key check)",
    )
    check_bucket: Literal["default", "lww", "cloud", "local"] = "lww"
    check_key: Identifier = "airflow-backup-check"
    membership_check: Literal["required", "best_effort", "off"] = Field(
        "best_effort",
        description="after a restore, compare the node ids every node reports (GET /cluster, as `devicedb cluster overview`)",
    )
    service_stop_command: ServiceArgv = Field(["systemctl", "stop", "devicedb"], description="argv that stops a node")
    service_start_command: ServiceArgv = Field(["systemctl", "start", "devicedb"], description="argv that starts a node")
    service_status_command: ServiceArgv = Field(
        ["systemctl", "is-active", "devicedb"],
        description="argv that exits 0 and prints service_running_output while a node runs",
    )
    service_running_output: str = Field(
        "active", min_length=1, description="the line service_status_command prints while a node runs"
    )
    transfer_dir: AbsPath | None = Field(
        None,
        description="where the restore uploads each node's tar (over SFTP, as the SSH user) before extracting it; default: beside the store",
    )
    keep_old_stores: bool = Field(
        True, description="after a verified restore, keep each node's previous store beside the new one"
    )
    start_timeout: Duration = Field(timedelta(minutes=10), description="how long restarted nodes may take to answer")
    drill_serve_command: ServiceArgv | None = Field(
        None,
        description="on the drill_host: argv that runs one devicedb node in the foreground from the config file given as "
        "its last word (e.g. [devicedb-service, serve, -conf]); the drill starts a scratch node on one restored store "
        "with it and reads the check key back. null: no scratch node",
    )

    @model_validator(mode="after")
    def _unique_nodes(self) -> DevicedbCluster:
        require_unique("nodes", [f"{n.host}:{n.http_port}" for n in self.nodes])
        if self.cleanup_local_snapshots and not (self.snapshot_dir or all(n.snapshot_dir for n in self.nodes)):
            raise ValueError("cleanup_local_snapshots needs snapshot_dir (the nodes' -snapshot_store folder)")
        if self.cleanup_local_snapshots and not self.verify_upload:
            # the local copy is deleted only after its upload was read back and matched
            raise ValueError("cleanup_local_snapshots needs verify_upload: true")
        if self.drill_serve_command and not self.drill_host:
            raise ValueError("drill_serve_command needs drill_host (the host the scratch node runs on)")
        return self

    def node_store_dir(self, node: DevicedbNode) -> str:
        return node.store_dir or self.store_dir

    def node_snapshot_dir(self, node: DevicedbNode) -> str | None:
        return node.snapshot_dir or self.snapshot_dir
