"""The simulated devicedb cluster on the sandbox nodes (test and demo side).

Each sandbox node runs ``devicedb-service serve`` (tests/sandbox/tools/devicedb/) on its own
loopback address, with its store and snapshot store in ``$SANDBOX_NODE_ROOT/devicedb/``. This
module writes their configuration, starts and stops them the way an operator would (the same
``devicedb-service`` command the restore DAG runs over SSH), flips the knobs, and reads and
writes keys over the documented HTTP API.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.sandbox.core import Sandbox, SandboxNode, wait_until

KIND = "devicedb"
DEFAULT_PORT = 8080


class DevicedbSim:
    def __init__(self, sandbox: Sandbox, *, port: int = DEFAULT_PORT, snapshot_delay: float = 1.0):
        self.sandbox = sandbox
        self.port = port
        self.snapshot_delay = snapshot_delay
        self.node_ids: dict[str, str] = {}

    @property
    def nodes(self) -> list[SandboxNode]:
        return self.sandbox.nodes

    # ---- layout --------------------------------------------------------------------------------
    def store_dir(self, node: SandboxNode) -> Path:
        return node.root / "devicedb" / "store"

    def snapshot_dir(self, node: SandboxNode) -> Path:
        return node.root / "devicedb" / "snapshots"

    def state(self, node: SandboxNode) -> Path:
        return node.state_dir(KIND)

    def configure(self) -> None:
        rng = random.Random()
        for node in self.nodes:
            self.node_ids.setdefault(node.name, str(rng.randrange(10**18, 2**63)))
        peers = [{"id": self.node_ids[n.name], "host": n.address, "port": self.port} for n in self.nodes]
        for node in self.nodes:
            self.snapshot_dir(node).mkdir(parents=True, exist_ok=True)
            config = {
                "node_id": self.node_ids[node.name],
                "address": node.address,
                "port": self.port,
                "store": str(self.store_dir(node)),
                "snapshot_store": str(self.snapshot_dir(node)),
                "peers": peers,
                "snapshot_delay": self.snapshot_delay,
                "replication_factor": len(self.nodes),
            }
            (self.state(node) / "config.json").write_text(json.dumps(config, indent=2))

    # ---- service -------------------------------------------------------------------------------
    def service(self, node: SandboxNode, action: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(node.bin / "devicedb-service"), action], env=node.env(), capture_output=True, text=True, timeout=60
        )

    def start(self, node: SandboxNode | None = None) -> None:
        for each in [node] if node else self.nodes:
            done = self.service(each, "start")
            assert done.returncode == 0, f"devicedb-service start on {each.name}: {done.stderr}"

    def stop(self, node: SandboxNode | None = None) -> None:
        for each in [node] if node else self.nodes:
            self.service(each, "stop")

    def running(self, node: SandboxNode) -> bool:
        return self.service(node, "status").returncode == 0

    def reset(self) -> None:
        """A fresh cluster: stopped, stores and snapshots wiped, knobs cleared, started again."""
        self.stop()
        for node in self.nodes:
            for path in (self.store_dir(node), self.snapshot_dir(node)):
                shutil.rmtree(path, ignore_errors=True)
            for leftover in self.store_dir(node).parent.glob("store.*"):
                shutil.rmtree(leftover, ignore_errors=True)
            (self.state(node) / "knobs.json").unlink(missing_ok=True)
        self.configure()
        self.start()

    def set_knobs(self, node: SandboxNode, **knobs: Any) -> None:
        path = self.state(node) / "knobs.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(knobs)
        path.write_text(json.dumps(current))

    def clear_knobs(self) -> None:
        for node in self.nodes:
            (self.state(node) / "knobs.json").unlink(missing_ok=True)

    # ---- data over HTTP ------------------------------------------------------------------------
    def url(self, node: SandboxNode, path: str) -> str:
        return f"http://{node.address}:{self.port}{path}"

    def call(self, node: SandboxNode, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url(node, path), data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def write(self, key: str, value: str, *, site: str = "demo", bucket: str = "default", node: int = 0) -> None:
        target = self.nodes[node]
        status, body = self.call(target, "PUT", f"/sites/{site}")
        assert status == 200, body
        batch = [{"type": "put", "key": key, "value": value, "context": ""}]
        status, body = self.call(target, "POST", f"/sites/{site}/buckets/{bucket}/batches", batch)
        assert status == 200, body

    def read(self, key: str, *, site: str = "demo", bucket: str = "default", node: int = 0) -> list[str]:
        status, body = self.call(self.nodes[node], "GET", f"/sites/{site}/buckets/{bucket}/keys?key={key}")
        assert status == 200, body
        entries = json.loads(body)
        return [v for e in entries if e for v in e["siblings"]]

    def status(self, node: SandboxNode, uuid: str) -> str:
        status, body = self.call(node, "GET", f"/snapshot/{uuid}")
        return json.loads(body)["status"] if status == 200 else f"HTTP {status}"

    def wait_completed(self, uuid: str, timeout: float = 30) -> None:
        self.wait_completed_on(uuid, self.nodes, timeout)

    def wait_completed_on(self, uuid: str, nodes: list[SandboxNode], timeout: float = 30) -> None:
        wait_until(
            lambda: all(self.status(n, uuid) == "completed" for n in nodes),
            timeout=timeout,
            what=f"snapshot {uuid} completed on every node",
        )

    def snapshot_folders(self, node: SandboxNode) -> list[str]:
        """The names in the node's snapshot store (``snapshot-<uuid>-<nodeID>``, as on a real node)."""
        path = self.snapshot_dir(node)
        return sorted(p.name for p in path.iterdir()) if path.exists() else []

    def snapshot_dirs(self, node: SandboxNode) -> list[str]:
        """The UUIDs of the snapshots the node keeps (each folder checked to carry the node's id)."""
        uuids = []
        for name in self.snapshot_folders(node):
            prefix, _, node_id = name.rpartition("-")
            assert prefix.startswith("snapshot-") and node_id == self.node_ids[node.name], name
            uuids.append(prefix.removeprefix("snapshot-"))
        return sorted(uuids)

    def grow_store(self, node: SandboxNode, size: int) -> None:
        """Give the node's store a LevelDB table of `size` random bytes (a store worth a slow tar)."""
        table = self.store_dir(node) / "000005.ldb"
        with open(table, "wb") as fh:
            for _ in range(size // (1 << 20)):
                fh.write(random.randbytes(1 << 20))
            fh.write(random.randbytes(size % (1 << 20)))

    # ---- clusters-file entry -------------------------------------------------------------------
    def entry(self, name: str, bucket: str, **overrides: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "kind": "devicedb",
            "name": name,
            "bucket": bucket,
            "nodes": [
                {
                    "host": n.address,
                    "http_port": self.port,
                    "store_dir": str(self.store_dir(n)),
                    "snapshot_dir": str(self.snapshot_dir(n)),
                }
                for n in self.nodes
            ],
            "store_dir": "/var/lib/devicedb/store",
            "service_stop_command": ["devicedb-service", "stop"],
            "service_start_command": ["devicedb-service", "start"],
            "service_status_command": ["devicedb-service", "status"],
            "missing_grace": "3s",
            "poke_interval": "1s",
            "http_timeout": "5s",
            "gate_timeout": "60s",
            "start_timeout": "30s",
            "membership_check": "required",
            "retries": 0,
            "schedule": None,
            "alert_emails": ["oncall@example.com"],
        }
        entry.update(overrides)
        return entry
