"""The Riak parsers and command builders, on the exact reference texts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_backup_provider.stores import riak
from tests.unit import riak_texts as t


def test_busy_transfers_every_status_line_is_found():
    status = riak.parse_transfers(t.TRANSFERS_BUSY)
    assert status.recognized and not status.failed and not status.none_active
    assert status.waiting_handoffs == {"riak@10.0.0.3": 6}
    assert status.missing_primaries == {"riak@10.0.0.2": 12}
    assert status.nodes_down == ("riak@10.0.0.4",)
    assert not status.vnodes_ok
    assert not status.handoffs_ok
    assert status.unrecognized_lines == ()


def test_busy_transfers_active_transfer_is_read():
    (transfer,) = riak.parse_transfers(t.TRANSFERS_BUSY).active_transfers
    assert transfer == riak.ActiveTransfer(
        transfer_type="hinted_handoff",
        vnode_type="riak_kv_vnode",
        partition="1004782375664995756265033322492444576013453623296",
        source="riak@10.0.0.3",
        target="riak@10.0.0.1",
        percent=51,
    )
    assert "riak@10.0.0.3 -> riak@10.0.0.1 51%" in transfer.describe()


def test_messages_name_node_and_count():
    status = riak.parse_transfers(t.TRANSFERS_BUSY)
    assert status.handoff_problems() == ["'riak@10.0.0.3' waiting to handoff 6 partitions"]
    assert status.vnode_problems() == [
        "nodes 'riak@10.0.0.4' are down",
        "'riak@10.0.0.2' does not have 12 primary partitions running",
    ]


def test_idle_transfers_open_both_gates():
    status = riak.parse_transfers(t.TRANSFERS_IDLE)
    assert status.none_active and status.recognized
    assert status.vnodes_ok and status.handoffs_ok
    assert status.vnode_problems() == [] and status.handoff_problems() == []


def test_transfers_failed_opens_no_gate():
    status = riak.parse_transfers(t.TRANSFERS_FAILED)
    assert status.failed
    assert not status.vnodes_ok and not status.handoffs_ok
    assert status.vnode_problems() == ["Transfers failed, see log for details"]


@pytest.mark.parametrize("text", ["", "\n", "Node is not running!\n", "garbage\nmore garbage\n"])
def test_unrecognized_output_is_never_healthy(text):
    status = riak.parse_transfers(text)
    assert not status.vnodes_ok and not status.handoffs_ok
    assert "not recognized" in status.vnode_problems()[0]


def test_a_status_line_after_the_first_line_still_blocks():
    """The manual procedure's bug: `re.compile(...).match(output)` only looks at the start of the
    whole output, where the node name is, so a missing primary never stopped it. Here each line
    counts, wherever it is."""
    seed_pattern = re.compile(r"does not have \d+ primary partitions running")
    assert seed_pattern.match(t.TRANSFERS_BUSY) is None  # the bug, reproduced
    only_missing = "'riak@10.0.0.2' does not have 12 primary partitions running\n\nActive Transfers:\n\n"
    assert seed_pattern.match(only_missing) is None  # even as the first line: it starts with the name
    for text in (t.TRANSFERS_BUSY, only_missing):
        status = riak.parse_transfers(text)
        assert status.missing_primaries == {"riak@10.0.0.2": 12}
        assert not status.vnodes_ok


@given(
    before=st.lists(st.sampled_from(t.TRANSFERS_IDLE.splitlines() + ["  ", "1.23 MB/s"]), max_size=5),
    after=st.lists(st.sampled_from(t.TRANSFERS_IDLE.splitlines()), max_size=5),
    count=st.integers(min_value=1, max_value=4096),
)
def test_missing_primaries_are_found_at_any_position(before, after, count):
    line = f"'riak@10.0.0.9' does not have {count} primary partitions running"
    status = riak.parse_transfers("\n".join([*before, line, *after, "Active Transfers:"]))
    assert status.missing_primaries == {"riak@10.0.0.9": count}
    assert not status.vnodes_ok


def test_several_nodes_down_and_waiting():
    text = (
        "'riak@a.example' waiting to handoff 2 partitions\n"
        "'riak@b.example' waiting to handoff 3 partitions\n"
        "Nodes ['riak@c.example', 'riak@d.example'] are currently down.\n\nActive Transfers:\n\n"
    )
    status = riak.parse_transfers(text)
    assert status.waiting_handoffs == {"riak@a.example": 2, "riak@b.example": 3}
    assert status.nodes_down == ("riak@c.example", "riak@d.example")
    assert status.missing_primaries == {}
    assert not status.vnodes_ok  # nodes down


def test_only_handoffs_waiting_passes_the_vnode_gate_not_the_handoff_gate():
    text = "'riak@10.0.0.3' waiting to handoff 6 partitions\n\nActive Transfers:\n\n"
    status = riak.parse_transfers(text)
    assert status.vnodes_ok and not status.handoffs_ok


def test_wait_for_service():
    wait = riak.parse_wait_for_service(t.WAIT_FOR_SERVICE)
    assert wait.up and wait.not_up_lines == 2
    assert not riak.parse_wait_for_service("riak_kv is not up: []\n" * 3).up
    assert not riak.parse_wait_for_service("riak_pipe is up\n").up
    assert riak.parse_wait_for_service("riak_pipe is up\n", "riak_pipe").up


def test_argv_builders():
    assert riak.stop_argv() == ["riak", "stop"]
    assert riak.start_argv() == ["riak", "start"]
    assert riak.ping_argv() == ["riak", "ping"]
    assert riak.transfers_argv() == ["riak-admin", "transfers"]
    assert riak.wait_for_service_argv("riak_kv", "riak@10.0.0.1", bound_seconds=600) == [
        "timeout", "600", "riak-admin", "wait-for-service", "riak_kv", "riak@10.0.0.1",
    ]
    assert riak.wait_for_service_argv() == ["riak-admin", "wait-for-service", "riak_kv"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"service": "riak_kv; rm -rf /"}, "service"),
        ({"node": "riak@x $(reboot)"}, "node_name"),
        ({"bound_seconds": 0}, "bound_seconds"),
    ],
)
def test_argv_builders_refuse_hostile_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        riak.wait_for_service_argv(**kwargs)


def test_gate_problems():
    assert riak.gate_problems("vnodes", t.TRANSFERS_IDLE) == []
    assert riak.gate_problems("handoff", t.TRANSFERS_IDLE) == []
    assert riak.gate_problems("all", t.TRANSFERS_IDLE) == []
    assert riak.gate_problems("handoff", t.TRANSFERS_BUSY) == ["'riak@10.0.0.3' waiting to handoff 6 partitions"]
    assert len(riak.gate_problems("all", t.TRANSFERS_BUSY)) == 3
    assert riak.gate_problems("all", t.TRANSFERS_FAILED) == ["Transfers failed, see log for details"]
    assert riak.gate_problems("vnodes", "Node is not running!\n", 1) == [
        "riak-admin transfers failed (exit 1): Node is not running!"
    ]
    assert riak.gate_problems("vnodes", t.TRANSFERS_IDLE, 1)  # a failing command never opens a gate
    with pytest.raises(ValueError, match="gate"):
        riak.gate_problems("everything", t.TRANSFERS_IDLE)
