"""The generic service operators judge a command's outcome, and its verification, as documented."""

from __future__ import annotations

import pytest

from airflow_backup_provider.hooks.remote import CommandResult
from airflow_backup_provider.operators.service import (
    ServiceCommandOperator,
    ServiceStartOperator,
    node_selected,
    riak_start,
    riak_stop,
)
from tests.unit import riak_texts as t


def result(stdout: str = "", exit_code: int = 0, stderr: str = "") -> CommandResult:
    return CommandResult("h", ("x",), "x", exit_code, stdout, stderr)


def test_riak_stop_expects_ok_and_a_silent_ping():
    stop = riak_stop(task_id="stop", host="10.0.0.1")
    assert stop.command == ["riak", "stop"]
    assert stop.action_matched(result(t.STOP_OK))
    assert not stop.action_matched(result("", 1, "escript: exception error: {badrpc,timeout}\n"))
    assert not stop.action_matched(result("Node is not running!\n", 0))
    assert stop.verify_shows_wanted_state(result(t.PING_DOWN, 1))
    assert not stop.verify_shows_wanted_state(result(t.PING_UP, 0))


@pytest.mark.parametrize(
    "broken",
    [
        result("", 127, "bash: line 1: riak: command not found\n"),
        result("", 126, "bash: line 1: /usr/sbin/riak: Permission denied\n"),
        result("", 1, "escript: exception error: {badrpc,timeout}\n"),
        result("", 255, ""),
    ],
)
def test_a_ping_that_says_nothing_of_the_node_never_counts_as_down(broken):
    # a stop "verified" by a ping that did not run would let the snapshot be taken of a running node
    stop = riak_stop(task_id="stop", host="10.0.0.1")
    assert not stop.verify_shows_wanted_state(broken)


def test_riak_start_accepts_already_running_and_wants_pong():
    start = riak_start(task_id="start", host="10.0.0.1", only_after="stop")
    assert start.trigger_rule == "all_done"
    assert start.action_matched(result(""))
    assert start.action_matched(result(t.START_ALREADY_RUNNING, 1))
    assert not start.action_matched(result("Riak failed to start within 15 seconds,\n", 1))
    assert start.verify_shows_wanted_state(result(t.PING_UP))
    assert not start.verify_shows_wanted_state(result(t.PING_DOWN, 1))
    assert not start.verify_shows_wanted_state(result(t.PING_UP, 1))
    assert not start.verify_shows_wanted_state(result("", 0))
    assert not start.verify_shows_wanted_state(result("pong pong\n", 0))  # the whole line is `pong`


def test_plain_command_needs_exit_zero():
    op = ServiceCommandOperator(task_id="svc", command=["systemctl", "stop", "devicedb"], host="h")
    assert op.action_matched(result("", 0))
    assert not op.action_matched(result("", 3))


def test_node_selection():
    assert node_selected([], "riak@a", "a")
    assert node_selected(None, "riak@a", "a")
    assert node_selected(["a"], "riak@a", "a")
    assert node_selected(["riak@a"], "riak@a", "a")
    assert not node_selected(["b"], "riak@a", "a")
    assert node_selected("a, b", "riak@a", "a")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"command": []}, "command"),
        ({"command": ["x"], "verify_wants": "sideways"}, "verify_wants"),
        ({"command": ["x"], "verify_command": ["ping"]}, "verify_expect"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ServiceStartOperator(task_id="svc", host="h", **kwargs)


@pytest.mark.parametrize("condition,skips", [(True, False), (False, True), ("True", False), ("False", True), (None, False)])
def test_a_stop_whose_condition_is_false_skips_itself(condition, skips):
    """run_if (a restore's mode): a false condition skips the stop before any command runs."""
    stop = riak_stop(task_id="stop", host="10.0.0.1", run_if=condition)
    reason = stop._skip_reason({})
    assert (reason is not None) is skips
    if skips:
        assert "condition is false" in reason


def test_an_unclear_condition_is_refused():
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="field 'run_if'"):
        riak_stop(task_id="stop", host="10.0.0.1", run_if="maybe")._skip_reason({})
