"""The `riak_<name>` DAG: a rolling backup of a Riak cluster, strictly one node at a time.

    preflight (cluster healthy: no node down, no primary missing, no handoff waiting)
      -> node1: stop -> snapshot -> start -> wait_riak_kv -> vnodes_gate -> handoff_gate
      -> node2: ...                    (only if preflight and every earlier node's gates passed)
      -> wait_snapshots (every snapshot of the run completed) -> retention -> report
                           `-> copy_<region> -> wait_copy_<region> -> retention_<region>  (each copy_to region)

Why the trigger rules are what they are:

* ``start`` runs ``all_done`` after ``stop`` and ``snapshot`` and checks that ``stop`` ran
  (success or failed): a failed snapshot, or a stop that half-worked, never leaves the node down;
* a node's ``stop`` needs ``none_failed`` from ``preflight`` and from the ``handoff_gate`` of
  *every* earlier node, not only the previous one: a node that was not selected (skipped) lets the
  next one go on, and a failure anywhere before stops the roll. With only the previous node's
  gate upstream, a failure two nodes back was hidden: node 1's failed start skipped node 2's
  group (its stop never ran, so its start skipped itself), and node 3 saw a skipped gate, which
  ``none_failed`` lets through, and stopped while node 1 was still down;
* ``wait_snapshots`` runs ``all_done`` (it waits for the snapshots that were made, even when a
  later node failed); ``report`` fails the run and mails when anything failed.
"""

from __future__ import annotations

import re

from airflow.sdk import DAG, BaseOperator, Param, TaskGroup

from airflow_backup_provider.builders.common import finish_dag, new_dag
from airflow_backup_provider.builders.drill import volume_drill
from airflow_backup_provider.builders.ebs import add_copy_branch, restore_chain, restore_params
from airflow_backup_provider.config import RiakCluster, RiakNode
from airflow_backup_provider.operators.ebs_drill import RiakDrillPlanOperator
from airflow_backup_provider.operators.riak import (
    RiakCopySnapshotsOperator,
    RiakNodeSnapshotOperator,
    RiakRestorePlanOperator,
    RiakRetentionOperator,
    RiakWaitForServiceOperator,
)
from airflow_backup_provider.operators.service import riak_start, riak_stop
from airflow_backup_provider.sensors.riak import RiakHealthSensor, RiakSnapshotsCompletedSensor

SELECTED_NODES = "{{ params.nodes }}"
DRY_RUN = "{{ params.dry_run }}"


def group_id(index: int, node: RiakNode) -> str:
    return f"node{index + 1}_" + re.sub(r"[^A-Za-z0-9_]", "_", node.host)


def nodes_param(entry: RiakCluster) -> Param:
    names = [n.host for n in entry.nodes] + [n.erlang_name for n in entry.nodes if n.erlang_name != n.host]
    return Param(
        [],
        type="array",
        items={"type": "string", "enum": sorted(set(names))},
        title="Nodes",
        description=(
            "Back up only these nodes (host or Erlang name); empty: every node, in the clusters file's order. "
            "The others are neither stopped nor snapshotted."
        ),
    )


def _sensor_args(entry: RiakCluster) -> dict:
    return {
        "ssh_conn_id": entry.ssh_conn_id,
        "sudo_user": entry.sudo_user,
        "deferrable": entry.deferrable,
        "poke_interval": entry.poke_interval.total_seconds(),
        "timeout": entry.gate_timeout.total_seconds(),
        "mode": "reschedule",
    }


def build_node_group(
    dag: DAG, entry: RiakCluster, index: int, node: RiakNode, must_pass: list[RiakHealthSensor]
) -> RiakHealthSensor:
    """One node's stop .. handoff_gate, its stop after `must_pass`; returns the node's last gate."""
    name = node.erlang_name
    remote = {"host": node.host, "port": node.port, "ssh_conn_id": entry.ssh_conn_id, "sudo_user": entry.sudo_user}
    node_down = {"retry_delay": entry.node_down_retry_delay, "retry_exponential_backoff": 0}
    with TaskGroup(group_id(index, node), tooltip=f"{name} on {node.host}, instance {node.instance_id}", dag=dag):
        stop = riak_stop(
            task_id="stop",
            node=name,
            selected_nodes=SELECTED_NODES,
            dry_run=DRY_RUN,
            trigger_rule="none_failed",
            **remote,
        )
        snapshot = RiakNodeSnapshotOperator(
            task_id="snapshot",
            cluster=entry.name,
            node=name,
            instance_id=node.instance_id,
            aws_conn_id=entry.aws_conn_id,
            region_name=entry.region,
            dry_run=DRY_RUN,
            **node_down,
        )
        start = riak_start(
            task_id="start",
            node=name,
            only_after=stop.task_id,
            dry_run=DRY_RUN,
            **remote,
            **node_down,
        )
        wait_kv = RiakWaitForServiceOperator(
            task_id="wait_riak_kv", node=name, bound=entry.service_timeout.total_seconds(), **remote
        )
        vnodes = RiakHealthSensor(task_id="vnodes_gate", gate="vnodes", host=node.host, port=node.port, node=name, **_sensor_args(entry))
        handoff = RiakHealthSensor(task_id="handoff_gate", gate="handoff", host=node.host, port=node.port, node=name, **_sensor_args(entry))
        must_pass >> stop
        stop >> snapshot >> start
        stop >> start
        start >> wait_kv >> vnodes >> handoff
    return handoff


def build(entry: RiakCluster) -> list[DAG]:
    dag = new_dag(
        entry,
        summary=(
            "Rolling backup of a Riak KV cluster, one node at a time: `riak stop`, EBS snapshots of every "
            "volume of the node's instance (CreateSnapshots), `riak start`, wait for `riak_kv`, then wait "
            "until no primary vnode is missing and no handoff waits, before the next node. A node that was "
            "stopped is always started again. After the last node: wait for the snapshots to complete, "
            "apply the retention policy, mail the report."
        ),
        nodes=[f"{n.erlang_name} ({n.host}, {n.instance_id})" for n in entry.nodes],
        params={"nodes": nodes_param(entry)},
    )
    first = entry.nodes[0]
    with dag:
        preflight = RiakHealthSensor(
            task_id="preflight",
            gate="all",
            host=first.host,
            port=first.port,
            node=first.erlang_name,
            doc_md="The cluster must be healthy before a node is taken down.",
            **_sensor_args(entry),
        )
        # every gate a node must have passed before the next node may stop: preflight, then
        # each earlier node's last gate
        passed = [preflight]
        for index, node in enumerate(entry.nodes):
            passed.append(build_node_group(dag, entry, index, node, must_pass=list(passed)))
        wait = RiakSnapshotsCompletedSensor(
            task_id="wait_snapshots",
            cluster=entry.name,
            aws_conn_id=entry.aws_conn_id,
            region_name=entry.region,
            deferrable=entry.deferrable,
            poke_interval=min(entry.poke_interval.total_seconds(), 30),
            timeout=max(entry.gate_timeout.total_seconds(), 3600),
            mode="reschedule",
            trigger_rule="all_done",
        )
        retention = RiakRetentionOperator(
            task_id="retention",
            cluster=entry.name,
            policy=entry.retention,
            aws_conn_id=entry.aws_conn_id,
            region_name=entry.region,
            dry_run=DRY_RUN,
        )
        passed[-1] >> wait >> retention
        for copy in entry.copy_to:
            add_copy_branch(
                entry, copy, after=wait,
                copier=RiakCopySnapshotsOperator, copy_args={"cluster": entry.name},
                retention=RiakRetentionOperator, retention_args={"cluster": entry.name},
            )
    finish_dag(dag, entry)
    nodes = [
        {"node": n.erlang_name, "host": n.host, "port": n.port, "instance_id": n.instance_id, "mounts": dict(n.mounts)}
        for n in entry.nodes
    ]
    drill = volume_drill(entry, RiakDrillPlanOperator, {"nodes": nodes}, f"the data volumes of every node of Riak cluster `{entry.name}`")
    return [dag, build_restore(entry), *([drill] if drill else [])]


# ---- the restore ----------------------------------------------------------------------------------


def build_restore_node_group(
    dag: DAG, entry: RiakCluster, index: int, node: RiakNode, must_pass: list
) -> tuple[BaseOperator, BaseOperator, RiakHealthSensor, BaseOperator]:
    """One node of a rolling restore: its volumes are made (and wait to be available) while the
    node still runs; then stop -> swap -> wait_in_use -> mount -> rollback (all_done) -> start
    (all_done, after the stop) -> wait_riak_kv -> vnodes_gate -> handoff_gate. Returns its
    wait_available and stop, its last gate and its mount (both must pass before the next node stops)."""
    name = node.erlang_name
    remote = {"host": node.host, "port": node.port, "ssh_conn_id": entry.ssh_conn_id, "sudo_user": entry.sudo_user}
    node_down = {"retry_delay": entry.node_down_retry_delay, "retry_exponential_backoff": 0}
    with TaskGroup(group_id(index, node), tooltip=f"{name} on {node.host}, instance {node.instance_id}", dag=dag):
        stop = riak_stop(
            task_id="stop", node=name, selected_nodes=SELECTED_NODES, dry_run=DRY_RUN, trigger_rule="none_failed",
            run_if="{{ params.mode == 'node' }}", **remote,
        )
        available, mount, rollback = restore_chain(entry, part=name, stop=stop, only_mode="node")
        start = riak_start(task_id="start", node=name, only_after=stop.task_id, dry_run=DRY_RUN, **remote, **node_down)
        wait_kv = RiakWaitForServiceOperator(
            task_id="wait_riak_kv", node=name, bound=entry.service_timeout.total_seconds(), **remote
        )
        vnodes = RiakHealthSensor(task_id="vnodes_gate", gate="vnodes", host=node.host, port=node.port, node=name, **_sensor_args(entry))
        handoff = RiakHealthSensor(task_id="handoff_gate", gate="handoff", host=node.host, port=node.port, node=name, **_sensor_args(entry))
        must_pass >> stop
        [stop, rollback] >> start
        start >> wait_kv >> vnodes >> handoff
    return available, stop, handoff, mount


def build_cluster_restore(dag: DAG, entry: RiakCluster, plan: BaseOperator) -> None:
    """Mode `cluster` (point in time), in group `cluster`: every node's volumes made and available,
    then every node stopped (verified), every node's volumes swapped, every node started (always),
    `riak_kv` up on each, and the ring whole with no handoff (one gate). Skipped in mode `node`."""
    availables, stops, rollbacks, starts, kv_waits = [], [], [], [], []
    with TaskGroup("cluster", tooltip="mode cluster: the whole cluster back to one date, every node down at once", dag=dag):
        for index, node in enumerate(entry.nodes):
            name = node.erlang_name
            remote = {"host": node.host, "port": node.port, "ssh_conn_id": entry.ssh_conn_id, "sudo_user": entry.sudo_user}
            node_down = {"retry_delay": entry.node_down_retry_delay, "retry_exponential_backoff": 0}
            with TaskGroup(group_id(index, node), tooltip=f"{name} on {node.host}, instance {node.instance_id}", dag=dag):
                stop = riak_stop(
                    task_id="stop", node=name, selected_nodes=SELECTED_NODES, dry_run=DRY_RUN, trigger_rule="none_failed",
                    run_if="{{ params.mode == 'cluster' }}", **remote,
                )
                available, _mount, rollback = restore_chain(entry, part=name, stop=stop, only_mode="cluster")
                start = riak_start(task_id="start", node=name, only_after=stop.task_id, dry_run=DRY_RUN, **remote, **node_down)
                wait_kv = RiakWaitForServiceOperator(
                    task_id="wait_riak_kv", node=name, bound=entry.service_timeout.total_seconds(), **remote
                )
                start >> wait_kv
            dag.task_dict[available.task_id.rpartition(".")[0] + ".create"].set_upstream(plan)
            availables.append(available)
            stops.append(stop)
            rollbacks.append(rollback)
            starts.append((stop, start))
            kv_waits.append(wait_kv)
        first = entry.nodes[0]
        ring = RiakHealthSensor(
            task_id="ring_gate", gate="all", host=first.host, port=first.port, node=first.erlang_name,
            doc_md="Every node up, no primary vnode missing, no handoff waiting: the ring is whole again.",
            **_sensor_args(entry),
        )
    # no node stops before every volume is available; no swap before every node is down; no start
    # before every swap (or its rollback) is settled
    for stop in stops:
        availables >> stop
    swaps = [dag.task_dict[r.task_id.rpartition(".")[0] + ".swap"] for r in rollbacks]
    for swap in swaps:
        stops >> swap
    # one date for the whole cluster: a step that failed on any node rolls every node back, so
    # each rollback waits for every node's steps and watches them all
    steps = [t for r in rollbacks for t in r.watched_task_ids]
    mounts = [dag.task_dict[r.task_id.rpartition(".")[0] + ".mount"] for r in rollbacks]
    for rollback in rollbacks:
        rollback.watched_task_ids = list(steps)
        mounts >> rollback
    for stop, start in starts:
        [stop, *rollbacks] >> start
    kv_waits >> ring


def build_restore(entry: RiakCluster) -> DAG:
    nodes = [
        {"node": n.erlang_name, "host": n.host, "port": n.port, "instance_id": n.instance_id, "mounts": dict(n.mounts)}
        for n in entry.nodes
    ]
    dag = new_dag(
        entry,
        suffix="_restore",
        schedule=None,
        summary=(
            "Rolling restore of Riak nodes from their EBS snapshot sets (manual runs only), one node at a time; "
            "the cluster stays up. Every chosen node's new volumes are made from its snapshots of `logical_date` "
            "while the nodes run; then per node `riak stop` (verified), each data volume unmounted, detached (never deleted: "
            "tagged `backup:replaced-by`) and replaced at its device by the restored one, mounted after its "
            "filesystem UUID is checked, `riak start` (always, whatever failed), wait for `riak_kv`, no primary "
            "vnode down and no handoff, before the next node. The restored node's data then catches up with the "
            "live replicas (handoff, read repair, AAE). A failed swap puts the original volumes back."
        ),
        nodes=[f"{n.erlang_name} ({n.host}, {n.instance_id})" for n in entry.nodes],
        params={
            **restore_params(entry, "each chosen node is stopped in turn and its data volumes replaced."),
            "nodes": Param(
                [], type="array", items=nodes_param(entry).schema["items"], title="Nodes",
                description="Restore only these nodes (host or Erlang name); empty: every node, in the clusters file's order.",
            ),
            "mode": Param(
                "node",
                type="string",
                enum=["node", "cluster"],
                title="Mode",
                description="node (rolling): one node at a time, THE CLUSTER STAYS UP, the restored nodes then catch up "
                "with the live replicas (recovers lost or corrupt nodes). cluster (point in time): the only way back to "
                "that date for the whole cluster: EVERY NODE IS STOPPED AT ONCE, the whole cluster is down until every "
                "node's volumes are swapped and every node started.",
            ),
        },
        extra_tags=["restore"],
    )
    with dag:
        plan = RiakRestorePlanOperator(
            entry_name=entry.name, nodes=nodes, aws_conn_id=entry.aws_conn_id, region_name=entry.region,
            ssh_conn_id=entry.ssh_conn_id, sudo_user=entry.sudo_user,
        )
        passed: list = [plan]
        availables, stops = [], []
        for index, node in enumerate(entry.nodes):
            available, stop, handoff, mount = build_restore_node_group(dag, entry, index, node, must_pass=list(passed))
            dag.task_dict[f"{group_id(index, node)}.create"].set_upstream(plan)
            passed += [handoff, mount]
            availables.append(available)
            stops.append(stop)
        # every node's volumes are made and available before the first node stops: a volume that
        # cannot be made fails the run with no node down, and no node waits down for a creation
        for stop in stops:
            availables >> stop
        build_cluster_restore(dag, entry, plan)
    finish_dag(dag, entry)
    return dag
