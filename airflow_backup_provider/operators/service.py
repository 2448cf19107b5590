"""Stop or start a service on a node: a command, the outcome it should print, and a verify command.

The operator runs the command over SSH (:class:`RemoteCommandHook`), compares what it printed
with the expected outcome, then runs the verify command (``riak ping``, ``systemctl is-active``
...) until it shows the wanted state, a bounded number of times (tenacity). The verify command
has the last word: ``riak start`` printing ``Node is already running!`` and a ping answering
``pong`` is a success; ``riak stop`` printing ``ok`` while the node still answers is a failure.

Two rules keep a node from being left stopped:

* a start task gets ``trigger_rule="all_done"`` and ``only_after=<the stop task>``: it runs
  whatever failed between the stop and itself, and skips itself only when that stop never ran
  (skipped, or never reached because an earlier node failed);
* the node selection (``selected_nodes``, e.g. a DAG param) skips the stop of an unselected node,
  which skips its start through ``only_after``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowSkipException
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

from airflow_backup_provider.flags import as_bool
from airflow_backup_provider.hooks.remote import CommandResult, RemoteCommandHook
from airflow_backup_provider.operators.base import BackupOperator
from airflow_backup_provider.stores import riak

STOP_RAN_STATES = frozenset({"success", "failed"})
# the shell's "not executable" and "not found": the verify command said nothing about the service
COMMAND_NOT_RUN_EXIT_CODES = frozenset({126, 127})


class ServiceActionError(AirflowException):
    """The command ran, and the service is not in the state it should be in."""


def _lines(result: CommandResult) -> list[str]:
    return [line.strip() for line in (result.stdout + "\n" + result.stderr).splitlines() if line.strip()]


def _excerpt(result: CommandResult) -> str:
    text = " / ".join(_lines(result))
    return f"exit {result.exit_code}" + (f": {text[-500:]}" if text else ", no output")


def node_selected(selected: Any, *names: str) -> bool:
    """An empty selection means every node; otherwise one of `names` must be in it."""
    if selected in (None, "", [], ()):
        return True
    if isinstance(selected, str):
        selected = [s.strip() for s in selected.split(",") if s.strip()]
    return any(name in selected for name in names if name)


class ServiceCommandOperator(BackupOperator):
    """
    Run one service command on a node and check that the service reached the wanted state.

    :param command: argv of the action, e.g. ``["riak", "stop"]``.
    :param host: the node's SSH address; ``port``, ``ssh_conn_id``, ``sudo_user`` as for
        :class:`RemoteCommandHook`.
    :param expect_output: lines of which one must be printed (with exit 0) for the action to have
        gone as planned; empty: exit 0 is enough.
    :param accept_output: lines that are fine whatever the exit code (``Node is already running!``).
    :param verify_command: argv that shows the service state, e.g. ``["riak", "ping"]``.
    :param verify_expect: lines the verify command prints when the service is up.
    :param verify_wants: ``"up"`` (a ``verify_expect`` line with exit 0) or ``"down"`` (no such line).
    :param verify_down_pattern: a regular expression one line of the verify command must match
        for "down" to be believed (``Node '...' not responding to pings.``): a verify command that
        failed for another reason (not found, no permission) never counts as the service down.
    :param verify_attempts: how many times the verify command runs before giving up (exponential
        backoff up to ``verify_max_wait`` seconds between tries).
    :param only_after: task id of a stop task: run only if that task ran (success or failed).
    :param selected_nodes: node names to act on (templated; empty = all); ``node`` and ``host``
        are the names this node answers to.
    :param run_if: templated; when it renders false the task skips itself (e.g. a restore mode
        that is not this run's: ``"{{ params.mode == 'cluster' }}"``). None: always runs.
    :param dry_run: log what would run and change nothing (templated; None: the run's param).
    """

    template_fields: Sequence[str] = ("command", "host", "verify_command", "selected_nodes", "run_if", "dry_run")
    ui_color = "#fde7c8"

    def __init__(
        self,
        *,
        command: Sequence[str],
        host: str,
        port: int = 22,
        ssh_conn_id: str = "backup_ssh",
        sudo_user: str | None = None,
        command_timeout: float = 600,
        expect_output: Sequence[str] = (),
        accept_output: Sequence[str] = (),
        verify_command: Sequence[str] | None = None,
        verify_expect: Sequence[str] = (),
        verify_wants: str = "up",
        verify_down_pattern: str | None = None,
        verify_attempts: int = 5,
        verify_max_wait: float = 30.0,
        only_after: str | None = None,
        selected_nodes: Any = None,
        node: str | None = None,
        run_if: Any = None,
        dry_run: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not command:
            raise ValueError(f"{self.task_id}: command: an empty command cannot be run")
        if verify_wants not in ("up", "down"):
            raise ValueError(f"{self.task_id}: verify_wants: {verify_wants!r} must be 'up' or 'down'")
        if verify_command is not None and not verify_expect:
            raise ValueError(f"{self.task_id}: verify_expect: needed with verify_command {list(verify_command)!r}")
        self.command = list(command)
        self.host = host
        self.port = port
        self.ssh_conn_id = ssh_conn_id
        self.sudo_user = sudo_user
        self.command_timeout = command_timeout
        self.expect_output = list(expect_output)
        self.accept_output = list(accept_output)
        self.verify_command = list(verify_command) if verify_command else None
        self.verify_expect = list(verify_expect)
        self.verify_wants = verify_wants
        self.verify_down_pattern = verify_down_pattern
        self.verify_attempts = max(1, verify_attempts)
        self.verify_max_wait = verify_max_wait
        self.only_after = only_after
        self.selected_nodes = selected_nodes
        self.node = node or host
        self.run_if = run_if
        self.dry_run = dry_run

    # ---- pure judgement ---------------------------------------------------------------------
    def action_matched(self, result: CommandResult) -> bool:
        lines = _lines(result)
        if any(line in lines for line in self.accept_output):
            return True
        if result.exit_code != 0:
            return False
        return not self.expect_output or any(line in lines for line in self.expect_output)

    def verify_shows_wanted_state(self, result: CommandResult) -> bool:
        up = result.exit_code == 0 and any(line in result.stdout.splitlines() for line in self.verify_expect)
        if self.verify_wants == "up":
            return up
        if up or result.exit_code in COMMAND_NOT_RUN_EXIT_CODES:
            return False
        return self.verify_down_pattern is None or any(
            re.fullmatch(self.verify_down_pattern, line) for line in _lines(result)
        )

    # ---- the task ---------------------------------------------------------------------------
    def hook(self) -> RemoteCommandHook:
        return self.remote_hook(self.host, self.port)

    def _skip_reason(self, context: Any) -> str | None:
        if self.run_if is not None and not as_bool(self.run_if, "run_if"):
            return f"not for this run ({self.node}: its condition is false)"
        if not node_selected(self.selected_nodes, self.node, self.host):
            return f"{self.node} is not among the selected nodes {self.selected_nodes!r}"
        if self.only_after:
            ti = context["ti"]
            states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=[self.only_after])
            state = (states.get(ti.run_id) or {}).get(self.only_after)
            if str(state) not in STOP_RAN_STATES:
                return f"{self.only_after} did not run (state {state}): nothing to undo on {self.node}"
            self.log.info("%s ended %s: running %s on %s", self.only_after, state, self.command, self.node)
        return None

    def execute(self, context: Any) -> dict[str, Any]:
        reason = self._skip_reason(context)
        if reason:
            self.log.info("Skipping: %s", reason)
            raise AirflowSkipException(reason)
        hook = self.hook()
        line = hook.command_line(self.command)
        if self.is_dry_run(context):
            self.log.info("Dry run: would run %s on %s", line, self.node)
            self.record_outcome(context, status="dry_run", node=self.node, detail=f"would run {line}")
            return {"node": self.node, "dry_run": True}
        with hook:
            result = hook.run(self.command, timeout=self.command_timeout)
            self.log.info("%s on %s: %s", line, self.node, _excerpt(result))
            matched = self.action_matched(result)
            detail = f"{line}: {_excerpt(result)}"
            if self.verify_command:
                # after an expected outcome the service may need a moment to settle: verify with
                # retries; after an unexpected one, one look says whether it is there anyway
                verified = self._verify(hook, attempts=self.verify_attempts if matched else 1)
                detail += f"; {hook.command_line(self.verify_command)}: {_excerpt(verified)}"
                if not self.verify_shows_wanted_state(verified):
                    raise ServiceActionError(
                        f"{self.node}: the service is not {self.verify_wants} after {detail}"
                    )
                if not matched:
                    self.log.warning(
                        "%s printed an unexpected outcome, but %s shows the service %s: accepted",
                        line, self.verify_command, self.verify_wants,
                    )
            elif not matched:
                raise ServiceActionError(f"{self.node}: unexpected outcome of {detail}")
        self.record_outcome(context, status="done", node=self.node, detail=detail)
        return {"node": self.node, "command": line, "matched": matched, "detail": detail}

    def _verify(self, hook: RemoteCommandHook, attempts: int) -> CommandResult:
        assert self.verify_command is not None
        retrying = Retrying(
            retry=retry_if_result(lambda r: not self.verify_shows_wanted_state(r)),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.5, min=0.5, max=self.verify_max_wait),
            retry_error_callback=lambda state: state.outcome.result(),
            before_sleep=lambda state: self.log.info(
                "%s on %s: not %s yet (try %d of %d)",
                self.verify_command, self.node, self.verify_wants, state.attempt_number, attempts,
            ),
        )
        return retrying(hook.run, self.verify_command, timeout=min(self.command_timeout, 120))


class ServiceStopOperator(ServiceCommandOperator):
    """Stop a service; with a verify command, success means the verify shows it down."""

    ui_color = "#ffd6d6"

    def __init__(self, *, verify_wants: str = "down", **kwargs: Any) -> None:
        super().__init__(verify_wants=verify_wants, **kwargs)


class ServiceStartOperator(ServiceCommandOperator):
    """
    Start a service that a stop task of this run stopped (``only_after``), whatever happened since.

    Defaults to ``trigger_rule="all_done"`` so that a failed snapshot between stop and start can
    never leave the service down.
    """

    ui_color = "#d6ffd9"

    def __init__(self, *, verify_wants: str = "up", **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(verify_wants=verify_wants, **kwargs)


# ---- presets ------------------------------------------------------------------------------------

RIAK_STOP = {
    "command": riak.stop_argv(),
    "expect_output": [riak.STOP_OK],
    "verify_command": riak.ping_argv(),
    "verify_expect": [riak.PONG],
    "verify_down_pattern": riak.NOT_RESPONDING_PATTERN,
}
RIAK_START = {
    "command": riak.start_argv(),
    "accept_output": [riak.ALREADY_RUNNING],
    "verify_command": riak.ping_argv(),
    "verify_expect": [riak.PONG],
}


def riak_stop(**kwargs: Any) -> ServiceStopOperator:
    """``riak stop`` must print ``ok`` and ``riak ping`` say the node is not responding to pings."""
    return ServiceStopOperator(**{**RIAK_STOP, **kwargs})


def riak_start(**kwargs: Any) -> ServiceStartOperator:
    """``riak start`` (``Node is already running!`` is fine), verified by ``riak ping`` -> ``pong``."""
    return ServiceStartOperator(**{**RIAK_START, **kwargs})


__all__ = [
    "RIAK_START",
    "RIAK_STOP",
    "ServiceActionError",
    "ServiceCommandOperator",
    "ServiceStartOperator",
    "ServiceStopOperator",
    "node_selected",
    "riak_start",
    "riak_stop",
]
