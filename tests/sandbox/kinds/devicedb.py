"""Demo support for `kind: devicedb`: a simulated 3-node cluster on the sandbox nodes, a bucket,
a few keys; then the backup and a confirmed restore of that backup."""

from __future__ import annotations

from typing import Any

from tests.sandbox.core import Sandbox
from tests.sandbox.devicedb import DevicedbSim

DEMO_DATE = "2026-11-20"


def prepare(sandbox: Sandbox, entry: dict[str, Any]) -> dict[str, Any]:
    sim = DevicedbSim(sandbox, snapshot_delay=1.0)
    sandbox.add_cleanup(sim.stop)
    sim.reset()
    s3 = sandbox.boto3_client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if entry["bucket"] not in existing:
        s3.create_bucket(Bucket=entry["bucket"])
    for i in range(6):
        sim.write(f"gateway-{i}", f"config-{i}", site="demo", node=i % len(sim.nodes))

    adapted = dict(entry)
    nodes = entry.get("nodes") or []
    count = min(max(len(nodes), 1), len(sandbox.nodes))
    adapted["nodes"] = [
        {
            **{k: v for k, v in (nodes[i] if i < len(nodes) else {}).items() if k not in ("host", "port", "http_host")},
            "host": sandbox.nodes[i].address,
            "http_port": sim.port,
            "store_dir": str(sim.store_dir(sandbox.nodes[i])),
            "snapshot_dir": str(sim.snapshot_dir(sandbox.nodes[i])),
        }
        for i in range(count)
    ]
    adapted.pop("snapshot_dir", None)
    adapted.update(
        {
            "service_stop_command": ["devicedb-service", "stop"],
            "service_start_command": ["devicedb-service", "start"],
            "service_status_command": ["devicedb-service", "status"],
            "poke_interval": "1s",
            "http_timeout": "5s",
            "missing_grace": "30s",
            "gate_timeout": "5m",
            "start_timeout": "2m",
            "membership_check": "required",
            "retry_delay": "5s",
        }
    )
    return adapted


def demo_runs(entry: dict[str, Any]) -> list[tuple[str, dict]]:
    name = entry["name"]
    return [
        (f"devicedb_{name}", {}),
        (f"devicedb_{name}_restore", {"snapshot": DEMO_DATE, "confirm": name}),
    ]
