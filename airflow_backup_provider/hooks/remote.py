"""Run a command on a node: over SSH (the ssh provider's SSHHook) or locally on the worker.

Commands are argv lists. They are joined with :func:`shlex.join`, so every argument reaches the
remote shell as one quoted word: a hostile keyspace, path or host name cannot become shell syntax.
A non-zero exit is returned as a result for the caller to judge; only transport faults while
connecting (refused, reset, timeout) are retried, with tenacity.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shlex
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import paramiko
from airflow.providers.ssh.hooks.ssh import SSHHook
from airflow.sdk.bases.hook import BaseHook
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

if TYPE_CHECKING:
    import logging

LOCAL = "local"
JOB_BASE_DIR = "/tmp/airflow-backup-jobs"  # where detached jobs keep their folders (see RemoteJob)
LOG_TAIL_BYTES = 65536  # the most of a job's log one status read returns


class RemoteCommandError(RuntimeError):
    """A command ran and exited non-zero (raised only by :meth:`CommandResult.check`)."""

    def __init__(self, result: CommandResult, what: str = ""):
        self.result = result
        detail = (result.stderr.strip() or result.stdout.strip())[-2000:]
        super().__init__(
            f"{what or result.command_line!s} on {result.host}: exit code {result.exit_code}"
            + (f": {detail}" if detail else "")
        )


class RemoteTransportError(ConnectionError):
    """The node could not be reached, or the connection broke while a command ran."""


@dataclass(frozen=True)
class CommandResult:
    host: str
    argv: tuple[str, ...]
    command_line: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self, what: str = "") -> CommandResult:
        if not self.ok:
            raise RemoteCommandError(self, what)
        return self


def build_command_line(argv: Sequence[str], *, sudo_user: str | None = None) -> str:
    """Quote every argument; prefix `sudo -n -u USER --` when asked (never prompts for a password)."""
    if not argv:
        raise ValueError("argv: an empty command cannot be run")
    words = [str(a) for a in argv]
    if sudo_user:
        words = ["sudo", "-n", "-u", sudo_user, "--", *words]
    return shlex.join(words)


def _is_transport_fault(exc: BaseException) -> bool:
    # Authentication and host-key failures are configuration errors: retrying cannot fix them.
    if isinstance(exc, paramiko.AuthenticationException | paramiko.BadHostKeyException):
        return False
    return isinstance(
        exc, socket.timeout | ConnectionError | EOFError | paramiko.SSHException | OSError
    ) and not isinstance(exc, FileNotFoundError | PermissionError)


class RemoteCommandHook(BaseHook):
    """
    Run argv commands on one node.

    :param ssh_conn_id: Airflow SSH connection (login, key, host key policy); ``None`` or
        ``"local"`` runs the command on the worker itself.
    :param host: the node's address; overrides the connection's host.
    :param port: SSH port; overrides the connection's port.
    :param sudo_user: run every command as this user through ``sudo -n``.
    :param connect_attempts: tries to connect before giving up (exponential backoff).
    """

    conn_name_attr = "ssh_conn_id"
    hook_name = "Backup remote command"

    def __init__(
        self,
        ssh_conn_id: str | None = None,
        host: str | None = None,
        port: int | None = None,
        sudo_user: str | None = None,
        connect_attempts: int = 4,
        connect_timeout: int = 10,
        max_backoff: float = 30.0,
    ) -> None:
        super().__init__()
        self.ssh_conn_id = None if ssh_conn_id in (None, "", LOCAL) else ssh_conn_id
        self.host = host
        self.port = port
        self.sudo_user = sudo_user
        self.connect_attempts = max(1, connect_attempts)
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self._client: paramiko.SSHClient | None = None

    @property
    def is_local(self) -> bool:
        return self.ssh_conn_id is None

    @property
    def target(self) -> str:
        return "localhost" if self.is_local else (self.host or self.ssh_hook.remote_host)

    @cached_property
    def ssh_hook(self) -> SSHHook:
        # One try per SSHHook.get_conn call: our tenacity policy owns the retrying.
        return SSHHook(
            ssh_conn_id=self.ssh_conn_id,
            remote_host=self.host or "",
            port=self.port,
            conn_timeout=self.connect_timeout,
            conn_retry_attempts=1,
        )

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(_is_transport_fault),
            stop=stop_after_attempt(self.connect_attempts),
            wait=wait_exponential(multiplier=1, min=min(1.0, self.max_backoff), max=self.max_backoff),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        self.log.warning(
            "Connecting to %s failed (try %d of %d): %s; retrying in %.1fs",
            self.target,
            state.attempt_number,
            self.connect_attempts,
            state.outcome.exception() if state.outcome else "?",
            state.next_action.sleep if state.next_action else 0,
        )

    def get_conn(self) -> paramiko.SSHClient:
        """A connected SSH client, reconnecting (with backoff) when the transport is gone."""
        if self.is_local:
            raise TypeError("a local RemoteCommandHook has no SSH connection")
        if self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return self._client
            self.ssh_hook.client = None
        try:
            for attempt in self._retrying():
                with attempt:
                    self._client = self.ssh_hook.get_conn()
        except Exception as exc:
            if _is_transport_fault(exc):
                raise RemoteTransportError(f"cannot connect to {self.target}: {exc}") from exc
            raise
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            if "ssh_hook" in self.__dict__:
                self.ssh_hook.client = None

    def __enter__(self) -> RemoteCommandHook:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def command_line(self, argv: Sequence[str]) -> str:
        return build_command_line(argv, sudo_user=self.sudo_user)

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        """Run `argv`; `timeout` bounds how long the command may stay silent (SSH) or run (local)."""
        line = self.command_line(argv)
        if self.is_local:
            return self._run_local(argv, line, timeout)
        client = self.get_conn()
        try:
            exit_code, out, err = self.ssh_hook.exec_ssh_client_command(
                client, line, get_pty=False, environment=None, timeout=timeout
            )
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise RemoteTransportError(f"connection to {self.target} broke while running {line}: {exc}") from exc
        except Exception as exc:
            if "timed out" in str(exc):
                self.close()
                raise TimeoutError(f"{line} on {self.target}: no result within {timeout}s") from exc
            raise
        return CommandResult(
            host=self.target,
            argv=tuple(argv),
            command_line=line,
            exit_code=exit_code,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
        )

    def _run_local(self, argv: Sequence[str], line: str, timeout: float | None) -> CommandResult:
        self.log.info("Running command locally: %s", line)
        words = shlex.split(line)  # the same words, sudo prefix included; no shell involved
        try:
            done = subprocess.run(words, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"{line} on localhost: no result within {timeout}s") from exc
        except FileNotFoundError:
            return CommandResult("localhost", tuple(argv), line, 127, "", f"{words[0]}: command not found")
        return CommandResult(
            host="localhost",
            argv=tuple(argv),
            command_line=line,
            exit_code=done.returncode,
            stdout=done.stdout.decode("utf-8", "replace"),
            stderr=done.stderr.decode("utf-8", "replace"),
        )

    # ---- detached jobs (see RemoteJob) ----
    def job_status(self, job: RemoteJob, offset: int = 0, max_bytes: int = LOG_TAIL_BYTES) -> JobStatus:
        result = self.run(job.status_argv(offset, max_bytes), timeout=60).check(f"status of job {job.job_id}")
        return parse_job_status(result.stdout)

    def start_job(self, job: RemoteJob) -> str:
        """Start `job` detached; ``"adopted"`` when an earlier try's job of the same name still
        runs (it is watched, never started twice), else ``"started"``."""
        status = self.job_status(job, max_bytes=0)
        if status.state in ("running", "starting"):
            self.log.info("Job %s still runs on %s (an earlier try's): watching it, not starting another", job.job_id, self.target)
            return "adopted"
        if status.state != "absent":  # an earlier try's job that ended: its folder goes first
            self.run(job.remove_argv(), timeout=600).check(f"removing the old job folder {job.job_dir}")
        self.log.info("Starting job %s on %s: %s", job.job_id, self.target, self.command_line(job.argv))
        self.run(job.start_argv(), timeout=60).check(f"starting job {job.job_id}")
        return "started"

    def kill_job(self, job: RemoteJob) -> None:
        self.log.info("Stopping job %s on %s (its whole process group)", job.job_id, self.target)
        self.run(job.kill_argv(), timeout=60).check(f"stopping job {job.job_id}")

    def job_alive(self, job: RemoteJob) -> bool:
        return self.run(job.alive_argv(), timeout=60).exit_code == 0

    def remove_job(self, job: RemoteJob) -> None:
        self.run(job.remove_argv(), timeout=600).check(f"removing the job folder {job.job_dir}")

    @contextlib.contextmanager
    def sftp(self) -> Iterator[paramiko.SFTPClient]:
        """An SFTP session on the node, for streaming files without a local copy."""
        sftp = self.get_conn().open_sftp()
        try:
            yield sftp
        finally:
            sftp.close()


async def run_remote_async(
    ssh_conn_id: str | None,
    host: str | None,
    argv: Sequence[str],
    *,
    port: int | None = None,
    sudo_user: str | None = None,
    timeout: float | None = 60,
    log: logging.Logger | None = None,
) -> CommandResult:
    """The async twin of :meth:`RemoteCommandHook.run`, for triggers (ssh provider's SSHHookAsync)."""
    from airflow.providers.ssh.hooks.ssh import SSHHookAsync

    line = build_command_line(argv, sudo_user=sudo_user)
    if ssh_conn_id in (None, "", LOCAL):
        import asyncio

        words = shlex.split(line)
        proc = await asyncio.create_subprocess_exec(
            *words, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        return CommandResult(
            "localhost", tuple(argv), line, proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )
    hook = SSHHookAsync(ssh_conn_id=ssh_conn_id, host=host, port=port)
    try:
        exit_code, out, err = await hook.run_command(line, timeout=timeout)
    except (OSError, EOFError) as exc:
        raise RemoteTransportError(f"cannot run {line} on {host}: {exc}") from exc
    except Exception as exc:  # asyncssh raises its own error classes for transport faults
        if type(exc).__module__.startswith("asyncssh"):
            raise RemoteTransportError(f"cannot run {line} on {host}: {exc}") from exc
        raise
    return CommandResult(host or "", tuple(argv), line, exit_code, out, err)


# ---- detached remote jobs ----------------------------------------------------------------------
# A long command (bup save, tar -xf, rm -rf of a store) runs detached on the node, in its own
# session (setsid), with its output and exit code in files of a per-job folder: the ssh provider's
# job wrapper and kill command (airflow.providers.ssh.utils.remote_job). The task that started it
# hands the wait to a trigger (triggers/remote_job.py) and holds no worker slot or SSH channel.

JOB_STATES = ("absent", "starting", "running", "done", "gone")

# `sh -c STATUS sh JOB_DIR OFFSET MAX`: the job's state, the log's size, then (base64) the log from
# OFFSET, at most MAX bytes; once done, the log's last MAX bytes instead. Liveness is read BEFORE
# the exit code: a job that ends between the two reads is then seen done, never "gone". The pid
# file is read once: a job that writes it between two reads was seen "gone" (no pid, then a pid).
_JOB_STATUS_SCRIPT = r"""
d=$1; off=$2; max=$3
if [ ! -d "$d" ]; then echo absent; echo 0; exit 0; fi
p=$(cat "$d/pid" 2>/dev/null) || p=""
alive=0
if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then alive=1; fi
if [ -s "$d/exit_code" ]; then state="done $(cat "$d/exit_code")"
elif [ $alive = 1 ]; then state=running
elif [ -n "$p" ]; then state=gone
else state=starting
fi
echo "$state"
stat -c%s "$d/stdout.log" 2>/dev/null || echo 0
case $state in
  done*) tail -c "$max" "$d/stdout.log" 2>/dev/null | base64 -w0 ;;
  *) tail -c +"$((off + 1))" "$d/stdout.log" 2>/dev/null | head -c "$max" | base64 -w0 ;;
esac
""".strip()

# Is anything of the job's process group still alive? (pid file holds the group's id)
_JOB_ALIVE_SCRIPT = r"""
p=$(cat "$1/pid" 2>/dev/null) || exit 1
[ "$p" -gt 1 ] 2>/dev/null || exit 1
kill -0 -"$p" 2>/dev/null
""".strip()


@dataclass(frozen=True)
class JobStatus:
    state: str  # one of JOB_STATES
    exit_code: int | None
    log_size: int
    log: str  # the log from the asked offset (running) or its tail (done)
    log_bytes: int  # how many bytes of the log `log` decodes (the next offset is offset + log_bytes)


@dataclass(frozen=True)
class RemoteJob:
    """One detached command on one node; the folder is named from the task, the node and the argv.

    The name leaves the try number out on purpose: a retry of the task finds the job a previous
    try left running and waits for it instead of starting a second ``bup save`` on the same repo.
    The hash of node, user and argv keeps two different commands (or test runs) apart.
    """

    job_id: str
    argv: tuple[str, ...]
    base_dir: str = JOB_BASE_DIR

    @classmethod
    def named(
        cls, *, dag_id: str, task_id: str, run_id: str, map_index: int, step: str, argv: Sequence[str],
        target: str, sudo_user: str | None = None, base_dir: str = JOB_BASE_DIR,
    ) -> RemoteJob:
        words = tuple(str(a) for a in argv)
        digest = hashlib.sha256(json.dumps([target, sudo_user, words]).encode()).hexdigest()[:12]

        def clean(value: Any) -> str:
            return re.sub(r"[^A-Za-z0-9]", "_", str(value))[:50]

        job_id = "_".join(["ab", clean(dag_id), clean(task_id), clean(run_id), f"m{map_index}", clean(step), digest])
        return cls(job_id=job_id, argv=words, base_dir=base_dir)

    @property
    def paths(self):
        from airflow.providers.ssh.utils.remote_job import RemoteJobPaths

        return RemoteJobPaths(job_id=self.job_id, remote_os="posix", base_dir=self.base_dir)

    @property
    def job_dir(self) -> str:
        return self.paths.job_dir

    def start_argv(self) -> list[str]:
        """Start the job detached (the provider's wrapper; argv quoted once more for its script)."""
        from airflow.providers.ssh.utils.remote_job import build_posix_wrapper_command

        return ["bash", "-c", build_posix_wrapper_command(shlex.join(self.argv), self.paths)]

    def status_argv(self, offset: int = 0, max_bytes: int = LOG_TAIL_BYTES) -> list[str]:
        return ["sh", "-c", _JOB_STATUS_SCRIPT, "sh", self.job_dir, str(int(offset)), str(int(max_bytes))]

    def kill_argv(self) -> list[str]:
        """SIGTERM to the job's whole process group (the provider's kill: refuses a pid <= 1)."""
        from airflow.providers.ssh.utils.remote_job import build_posix_kill_command

        return ["sh", "-c", build_posix_kill_command(self.paths.pid_file)]

    def alive_argv(self) -> list[str]:
        """Exits 0 while any process of the job's group lives."""
        return ["sh", "-c", _JOB_ALIVE_SCRIPT, "sh", self.job_dir]

    def remove_argv(self) -> list[str]:
        if not self.job_dir.startswith(self.base_dir.rstrip("/") + "/") or "/../" in f"{self.job_dir}/":
            raise ValueError(f"job folder {self.job_dir!r} is not under {self.base_dir!r}")
        return ["rm", "-rf", "--", self.job_dir]

    def as_result(self, host: str, exit_code: int, log: str, *, sudo_user: str | None = None) -> CommandResult:
        """The finished job as a :class:`CommandResult`; its stdout and stderr are both the job's
        log (the wrapper writes them to one file), so a parser of either reads the same text."""
        return CommandResult(host, self.argv, build_command_line(self.argv, sudo_user=sudo_user), exit_code, log, log)


def parse_job_status(stdout: str) -> JobStatus:
    lines = stdout.split("\n", 2)
    state, _, code = lines[0].strip().partition(" ")
    if len(lines) < 2 or state not in JOB_STATES:
        raise ValueError(f"job status: unreadable answer {stdout[:200]!r}")
    raw = base64.b64decode(lines[2].strip()) if len(lines) > 2 and lines[2].strip() else b""
    return JobStatus(
        state=state,
        exit_code=int(code) if state == "done" and code.strip().lstrip("-").isdigit() else None,
        log_size=int(lines[1].strip() or 0),
        log=raw.decode("utf-8", "replace"),
        log_bytes=len(raw),
    )
