#!/usr/bin/env python3
"""Simulated `riak` (and, through riak-admin.py, `riak-admin`) for a sandbox node.

It prints exactly the texts of ../shared/reference/riak.md and keeps its state on disk:

    $SANDBOX_NODE_ROOT/state/riak/node.json    this node: name, running, polls since its start
    $SANDBOX_NODE_ROOT/state/riak/knobs.json   behaviour and faults (tests write it, see KNOBS)
    <sandbox root>/riak-timeline.log           "<unix time> <node name> <event>", all nodes together:
                                               stopping (riak stop begins), stop (the node is
                                               down), start (up again), stop_failed, start_failed

The cluster is every sandbox node that has a node.json: `riak-admin transfers` on any node
reports all of them. After a start, the node's primaries stay missing for
`primaries_missing_polls` polls of `riak-admin transfers` (any node's), then a peer waits to
hand off for `handoff_polls` more polls.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path

KNOBS = {
    "primaries_missing_polls": 2,  # polls of `riak-admin transfers` with primaries missing after a start
    "handoff_polls": 2,  # then polls with a handoff waiting
    "handoff_never_finishes": False,
    "partitions": 12,  # primaries reported missing
    "handoff_partitions": 6,  # partitions reported waiting to hand off
    "stop_fails": 0,  # this many `riak stop` fail (node stays up); -1: always
    "start_fails": 0,  # this many `riak start` fail (node stays down); -1: never starts
    "transfers_failed": 0,  # this many `riak-admin transfers` print "Transfers failed"; -1: always
    "kv_not_up_lines": 2,  # `wait-for-service riak_kv` prints "not up" this many times first
    "kv_never_up": False,
    "stop_seconds": 0.2,  # how long `riak stop` takes
    "start_seconds": 0.3,  # how long `riak start` takes
    "wait_interval": 0.1,  # between "is not up" lines
}

ROOT = Path(os.environ.get("SANDBOX_NODE_ROOT", "."))
STATE = ROOT / "state" / "riak"
CLUSTER_ROOT = ROOT.parent
TIMELINE = CLUSTER_ROOT / "riak-timeline.log"
LOCK = CLUSTER_ROOT / "riak-cluster.lock"


def default_node_name() -> str:
    return f"riak@{os.environ.get('SANDBOX_NODE_ADDRESS', '127.0.0.1')}"


@contextlib.contextmanager
def cluster_lock():
    with open(LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_json(path: Path, default: dict) -> dict:
    try:
        return {**default, **json.loads(path.read_text())}
    except (OSError, ValueError):
        return dict(default)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def load_node(state_dir: Path = STATE) -> dict:
    return read_json(
        state_dir / "node.json",
        {"node_name": default_node_name(), "running": True, "polls": 10**6, "starts": 0, "stops": 0},
    )


def knobs(state_dir: Path = STATE) -> dict:
    return read_json(state_dir / "knobs.json", KNOBS)


def timeline(node_name: str, event: str) -> None:
    with open(TIMELINE, "a") as handle:
        handle.write(f"{time.time():.6f} {node_name} {event}\n")


def take_fault(name: str) -> bool:
    """Use up one planned fault (`-1` never runs out)."""
    data = read_json(STATE / "knobs.json", KNOBS)
    left = int(data.get(name, 0))
    if left == 0:
        return False
    if left > 0:
        data[name] = left - 1
        write_json(STATE / "knobs.json", {k: v for k, v in data.items() if k in KNOBS})
    return True


def cluster() -> list[tuple[Path, dict]]:
    nodes = []
    for path in sorted(CLUSTER_ROOT.glob("*/state/riak/node.json")):
        nodes.append((path.parent, load_node(path.parent)))
    return nodes


def say(text: str, code: int = 0, stream=None) -> int:
    (stream or sys.stdout).write(text)
    (stream or sys.stdout).flush()
    return code


# ---- riak ---------------------------------------------------------------------------------------


def riak(args: list[str]) -> int:
    command = args[0] if args else ""
    k = knobs()
    with cluster_lock():
        node = load_node()
    name = node["node_name"]
    if command == "ping":
        if node["running"]:
            return say("pong\n")
        return say(f"Node '{name}' not responding to pings.\n", 1)
    if command == "stop":
        if not node["running"]:
            return say(f"Node '{name}' not responding to pings.\n", 1)
        with cluster_lock():
            timeline(name, "stopping")
        if take_fault("stop_fails"):
            time.sleep(float(k["stop_seconds"]))
            with cluster_lock():
                timeline(name, "stop_failed")
            return say("escript: exception error: {badrpc,timeout}\n", 1, sys.stderr)
        time.sleep(float(k["stop_seconds"]))
        with cluster_lock():
            node = load_node()
            node.update(running=False, stops=node["stops"] + 1)
            write_json(STATE / "node.json", node)
            timeline(name, "stop")
        return say("ok\n")
    if command == "start":
        if node["running"]:
            return say("Node is already running!\n", 1)
        time.sleep(float(k["start_seconds"]))
        if take_fault("start_fails"):
            with cluster_lock():
                timeline(name, "start_failed")
            return say(
                "Riak failed to start within 15 seconds,\n"
                "see the output of 'riak console' for more information.\n",
                1,
            )
        with cluster_lock():
            node = load_node()
            node.update(running=True, polls=0, starts=node["starts"] + 1)
            write_json(STATE / "node.json", node)
            timeline(name, "start")
        return 0
    return say(f"Usage: riak {{start|stop|ping}} (simulated; got {command!r})\n", 1, sys.stderr)


# ---- riak-admin ---------------------------------------------------------------------------------

ACTIVE_TRANSFER = """\
transfer type: hinted_handoff
vnode type: riak_kv_vnode
partition: 1004782375664995756265033322492444576013453623296
started: 2026-11-20 02:11:05 [1.02 s ago]
last update: 2026-11-20 02:11:06 [21.30 ms ago]
total size: 61348 bytes
objects transferred: 120
                         1140 Objs/s
  {source}        =======================>  {target}
       |=======================                      |  51%
                        1.23 MB/s
"""


def transfers() -> int:
    if take_fault("transfers_failed"):
        return say("Transfers failed, see log for details\n")
    with cluster_lock():
        members = cluster()
        down = [n["node_name"] for _, n in members if not n["running"]]
        lines: list[str] = []
        active: list[str] = []
        running = [n["node_name"] for _, n in members if n["running"]]
        for state_dir, node in members:
            if not node["running"]:
                continue
            k = knobs(state_dir)
            polls = int(node["polls"])
            missing_until = int(k["primaries_missing_polls"])
            handoff_until = missing_until + int(k["handoff_polls"])
            if polls < missing_until:
                lines.append(f"'{node['node_name']}' does not have {k['partitions']} primary partitions running")
            elif polls < handoff_until or (k["handoff_never_finishes"] and node["starts"] > 0):
                peers = [n for n in running if n != node["node_name"]]
                source = peers[0] if peers else node["node_name"]
                lines.append(f"'{source}' waiting to handoff {k['handoff_partitions']} partitions")
                active.append(ACTIVE_TRANSFER.format(source=source, target=node["node_name"]))
            node["polls"] = polls + 1
            write_json(state_dir / "node.json", node)
    text = "".join(f"{line}\n" for line in lines)
    if down:
        text += f"Nodes [{', '.join(repr(n) for n in down)}] are currently down.\n"
    if not lines and not down:
        text += "No transfers active\n"
    text += "\nActive Transfers:\n\n" + "".join(active)
    return say(text)


def wait_for_service(args: list[str]) -> int:
    service = args[0] if args else "riak_kv"
    k = knobs()
    shown = 0
    while k["kv_never_up"] or shown < int(k["kv_not_up_lines"]):
        say(f"{service} is not up: []\n")
        shown += 1
        time.sleep(float(k["wait_interval"]))
    return say(f"{service} is up\n")


def riak_admin(args: list[str]) -> int:
    with cluster_lock():
        node = load_node()
    if not node["running"]:
        return say("Node is not running!\n", 1)
    command = args[0] if args else ""
    if command == "transfers":
        return transfers()
    if command == "wait-for-service":
        return wait_for_service(args[1:])
    return say(f"Usage: riak-admin {{transfers|wait-for-service}} (simulated; got {command!r})\n", 1, sys.stderr)


def main(argv: list[str]) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    if argv[:1] == ["--as-riak-admin"]:
        return riak_admin(argv[1:])
    return riak(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
