"""The simulated riak / riak-admin print the reference texts and follow the start -> vnodes ->
handoff sequence, with their faults; run over real SSH like the DAG does."""

from __future__ import annotations

import pytest

from airflow_backup_provider.hooks.remote import RemoteCommandHook
from airflow_backup_provider.operators.service import riak_start, riak_stop
from airflow_backup_provider.stores import riak as store
from tests.sandbox.kinds import riak as kind
from tests.unit import riak_texts as t

pytestmark = pytest.mark.sandbox


@pytest.fixture
def cluster(sandbox):
    kind.reset_cluster(sandbox, primaries_missing_polls=2, handoff_polls=2, stop_seconds=0, start_seconds=0)
    yield sandbox
    kind.reset_cluster(sandbox)


def run(node, *argv):
    with RemoteCommandHook(ssh_conn_id="backup_ssh", host=node.address) as hook:
        return hook.run(list(argv), timeout=30)


def test_settled_cluster_prints_the_idle_text(cluster):
    result = run(cluster.nodes[0], "riak-admin", "transfers")
    assert result.exit_code == 0
    assert result.stdout == t.TRANSFERS_IDLE
    assert run(cluster.nodes[0], "riak", "ping").stdout == t.PING_UP
    assert run(cluster.nodes[0], "riak", "start").stdout == t.START_ALREADY_RUNNING


def test_stop_start_sequence_and_timeline(cluster):
    first, second = cluster.nodes[0], cluster.nodes[1]
    assert run(first, "riak", "stop").stdout == t.STOP_OK
    down = run(first, "riak", "ping")
    assert down.exit_code == 1 and down.stdout == f"Node '{kind.node_name(first)}' not responding to pings.\n"
    seen = run(second, "riak-admin", "transfers").stdout
    assert seen == f"Nodes ['{kind.node_name(first)}'] are currently down.\n\nActive Transfers:\n\n"
    assert run(first, "riak-admin", "transfers").stdout == "Node is not running!\n"

    started = run(first, "riak", "start")
    assert started.exit_code == 0 and started.stdout == ""
    waits = run(first, "riak-admin", "wait-for-service", "riak_kv", kind.node_name(first)).stdout
    assert waits == t.WAIT_FOR_SERVICE

    statuses = [store.parse_transfers(run(second, "riak-admin", "transfers").stdout) for _ in range(5)]
    assert [s.missing_primaries for s in statuses[:2]] == [{kind.node_name(first): 12}] * 2
    assert all(s.vnodes_ok for s in statuses[2:])
    assert [s.handoffs_ok for s in statuses] == [True, True, False, False, True]
    assert statuses[2].waiting_handoffs == {kind.node_name(cluster.nodes[1]): 6}
    assert statuses[2].active_transfers[0].target == kind.node_name(first)

    events = kind.read_timeline(cluster)
    assert [(e.node, e.event) for e in events] == [(kind.node_name(first), "stop"), (kind.node_name(first), "start")]
    assert kind.max_down_at_once(events) == 1


def test_busy_text_matches_the_reference_layout(cluster):
    first = cluster.nodes[0]
    kind.set_knobs(first, primaries_missing_polls=0, handoff_polls=5, stop_seconds=0, start_seconds=0)
    run(first, "riak", "stop")
    run(first, "riak", "start")
    text = run(first, "riak-admin", "transfers").stdout
    peer = kind.node_name(cluster.nodes[1])
    expected_block = t.TRANSFERS_BUSY.split("Active Transfers:\n\n")[1]
    expected_block = expected_block.replace("riak@10.0.0.3", peer).replace("riak@10.0.0.1", kind.node_name(first))
    assert text == f"'{peer}' waiting to handoff 6 partitions\n\nActive Transfers:\n\n{expected_block}"


def test_faults(cluster):
    first = cluster.nodes[0]
    kind.set_knobs(first, stop_fails=1, start_fails=1, transfers_failed=1, stop_seconds=0, start_seconds=0)
    # judged as the DAG's stop and start tasks judge them
    stop, start = riak_stop(task_id="stop", host=first.address), riak_start(task_id="start", host=first.address)
    failed_stop = run(first, "riak", "stop")
    assert failed_stop.exit_code == 1 and not stop.action_matched(failed_stop)
    assert start.verify_shows_wanted_state(run(first, "riak", "ping"))
    assert run(first, "riak", "stop").stdout == t.STOP_OK
    failed_start = run(first, "riak", "start")
    assert failed_start.exit_code == 1
    assert not start.verify_shows_wanted_state(run(first, "riak", "ping"))
    assert stop.verify_shows_wanted_state(run(first, "riak", "ping"))
    assert run(first, "riak", "start").exit_code == 0
    assert run(first, "riak-admin", "transfers").stdout == t.TRANSFERS_FAILED
    assert run(first, "riak-admin", "transfers").stdout != t.TRANSFERS_FAILED
    events = [(e.event) for e in kind.read_timeline(cluster)]
    assert events == ["stop_failed", "stop", "start_failed", "start"]


def collect(trigger) -> list[dict]:
    import asyncio

    async def main():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(main())


def test_trigger_logs_what_it_waits_for_then_opens(cluster, capfd):
    import time

    from airflow_backup_provider.triggers.riak import RiakTransfersTrigger

    first, second = cluster.nodes[0], cluster.nodes[1]
    kind.set_knobs(first, primaries_missing_polls=0, handoff_polls=2, stop_seconds=0, start_seconds=0)
    run(first, "riak", "stop")
    run(first, "riak", "start")
    trigger = RiakTransfersTrigger(
        host=first.address, gate="handoff", node=kind.node_name(first), deadline=time.time() + 30, poll_interval=0.2
    )
    assert trigger.serialize()[0] == "airflow_backup_provider.triggers.riak.RiakTransfersTrigger"
    capfd.readouterr()
    events = collect(trigger)
    logged = capfd.readouterr().out
    assert events[-1]["status"] == "success" and events[-1]["polls"] == 3
    waiting = f"'{kind.node_name(second)}' waiting to handoff 6 partitions"
    assert logged.count(f"handoff gate for {kind.node_name(first)}: {waiting}") == 2, logged


def test_trigger_times_out_and_gives_up_on_an_unreachable_node(cluster):
    import time

    from airflow_backup_provider.triggers.riak import RiakTransfersTrigger

    first = cluster.nodes[0]
    kind.set_knobs(first, primaries_missing_polls=0, handoff_polls=0, handoff_never_finishes=True,
                   stop_seconds=0, start_seconds=0)
    run(first, "riak", "stop")
    run(first, "riak", "start")
    events = collect(
        RiakTransfersTrigger(host=first.address, gate="handoff", deadline=time.time() + 1.5, poll_interval=0.3)
    )
    assert events == [{"status": "timeout", "message": events[0]["message"], "polls": events[0]["polls"]}]
    assert "waiting to handoff 6 partitions" in events[0]["message"]

    events = collect(
        RiakTransfersTrigger(host="127.0.0.2", gate="vnodes", deadline=time.time() + 60, poll_interval=0.1,
                             max_transport_failures=2)
    )
    assert events[0]["status"] == "error" and "cannot reach 127.0.0.2" in events[0]["message"]
