"""Riak entries: a cluster backed up one node at a time (DAG `riak_<name>`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from airflow_backup_provider import names
from airflow_backup_provider.config.common import (
    AbsPath,
    Duration,
    EntryBase,
    Identifier,
    Node,
    RetryDelay,
    require_unique,
)
from airflow_backup_provider.config.ebs import Device, SnapshotCopies, VolumeDrill

ErlangNodeName = Annotated[str, AfterValidator(names.check_erlang_node)]


class RiakNode(Node):
    node_name: ErlangNodeName | None = Field(None, description="the Erlang node name, e.g. riak@10.0.0.1")
    instance_id: Identifier = Field(description="the EC2 instance whose volumes are snapshotted")
    mounts: dict[Device, AbsPath] = Field(
        default_factory=dict,
        description="mount point of each data volume by its device (/dev/sdf: /var/lib/riak): a restore "
        "unmounts it before the swap and mounts the restored volume after it",
    )

    @property
    def erlang_name(self) -> str:
        return self.node_name or f"riak@{self.host}"


class RiakCluster(EntryBase, SnapshotCopies, VolumeDrill):
    """A Riak KV cluster backed up one node at a time: stop, EBS-snapshot, start, health gates."""

    kind: Literal["riak"] = "riak"
    nodes: list[RiakNode] = Field(min_length=1, description="the nodes, in the order they are backed up")
    region: Identifier | None = Field(None, description="AWS region of the instances (default: the connection's)")
    service_timeout: Duration = Field(
        timedelta(minutes=10), description="how long `riak-admin wait-for-service riak_kv` may wait after a start"
    )
    restore_timeout: Duration = Field(
        timedelta(hours=2), description="how long a restored volume may take to become available or attached"
    )
    node_down_retry_delay: RetryDelay = Field(
        timedelta(seconds=30),
        description="retry delay of the tasks that run while a node is stopped (snapshot, start): the node "
        "stays down while they wait, so it is short",
    )

    @model_validator(mode="after")
    def _unique_nodes(self) -> RiakCluster:
        require_unique("nodes", [n.host for n in self.nodes])
        require_unique("nodes", [n.erlang_name for n in self.nodes])
        require_unique("nodes", [n.instance_id for n in self.nodes])
        self.check_drill_instance({n.instance_id: f"the instance of node {n.host}" for n in self.nodes})
        return self
