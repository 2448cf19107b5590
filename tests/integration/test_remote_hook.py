"""RemoteCommandHook against real sshd nodes: quoting, results, timeouts, transport retries, host keys."""

import json
import os

import pytest

from airflow_backup_provider.hooks.remote import (
    RemoteCommandHook,
    RemoteTransportError,
    run_remote_async,
)
from tests.sandbox import SSH_CONN_ID

pytestmark = pytest.mark.sandbox


def test_runs_on_the_named_node_and_returns_exit_code_stdout_stderr(sandbox):
    node = sandbox.nodes[1]
    with RemoteCommandHook(SSH_CONN_ID, host=node.address) as hook:
        result = hook.run(["sh", "-c", 'echo "$SANDBOX_NODE_NAME"; echo oops >&2; exit 3'])
    assert (result.exit_code, result.stdout, result.stderr) == (3, f"{node.name}\n", "oops\n")
    assert result.host == node.address


def test_hostile_strings_reach_the_command_as_data(sandbox, tmp_path):
    marker = sandbox.nodes[0].root / "pwned"
    hostile = f"x; touch {marker}; $(touch {marker}) `touch {marker}` ' \" \\"
    with RemoteCommandHook(SSH_CONN_ID, host=sandbox.nodes[0].address) as hook:
        result = hook.run(["printf", "%s", hostile])
    assert result.stdout == hostile
    assert not marker.exists()


def test_non_zero_exit_is_a_result_not_a_retry(sandbox):
    counter = sandbox.nodes[0].root / "count"
    counter.write_text("")
    with RemoteCommandHook(SSH_CONN_ID, host=sandbox.nodes[0].address) as hook:
        result = hook.run(["sh", "-c", f"echo x >> {counter}; exit 7"])
    assert result.exit_code == 7
    assert counter.read_text() == "x\n"


def test_command_timeout(sandbox):
    with RemoteCommandHook(SSH_CONN_ID, host=sandbox.nodes[0].address) as hook:
        with pytest.raises(TimeoutError, match="within 1"):
            hook.run(["sleep", "5"], timeout=1)
        assert hook.run(["true"]).ok  # the hook reconnects after a timeout


def test_refused_connection_is_retried_with_backoff_then_fails(sandbox, capfd):
    unused = sandbox.nodes[0].address.rsplit(".", 1)[0] + ".99"
    hook = RemoteCommandHook(SSH_CONN_ID, host=unused, connect_attempts=3, max_backoff=0.2)
    with pytest.raises(RemoteTransportError, match=f"cannot connect to {unused}"):
        hook.run(["true"])
    logged = capfd.readouterr().out
    assert logged.count(f"Connecting to {unused} failed (try") == 2
    assert "(try 2 of 3)" in logged


def test_node_coming_back_during_retries_succeeds(sandbox):
    node = sandbox.nodes[2]
    node.stop_sshd()
    hook = RemoteCommandHook(SSH_CONN_ID, host=node.address, connect_attempts=6, max_backoff=2)
    import threading

    timer = threading.Timer(1.5, node.start_sshd)
    timer.start()
    try:
        assert hook.run(["echo", "back"]).stdout == "back\n"
    finally:
        timer.join()
        node.start_sshd()
        hook.close()


def test_unknown_host_key_is_refused(sandbox, monkeypatch):
    conn = json.loads(os.environ[f"AIRFLOW_CONN_{SSH_CONN_ID.upper()}"])
    other_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    conn["extra"]["host_key"] = other_key
    monkeypatch.setenv("AIRFLOW_CONN_WRONG_KEY", json.dumps(conn))
    hook = RemoteCommandHook("wrong_key", host=sandbox.nodes[0].address, connect_attempts=1)
    with pytest.raises(Exception, match="(?i)host key|not match|BadHostKey"):
        hook.run(["true"])


def test_local_mode_runs_argv_without_a_shell(tmp_path):
    hook = RemoteCommandHook("local")
    result = hook.run(["sh", "-c", "echo $0", "a;b"])
    assert result.stdout == "a;b\n" and result.host == "localhost"
    assert hook.run(["definitely-not-a-command-xyz"]).exit_code == 127


@pytest.mark.anyio
async def test_async_twin_runs_over_ssh_with_host_key_checked(sandbox):
    node = sandbox.nodes[0]
    result = await run_remote_async(SSH_CONN_ID, node.address, ["sh", "-c", "echo $SANDBOX_NODE_NAME; exit 2"])
    assert (result.exit_code, result.stdout.strip()) == (2, node.name)


def test_sudo_runs_as_the_user_without_prompting(sandbox):
    with RemoteCommandHook(SSH_CONN_ID, host=sandbox.nodes[0].address, sudo_user="nobody") as hook:
        result = hook.run(["id", "-un"])
    assert result.command_line.startswith("sudo -n -u nobody -- ")
    assert (result.exit_code, result.stdout.strip()) == (0, "nobody")
