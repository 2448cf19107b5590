"""bup in the sandbox: real bup on the nodes, the last node as the backup server.

bup's ``-r user@host:path`` runs ``ssh`` from PATH. :func:`install_bup_ssh` puts an ``ssh``
wrapper first on every node's PATH (the node's ``bin``) that uses the sandbox's client key and a
known_hosts file holding the nodes' host key, with ``StrictHostKeyChecking=yes``: host keys stay
verified for node-to-node SSH too.
"""

from __future__ import annotations

import copy
import os
import sqlite3
from pathlib import Path

SSH_WRAPPER = """#!/bin/sh
# ssh for bup -r inside the sandbox: the sandbox client key, the sandbox known_hosts, host keys verified.
exec /usr/bin/ssh -F none -o BatchMode=yes -o IdentitiesOnly=yes -i {key} \\
  -o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null \\
  -o StrictHostKeyChecking=yes -o LogLevel=ERROR "$@"
"""


def login() -> str:
    return os.environ.get("USER") or "root"


def install_bup_ssh(sandbox) -> Path:
    """known_hosts for every node + the ``ssh`` wrapper in every node's bin. Returns known_hosts."""
    known_hosts = sandbox.root / "keys" / "known_hosts"
    addresses = ",".join(n.address for n in sandbox.nodes)
    known_hosts.write_text(f"{addresses} {sandbox.host_key_line}\n")
    for node in sandbox.nodes:
        wrapper = node.bin / "ssh"
        wrapper.write_text(SSH_WRAPPER.format(key=sandbox.client_key, known_hosts=known_hosts))
        wrapper.chmod(0o755)
    return known_hosts


def make_app_db(path: Path, rows: int = 50, *, tag: str = "v1") -> Path:
    """A small real sqlite3 database: the staging input is its `sqlite3 DB .dump`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL, tag TEXT)")
        start = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        db.executemany(
            "INSERT INTO orders (customer, total, tag) VALUES (?, ?, ?)",
            [(f"customer-{start + i}", (start + i) * 1.25, tag) for i in range(rows)],
        )
    return path


def make_files(root: Path, *, count: int = 20, tag: str = "v1") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "conf").mkdir(exist_ok=True)
    for i in range(count):
        (root / "conf" / f"setting-{i:03d}.conf").write_text(f"# {tag}\nkey{i} = value {i} {tag}\n" * 20)
    (root / "README").write_text(f"files for the bup sandbox ({tag})\n")
    (root / "cache").mkdir(exist_ok=True)
    (root / "cache" / "big.tmp").write_bytes(os.urandom(4096))  # excluded by exclude_rx


def prepare(sandbox, entry: dict) -> dict:
    """Put the example entry onto the sandbox: first node backed up, last node the backup server."""
    install_bup_ssh(sandbox)
    entry = copy.deepcopy(entry)
    name = entry["name"]
    host, server = sandbox.nodes[0], sandbox.nodes[-1]
    data = host.root / "files" / name
    paths = []
    for original in entry.get("paths") or ["/srv/data"]:
        target = data / original.strip("/").replace("/", "_")
        make_files(target)
        paths.append(str(target))
    db = make_app_db(host.root / "db" / name / "app.db")
    entry.update(
        host=host.address,
        paths=paths,
        bup_dir=str(host.root / "bup" / name),
        staging_dir=str(host.root / "staging" / name),
        excludes=[str(Path(paths[0]) / "cache" / "skip-me")] if paths else [],
        exclude_rx=[r"\.tmp$"],
        dumps=[{"name": "app-db", "argv": ["sqlite3", str(db), ".dump"], "output": "app.sql"}],
    )
    (server.root / "bup-repos").mkdir(parents=True, exist_ok=True)  # bup init makes only the last level
    entry["server"] = {
        **(entry.get("server") or {}),
        "host": server.address,
        "user": login(),
        "repo_dir": str(server.root / "bup-repos" / name),
    }
    entry.setdefault("ssh_conn_id", "backup_ssh")
    if entry.get("s3_sync"):
        sandbox.boto3_client("s3").create_bucket(Bucket=entry["s3_sync"]["bucket"])
        entry["s3_sync"] = {**entry["s3_sync"], "queue": None}
    return entry


def demo_runs(entry: dict) -> list[tuple[str, dict]]:
    name = entry["name"]
    runs: list[tuple[str, dict]] = [(f"bup_{name}", {})]
    if entry.get("s3_sync"):
        runs.append((f"bup_{name}_s3_sync", {}))
    restore_dir = str(Path(entry["bup_dir"]).parent.parent / "restore" / name)
    runs.append((f"bup_{name}_restore", {"save": "latest", "path": entry["staging_dir"], "target_dir": restore_dir}))
    return runs
