import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_backup_provider.hooks.remote import CommandResult, RemoteCommandError, build_command_line


@given(st.lists(st.text(min_size=0, max_size=20), min_size=1, max_size=6))
def test_every_argument_survives_the_shell_as_one_word(argv):
    assert shlex.split(build_command_line(argv)) == argv


def test_sudo_prefix_never_prompts():
    line = build_command_line(["riak", "stop"], sudo_user="riak")
    assert shlex.split(line) == ["sudo", "-n", "-u", "riak", "--", "riak", "stop"]


def test_empty_command_is_refused():
    with pytest.raises(ValueError, match="argv"):
        build_command_line([])


def test_check_raises_with_host_exit_code_and_stderr():
    result = CommandResult("10.0.0.1", ("riak", "stop"), "riak stop", 1, "", "Node is not running!")
    with pytest.raises(RemoteCommandError, match=r"riak stop on 10.0.0.1: exit code 1: Node is not running!"):
        result.check()
    assert CommandResult("h", ("true",), "true", 0, "", "").check().ok
