"""`cassandra_<name>` (backup) and `cassandra_<name>_restore` DAGs for a clusters-file entry."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param

from airflow_backup_provider import names
from airflow_backup_provider.builders.common import FORM_DAY, FORM_END, FORM_PATH, finish_dag, new_dag
from airflow_backup_provider.builders.drill import cassandra_drill, drill_host_is_a_node, drill_turn
from airflow_backup_provider.config import CassandraCluster
from airflow_backup_provider.operators.cassandra import (
    CassandraCleanupOperator,
    CassandraRestoreOperator,
    CassandraRestorePlanOperator,
    CassandraRestoreReportOperator,
    CassandraRetentionOperator,
    CassandraSnapshotOperator,
    CassandraUploadOperator,
    CassandraVerifyOperator,
)
from airflow_backup_provider.stores.cassandra_layout import TAG_PREFIX
from airflow_backup_provider.stores.cassandra_restore import DEFAULT_SYSTEM_KEYSPACES, SYSTEM_KEYSPACE_CHOICES

NAME_FORM = "^" + names.CASSANDRA_NAME + FORM_END  # a keyspace, as the clusters file checks it

NODE_LABEL = "{{ task.node.host }}"


def _common(entry: CassandraCluster) -> dict[str, Any]:
    return {
        "cluster": entry.name,
        "bucket": entry.bucket,
        "prefix": entry.prefix,
        "aws_conn_id": entry.aws_conn_id,
        "ssh_conn_id": entry.ssh_conn_id,
        "sudo_user": entry.sudo_user,
        "nodetool": entry.nodetool,
        "sse": entry.sse,
        "kms_key_id": entry.kms_key_id,
        "compression_level": entry.compression_level,
        "s3_attempts": entry.s3_attempts,
    }


def backup_dag(entry: CassandraCluster) -> DAG:
    nodes = entry.node_specs()
    hosts = [n.host for n in nodes]
    common = _common(entry)
    dag = new_dag(
        entry,
        summary=(
            f"Backs up Cassandra cluster `{entry.name}` to `s3://{entry.bucket}/{entry.prefix}/{entry.name}/<YYYYMMDD>/`. "
            "Phase one, on every node in parallel: `nodetool flush`, `nodetool snapshot -t <run tag>`. "
            "Phase two, once every snapshot exists: each node streams its snapshot and `backups/` files over SFTP "
            "into S3 (zstd, server-side encryption), then its manifest (size, SHA-256, compressed size), schema "
            "and `nodetool status`; a later run the same day uploads only files no manifest of that day lists. "
            "Then verify, `nodetool clearsnapshot -t <run tag>` on verified nodes, and retention of day folders."
        ),
        nodes=hosts,
        params={
            "verify_checksums": Param(
                entry.verify_checksums,
                type="boolean",
                title="Verify checksums",
                description="Read every object back and compare its SHA-256 (slower); sizes are always checked.",
            ),
        },
    )
    scope = {
        "keyspaces": entry.keyspaces,
        "exclude_keyspaces": entry.exclude_keyspaces,
        "tables": entry.tables,
        "exclude_tables": entry.exclude_tables,
    }
    upload_limits: dict[str, Any] = {"max_active_tis_per_dagrun": entry.max_parallel_uploads}
    if entry.upload_pool:
        upload_limits["pool"] = entry.upload_pool
    with dag:
        snapshot = CassandraSnapshotOperator.partial(
            task_id="snapshot", keyspaces=entry.keyspaces, map_index_template=NODE_LABEL, **common
        ).expand(node=nodes)
        upload = CassandraUploadOperator.partial(
            task_id="upload",
            cluster_hosts=hosts,
            scope=scope,
            upload_threads=entry.upload_threads,
            map_index_template=NODE_LABEL,
            **upload_limits,
            **common,
        ).expand(node=nodes)
        verify = CassandraVerifyOperator(
            task_id="verify",
            hosts=hosts,
            checksums="{{ params.verify_checksums }}",
            trigger_rule="all_done",
            **common,
        )
        cleanup = CassandraCleanupOperator.partial(
            task_id="cleanup",
            verify_task_id="verify",
            remove_incrementals=entry.remove_uploaded_incrementals,
            trigger_rule="all_done",
            map_index_template=NODE_LABEL,
            **common,
        ).expand(node=nodes)
        retention = CassandraRetentionOperator(
            task_id="retention", policy=entry.retention, **common
        )
        snapshot >> upload >> verify >> [cleanup, retention]
    finish_dag(dag, entry, shares_turn_with=drill_turn(entry, drill_host_is_a_node(entry, hosts)))
    return dag


def restore_dag(entry: CassandraCluster) -> DAG:
    nodes = entry.node_specs()
    hosts = [n.host for n in nodes]
    common = _common(entry)
    dag = new_dag(
        entry,
        suffix="_restore",
        schedule=None,
        summary=(
            f"Restores a day of cluster `{entry.name}` from `s3://{entry.bucket}/{entry.prefix}/{entry.name}/`. "
            "Each host fetches the files it uploaded itself, decompresses them, checks each SHA-256 and writes "
            "`<restore folder>/<keyspace>/<table dir>/` on the node over SFTP. The live data folder is never "
            "written. The run ends with the next steps (the node restart method)."
        ),
        nodes=hosts,
        params={
            # Every pattern refuses what native rendering would turn into another value ("0",
            # "None", "[]" become a falsy value: the latest day, silently) and bounds the length.
            "date": Param(
                "",
                type="string",
                pattern=r"^(|[0-9]{8}|" + FORM_DAY + ")" + FORM_END,
                maxLength=10,
                title="Date",
                description="The day to restore, YYYY-MM-DD or YYYYMMDD; empty: the latest day every chosen host has.",
            ),
            "hosts": Param(
                [], type="array", items={"type": "string", "enum": hosts}, uniqueItems=True, title="Hosts", description=f"Hosts to restore (empty: all of {', '.join(hosts)})."
            ),
            "keyspaces": Param(
                [], type="array", items={"type": "string", "pattern": NAME_FORM}, uniqueItems=True, title="Keyspaces", description="Keyspaces to restore (empty: all)."),
            "tables": Param(
                [],
                type="array",
                items={"type": "string", "pattern": "^" + names.TABLE_REF + FORM_END},
                uniqueItems=True,
                title="Tables", description="Tables to restore, `table` or `keyspace.table` (empty: all)."
            ),
            "restore_folder": Param(
                entry.restore_folder,
                type="string",
                pattern=FORM_PATH.replace(names.PATH_CHARS, names.TEMPLATED_PATH_CHARS),
                maxLength=4095,
                title="Restore folder",
                description="Folder on each node (outside the data folder); `{host}` becomes the node's host.",
            ),
            "tag": Param(
                "",
                type="string",
                pattern=rf"^(|{TAG_PREFIX}-[A-Za-z0-9_.-]{{1,124}})" + FORM_END,
                title="Run tag", description="One run of that day (empty: the day's latest run)."
            ),
            "system_keyspaces": Param(
                DEFAULT_SYSTEM_KEYSPACES,
                type="string",
                enum=sorted(SYSTEM_KEYSPACE_CHOICES),
                title="System keyspaces",
                description=(
                    "Which of Cassandra's own keyspaces to restore beside the user keyspaces: `cluster` "
                    "(default): system_schema, system_auth, system_distributed, system_traces (the schema, "
                    "roles, repair history of that day); `none`: user keyspaces only; `all`: also `system`, "
                    "the node's own identity and state (tokens, host id, peers, batchlog): only to rebuild a "
                    "node as it was. A system keyspace named in Keyspaces is restored anyway."
                ),
            ),
        },
        extra_tags=["restore"],
    )
    with dag:
        plan = CassandraRestorePlanOperator(
            task_id="plan",
            nodes=nodes,
            date="{{ params.date }}",
            hosts="{{ params.hosts }}",
            keyspaces="{{ params.keyspaces }}",
            tables="{{ params.tables }}",
            restore_folder="{{ params.restore_folder }}",
            tag="{{ params.tag }}",
            system_keyspaces="{{ params.system_keyspaces }}",
            retries=0,
            **common,
        )
        restore = CassandraRestoreOperator.partial(
            task_id="restore",
            restore_threads=entry.upload_threads,
            map_index_template="{{ task.target['host'] }}",
            **common,
        ).expand(target=plan.output)
        steps = CassandraRestoreReportOperator(
            task_id="next_steps",
            restore_task_id="restore",
            data_dir=entry.data_dir,
            commitlog_dir=entry.commitlog_dir,
        )
        restore >> steps
    finish_dag(dag, entry)
    return dag


def build(entry: CassandraCluster) -> list[DAG]:
    drill = cassandra_drill(entry, _common(entry))
    return [backup_dag(entry), restore_dag(entry), *([drill] if drill else [])]
