"""Riak in the sandbox: simulated nodes on the sshd nodes, moto instances with two volumes each.

Used by the demo (`prepare`, `demo_runs`), the tests and bench/riak_downtime.py (cluster setup,
knobs, the stop/start timeline).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.sandbox.block import mounted, put_drill_instance, set_busy, stand_for_instance  # noqa: F401  (the riak tests' helpers)

VOLUMES_PER_NODE = 2


@dataclass(frozen=True)
class TimelineEvent:
    at: float
    node: str
    event: str


def node_name(sandbox_node) -> str:
    return f"riak@{sandbox_node.address}"


def reset_cluster(sandbox, count: int | None = None, **knobs: Any) -> list[str]:
    """Every (or the first `count`) sandbox node becomes a running, settled Riak node."""
    names = []
    for index, node in enumerate(sandbox.nodes):
        state = node.state_dir("riak")
        if count is not None and index >= count:
            (state / "node.json").unlink(missing_ok=True)
            continue
        state_file = state / "node.json"
        state_file.write_text(
            json.dumps({"node_name": node_name(node), "running": True, "polls": 10**6, "starts": 0, "stops": 0})
        )
        set_knobs(node, **knobs)
        names.append(node_name(node))
    timeline_path(sandbox).unlink(missing_ok=True)
    return names


def set_knobs(node, **knobs: Any) -> None:
    """Behaviour of one simulated node (see KNOBS in tests/sandbox/tools/riak/riak.py)."""
    (node.state_dir("riak") / "knobs.json").write_text(json.dumps(knobs))


def node_state(node) -> dict:
    return json.loads((node.state_dir("riak") / "node.json").read_text())


def timeline_path(sandbox) -> Path:
    return Path(sandbox.root) / "riak-timeline.log"


def read_timeline(sandbox, *, with_stopping: bool = False) -> list[TimelineEvent]:
    """The simulator's events in order; `stopping` (a `riak stop` began) only when asked."""
    path = timeline_path(sandbox)
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        at, node, event = line.split()
        if event != "stopping" or with_stopping:
            events.append(TimelineEvent(float(at), node, event))
    return events


def max_down_at_once(events: list[TimelineEvent], initially_down: set[str] | None = None) -> int:
    down = set(initially_down or ())
    worst = len(down)
    for item in sorted(events, key=lambda e: e.at):
        if item.event == "stop":
            down.add(item.node)
        elif item.event == "start":
            down.discard(item.node)
        worst = max(worst, len(down))
    return worst


def down_windows(events: list[TimelineEvent], since: str = "stop") -> dict[str, list[float]]:
    """Seconds from each `since` event (`stop`: the node is down; `stopping`: `riak stop` began)
    to the node's next start (a stop never followed by a start counts as infinite)."""
    windows: dict[str, list[float]] = {}
    stopped_at: dict[str, float] = {}
    for item in sorted(events, key=lambda e: e.at):
        if item.event == since:
            stopped_at.setdefault(item.node, item.at)
        elif item.event == "start" and item.node in stopped_at:
            windows.setdefault(item.node, []).append(item.at - stopped_at.pop(item.node))
    for node in stopped_at:
        windows.setdefault(node, []).append(float("inf"))
    return windows


def make_instances(sandbox, count: int, volumes: int = VOLUMES_PER_NODE) -> list[str]:
    """`count` moto EC2 instances, each with `volumes` EBS volumes attached (root included)."""
    ec2 = sandbox.boto3_client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_ids = []
    for _ in range(count):
        instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]
        instance_id = instance["InstanceId"]
        attached = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])
        have = len(attached["Volumes"])
        zone = instance["Placement"]["AvailabilityZone"]
        for index in range(have, volumes):
            volume = ec2.create_volume(AvailabilityZone=zone, Size=8)
            ec2.attach_volume(VolumeId=volume["VolumeId"], InstanceId=instance_id, Device=f"/dev/sd{'fghij'[index]}")
        instance_ids.append(instance_id)
    return instance_ids


def instance_volumes(sandbox, instance_id: str) -> list[str]:
    ec2 = sandbox.boto3_client("ec2")
    found = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])
    return sorted(v["VolumeId"] for v in found["Volumes"])


# ---- the demo ---------------------------------------------------------------------------------


def prepare(sandbox, entry: dict) -> dict:
    """Put the entry's nodes on sandbox nodes (in order), each with a moto instance of 2 volumes whose
    data volume is mounted at DATA_MOUNT (so a drill compares filesystem UUIDs); a `drill_instance_id`
    becomes the sandbox's drill instance (in no cluster)."""
    nodes = entry.get("nodes") or []
    if len(nodes) > len(sandbox.nodes):
        raise ValueError(f"riak entry {entry.get('name')!r}: {len(nodes)} nodes, the sandbox has {len(sandbox.nodes)}")
    reset_cluster(sandbox, count=len(nodes), primaries_missing_polls=1, handoff_polls=1)
    instance_ids = make_instances(sandbox, len(nodes))
    entry = dict(entry)
    put_drill_instance(sandbox, entry)
    adapted = []
    for node, sandbox_node, instance_id in zip(nodes, sandbox.nodes, instance_ids, strict=False):
        stand_for_instance(sandbox, sandbox_node, instance_id, {DATA_DEVICE: DATA_MOUNT})
        adapted.append(
            {
                **node,
                "host": sandbox_node.address,
                "node_name": node_name(sandbox_node),
                "instance_id": instance_id,
            }
        )
    return {**entry, "nodes": adapted, "poke_interval": "1s", "gate_timeout": "2m", "retry_delay": "2s"}


def demo_runs(entry: dict) -> list[tuple[str, dict]]:
    dag_id = f"riak_{entry['name']}"
    # a dry run first, then the real one, as an operator trying it out would; then what a
    # restore of that backup would do (dry run: plans from the snapshots just made, changes nothing)
    return [(dag_id, {"dry_run": True}), (dag_id, {"dry_run": False}), (f"{dag_id}_restore", {"dry_run": True})]


# ---- block devices and mounts (restores): the data volume's device and mount point -------------

DATA_DEVICE = "/dev/sdg"  # make_instances attaches the data volume here (the root is /dev/sda1)
DATA_MOUNT = "/var/lib/riak"
