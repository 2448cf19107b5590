"""The clusters file: typed models, loading and validation.

One YAML file describes every backup this deployment runs::

    defaults:            # applied to every entry unless the entry sets the field itself
      alert_emails: [oncall@example.com]
      schedule: "@daily"
    entries:
      - kind: riak
        name: prod
        nodes: [...]

``common`` holds what every entry shares, one module per kind holds its models, ``loading`` reads
the file; :mod:`airflow_backup_provider.kinds` says which kinds exist.
"""

from airflow_backup_provider.config.bup import BupDump, BupHost, BupPruneOlder, BupS3Sync, BupServer
from airflow_backup_provider.config.cassandra import CassandraCluster, CassandraNode
from airflow_backup_provider.config.common import (
    AbsPath,
    CommonSettings,
    Defaults,
    Duration,
    EntryBase,
    Host,
    Identifier,
    Name,
    Node,
    RetentionPolicy,
    ServerSideEncryption,
    StrictModel,
    check_schedule,
    parse_duration,
)
from airflow_backup_provider.config.devicedb import DevicedbCluster, DevicedbNode
from airflow_backup_provider.config.ebs import EbsPolicy
from airflow_backup_provider.config.loading import (
    CLUSTERS_FILE_ENV,
    ClustersFile,
    ClustersFileError,
    EntryError,
    load_clusters_file,
    parse_clusters,
    resolve_clusters_file,
)
from airflow_backup_provider.config.riak import RiakCluster, RiakNode

__all__ = [
    "CLUSTERS_FILE_ENV",
    "AbsPath",
    "BupDump",
    "BupHost",
    "BupPruneOlder",
    "BupS3Sync",
    "BupServer",
    "CassandraCluster",
    "CassandraNode",
    "ClustersFile",
    "ClustersFileError",
    "CommonSettings",
    "Defaults",
    "DevicedbCluster",
    "DevicedbNode",
    "Duration",
    "EbsPolicy",
    "EntryBase",
    "EntryError",
    "Host",
    "Identifier",
    "Name",
    "Node",
    "RetentionPolicy",
    "RiakCluster",
    "RiakNode",
    "ServerSideEncryption",
    "StrictModel",
    "check_schedule",
    "load_clusters_file",
    "parse_clusters",
    "parse_duration",
    "resolve_clusters_file",
]
