"""What Riak KV 2.x prints, and the command lines that make it print it. No Airflow, no I/O.

Every status line of ``riak-admin transfers`` starts with the quoted node name::

    'riak@10.0.0.3' waiting to handoff 6 partitions
    'riak@10.0.0.2' does not have 12 primary partitions running
    Nodes ['riak@10.0.0.4'] are currently down.

so the parsers read the output line by line and match each whole line. A pattern anchored at
the start of the *output* (the manual procedure's way) would only ever see the first line, and
a cluster with a missing primary would pass as healthy.

A text the parsers do not recognize never counts as healthy: a gate opens only on an output that
positively says so (``No transfers active``, or the ``Active Transfers:`` section with no status
line that blocks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from airflow_backup_provider import names

RIAK = "riak"
RIAK_ADMIN = "riak-admin"

_NODE = r"'(?P<node>[^']+)'"
_WAITING_RE = re.compile(rf"^{_NODE} waiting to handoff (?P<count>\d+) partitions?$")
_MISSING_RE = re.compile(rf"^{_NODE} does not have (?P<count>\d+) primary partitions? running$")
_DOWN_RE = re.compile(r"^Nodes \[(?P<nodes>.*)\] are currently down\.$")
_QUOTED_RE = re.compile(r"'([^']+)'")
_FAILED_TEXT = "Transfers failed, see log for details"
_NONE_ACTIVE_TEXT = "No transfers active"
_ACTIVE_HEADER = "Active Transfers:"
_FIELD_RE = re.compile(r"^(?P<key>transfer type|vnode type|partition|started|last update|total size|objects transferred): (?P<value>.*)$")
_ARROW_RE = re.compile(r"^(?P<source>\S+@\S+)\s+=*>?\s+(?P<target>\S+@\S+)$")
_PERCENT_RE = re.compile(r"\|\s*(?P<percent>\d+)%$")
NOT_RESPONDING_PATTERN = rf"Node {_NODE} not responding to pings\."

PONG = "pong"
STOP_OK = "ok"
ALREADY_RUNNING = "Node is already running!"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# ---- riak-admin transfers -------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveTransfer:
    transfer_type: str = ""
    vnode_type: str = ""
    partition: str = ""
    source: str = ""
    target: str = ""
    percent: int | None = None

    def describe(self) -> str:
        done = f" {self.percent}%" if self.percent is not None else ""
        return f"{self.transfer_type or 'transfer'} of partition {self.partition or '?'} {self.source or '?'} -> {self.target or '?'}{done}"


@dataclass(frozen=True)
class TransfersStatus:
    """The cluster's handoff state as one ``riak-admin transfers`` output describes it."""

    nodes_down: tuple[str, ...] = ()
    missing_primaries: dict[str, int] = field(default_factory=dict)
    waiting_handoffs: dict[str, int] = field(default_factory=dict)
    active_transfers: tuple[ActiveTransfer, ...] = ()
    failed: bool = False
    none_active: bool = False
    recognized: bool = False
    unrecognized_lines: tuple[str, ...] = ()

    @property
    def vnodes_ok(self) -> bool:
        """No node down and every primary partition running (the first gate after a start)."""
        return self.recognized and not self.failed and not self.nodes_down and not self.missing_primaries

    @property
    def handoffs_ok(self) -> bool:
        """No partition waiting to be handed off (the second gate)."""
        return self.recognized and not self.failed and not self.waiting_handoffs

    def vnode_problems(self) -> list[str]:
        problems = []
        if self.failed:
            problems.append(_FAILED_TEXT)
        elif not self.recognized:
            problems.append("the output of riak-admin transfers was not recognized")
        if self.nodes_down:
            problems.append(f"nodes {', '.join(repr(n) for n in self.nodes_down)} are down")
        problems += [
            f"{node!r} does not have {count} primary partitions running"
            for node, count in self.missing_primaries.items()
        ]
        return problems

    def handoff_problems(self) -> list[str]:
        problems = []
        if self.failed:
            problems.append(_FAILED_TEXT)
        elif not self.recognized:
            problems.append("the output of riak-admin transfers was not recognized")
        problems += [f"{node!r} waiting to handoff {count} partitions" for node, count in self.waiting_handoffs.items()]
        return problems


def parse_transfers(text: str) -> TransfersStatus:
    """Read every line of ``riak-admin transfers``; a status line may be anywhere in the output."""
    nodes_down: list[str] = []
    missing: dict[str, int] = {}
    waiting: dict[str, int] = {}
    transfers: list[ActiveTransfer] = []
    current: dict[str, object] | None = None
    failed = none_active = recognized = False
    unrecognized: list[str] = []

    def close_transfer() -> None:
        nonlocal current
        if current:
            transfers.append(ActiveTransfer(**current))  # type: ignore[arg-type]
        current = None

    for line in _lines(text):
        if match := _WAITING_RE.match(line):
            waiting[match["node"]] = waiting.get(match["node"], 0) + int(match["count"])
            recognized = True
        elif match := _MISSING_RE.match(line):
            missing[match["node"]] = missing.get(match["node"], 0) + int(match["count"])
            recognized = True
        elif match := _DOWN_RE.match(line):
            nodes_down += [n for n in _QUOTED_RE.findall(match["nodes"]) if n not in nodes_down]
            recognized = True
        elif line == _FAILED_TEXT:
            failed = True
        elif line == _NONE_ACTIVE_TEXT:
            none_active = recognized = True
        elif line == _ACTIVE_HEADER:
            recognized = True
        elif match := _FIELD_RE.match(line):
            key, value = match["key"], match["value"].strip()
            if key == "transfer type":
                close_transfer()
                current = {"transfer_type": value}
            elif current is not None and key == "vnode type":
                current["vnode_type"] = value
            elif current is not None and key == "partition":
                current["partition"] = value
        elif current is not None and (match := _ARROW_RE.match(line)):
            current["source"], current["target"] = match["source"], match["target"]
        elif current is not None and (match := _PERCENT_RE.search(line)):
            current["percent"] = int(match["percent"])
        elif current is not None:
            continue  # rate lines ("1140 Objs/s", "1.23 MB/s") of the transfer being read
        else:
            unrecognized.append(line)
    close_transfer()
    return TransfersStatus(
        nodes_down=tuple(nodes_down),
        missing_primaries=missing,
        waiting_handoffs=waiting,
        active_transfers=tuple(transfers),
        failed=failed,
        none_active=none_active,
        recognized=recognized,
        unrecognized_lines=tuple(unrecognized),
    )


# ---- riak-admin wait-for-service -----------------------------------


@dataclass(frozen=True)
class ServiceWait:
    up: bool
    not_up_lines: int


def parse_wait_for_service(stdout: str, service: str = "riak_kv") -> ServiceWait:
    """``riak_kv is not up: []`` repeated while it waits, then ``riak_kv is up``."""
    lines = _lines(stdout)
    not_up = sum(1 for line in lines if line.startswith(f"{service} is not up"))
    return ServiceWait(up=f"{service} is up" in lines, not_up_lines=not_up)


# ---- command lines ----------------------------------------------------------------------------


def check_service(service: str) -> str:
    return names.check_riak_service(service, "service")


def check_erlang_node(node: str) -> str:
    return names.check_erlang_node(node, "node_name")


def stop_argv(riak: str = RIAK) -> list[str]:
    return [riak, "stop"]


def start_argv(riak: str = RIAK) -> list[str]:
    return [riak, "start"]


def ping_argv(riak: str = RIAK) -> list[str]:
    return [riak, "ping"]


def transfers_argv(riak_admin: str = RIAK_ADMIN) -> list[str]:
    return [riak_admin, "transfers"]


def wait_for_service_argv(
    service: str = "riak_kv", node: str | None = None, *, bound_seconds: int | None = None, riak_admin: str = RIAK_ADMIN
) -> list[str]:
    """``riak-admin wait-for-service`` loops forever; coreutils ``timeout`` bounds it (exit 124)."""
    argv = [riak_admin, "wait-for-service", check_service(service)]
    if node:
        argv.append(check_erlang_node(node))
    if bound_seconds is not None:
        if bound_seconds <= 0:
            raise ValueError(f"bound_seconds: {bound_seconds!r} must be positive")
        argv = ["timeout", str(int(bound_seconds)), *argv]
    return argv


TIMEOUT_EXIT_CODE = 124


# ---- health gates -----------------------------------------------------------------------------

GATES = ("vnodes", "handoff", "all")


def check_gate(gate: str) -> str:
    if gate not in GATES:
        raise ValueError(f"gate: {gate!r} must be one of {list(GATES)}")
    return gate


def gate_problems(gate: str, stdout: str, exit_code: int = 0, stderr: str = "") -> list[str]:
    """What keeps `gate` closed, one line each; an empty list opens it.

    ``vnodes``: no node down and no primary partition missing; ``handoff``: no partition waiting
    to be handed off; ``all``: both. A failing ``riak-admin`` (exit code, or a node that is not
    running) keeps every gate closed.
    """
    check_gate(gate)
    if exit_code != 0:
        said = " / ".join(_lines(stdout) + _lines(stderr))[-300:]
        return [f"riak-admin transfers failed (exit {exit_code}){': ' + said if said else ''}"]
    status = parse_transfers(stdout)
    problems: list[str] = []
    if gate in ("vnodes", "all"):
        problems += status.vnode_problems()
    if gate in ("handoff", "all"):
        problems += [p for p in status.handoff_problems() if p not in problems]
    return problems
