"""Cassandra in the sandbox: a simulated node (nodetool + cassandra_sim) on every sshd node.

Used by the demo (`prepare`, `demo_runs`), the tests and bench/cassandra_upload.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

DEFAULT_LAYOUT: dict[str, list[str]] = {
    "shop": ["orders", "customers"],
    "metrics": ["samples"],
    "audit": ["events"],
}

# Cassandra's own keyspaces, beside the user keyspaces in every data folder (a few of their tables)
SYSTEM_LAYOUT: dict[str, list[str]] = {
    "system": ["local", "peers_v2", "batches"],
    "system_schema": ["keyspaces", "tables", "columns"],
    "system_auth": ["roles"],
    "system_distributed": ["repair_history"],
    "system_traces": ["sessions"],
}


def sim(node, *args: str) -> str:
    """Run the simulated node's `cassandra_sim` (setup, create, write, fail) on `node`."""
    done = subprocess.run(
        [str(node.bin / "cassandra_sim"), *args], env=node.env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"cassandra_sim {args} on {node.name}: {done.stderr.strip()}")
    return done.stdout


def nodetool(node, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(node.bin / "nodetool"), *args], env=node.env(), capture_output=True, text=True, check=False
    )


def data_dir(node) -> Path:
    return node.root / "cassandra" / "data"


def reset_node(node, layout: dict[str, list[str]], *, version: str = "4.1", peers: list[str] = (),
               incremental_backups: bool = True) -> Path:
    """A fresh simulated node: empty data folder with `layout` (keyspace -> tables), no knobs."""
    import shutil

    folder = data_dir(node)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(node.state_dir("cassandra"), ignore_errors=True)
    sim(
        node,
        "setup",
        json.dumps(
            {
                "data_dir": str(folder),
                "version": version,
                "incremental_backups": incremental_backups,
                "address": node.address,
                "peers": [{"address": p, "status": "UN", "load": "1.1 GiB"} for p in peers if p != node.address],
                "fail": {},
            }
        ),
    )
    for keyspace, tables in layout.items():
        sim(node, "create", keyspace, *tables)
    return folder


def add_index(node, keyspace: str, table: str, index: str) -> None:
    """A secondary index on the table: its SSTables go to `<table dir>/.<index>/` from the next flush."""
    sim(node, "index", keyspace, table, index)


def write(node, keyspace: str, table: str, size: int, seed: str | int | None = None) -> None:
    """Rows into the memtable: they become an SSTable (and backups/ links) at the next flush."""
    sim(node, "write", keyspace, table, str(size), *([str(seed)] if seed is not None else []))


def flush(node) -> None:
    done = nodetool(node, "flush")
    if done.returncode:
        raise RuntimeError(done.stderr)


def set_failure(node, command: str, message: str = "") -> None:
    sim(node, "fail", command, message)


def create_bucket(sandbox, bucket: str) -> None:
    client = sandbox.boto3_client("s3")
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass


def setup_cluster(sandbox, layout: dict[str, list[str]] = DEFAULT_LAYOUT, *, rows: int = 20_000,
                  count: int | None = None, system_keyspaces: bool = True) -> list:
    """Every sandbox node a Cassandra node with `layout`, each table with one flushed SSTable
    (node-specific bytes) and some unflushed writes (the snapshot's flush writes them out); with
    `system_keyspaces`, Cassandra's own keyspaces too (SYSTEM_LAYOUT, a little data in each)."""
    nodes = sandbox.nodes[: count or len(sandbox.nodes)]
    peers = [n.address for n in nodes]
    for node in nodes:
        reset_node(node, {**(SYSTEM_LAYOUT if system_keyspaces else {}), **layout}, peers=peers)
        for keyspace, tables in (SYSTEM_LAYOUT if system_keyspaces else {}).items():
            for table in tables:
                write(node, keyspace, table, 2_000, seed=f"{node.name}-{keyspace}-{table}")
        for keyspace, tables in layout.items():
            for table in tables:
                write(node, keyspace, table, rows, seed=f"{node.name}-{keyspace}-{table}-1")
        flush(node)
        for keyspace, tables in layout.items():
            for table in tables:
                write(node, keyspace, table, rows // 4, seed=f"{node.name}-{keyspace}-{table}-2")
    return nodes


def entry_nodes(sandbox, nodes=None) -> list[dict[str, Any]]:
    return [{"host": n.address, "data_dir": str(data_dir(n))} for n in (nodes or sandbox.nodes)]


def prepare(sandbox, entry: dict) -> dict:
    """The example entry on the sandbox: its bucket in moto, a simulated node with some keyspaces
    on each sshd node, hosts rewritten onto the sandbox addresses, restore folders per node."""
    entry = dict(entry)
    count = min(len(entry.get("nodes") or []) or 3, len(sandbox.nodes))
    create_bucket(sandbox, entry["bucket"])
    nodes = setup_cluster(sandbox, count=count)
    entry["nodes"] = entry_nodes(sandbox, nodes)
    # the sandbox nodes share one filesystem: one restore folder per node
    entry["restore_folder"] = str(sandbox.root / "cassandra_restore" / "{host}")
    return entry


def demo_runs(entry: dict) -> list[tuple[str, dict]]:
    name = entry["name"]
    return [(f"cassandra_{name}", {}), (f"cassandra_{name}_restore", {})]
