"""Watch a detached remote job (:class:`~airflow_backup_provider.hooks.remote.RemoteJob`) in the triggerer.

Modeled on the ssh provider's ``SSHRemoteJobTrigger``, but on our
:func:`~airflow_backup_provider.hooks.remote.run_remote_async`: it takes the node's host and port
override, ``sudo_user`` and ``"local"`` like every other remote command of the provider, and fires
the one event format of :mod:`airflow_backup_provider.triggers.events`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_backup_provider.hooks.remote import (
    JOB_BASE_DIR,
    LOCAL,
    CommandResult,
    RemoteJob,
    RemoteTransportError,
    parse_job_status,
    run_remote_async,
)
from airflow_backup_provider.triggers.events import ERROR, SUCCESS, event

TAIL_CHARS = 2000  # how much of the log an error message quotes


class RemoteJobTrigger(BaseTrigger):
    """
    Poll a detached job's state (one short command per poll) until it ends; stream its log.

    Fires ``success`` with ``exit_code`` and ``log_tail`` (the log's last 64 KiB) when the job
    wrote its exit code, whatever the code: the operator judges it as it judged the blocking
    command. Fires ``error`` when the job ended without one (killed), its folder vanished, the
    node stayed unreachable for ``max_reconnect_attempts`` polls in a row, or ``deadline`` passed
    (the job is then stopped). A user's kill (mark failed, clear) stops the job (:meth:`on_kill`).

    :param deadline: epoch seconds after which the job is stopped and the wait fails.
    :param carry: JSON-able data the event hands back to the operator unchanged (what it knew
        before deferring: the defer ``kwargs`` do not survive every way a task is resumed).
    """

    def __init__(
        self,
        *,
        ssh_conn_id: str | None,
        host: str | None,
        job_id: str,
        argv: Sequence[str],
        port: int | None = None,
        sudo_user: str | None = None,
        base_dir: str = JOB_BASE_DIR,
        poll_interval: float = 10.0,
        log_offset: int = 0,
        deadline: float | None = None,
        max_reconnect_attempts: int = 5,
        max_starting_polls: int = 20,
        carry: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.ssh_conn_id = ssh_conn_id or LOCAL
        self.host = host
        self.port = port
        self.sudo_user = sudo_user
        self.job_id = job_id
        self.argv = [str(a) for a in argv]
        self.base_dir = base_dir
        self.poll_interval = poll_interval
        self.log_offset = log_offset
        self.deadline = deadline
        self.max_reconnect_attempts = max_reconnect_attempts
        self.max_starting_polls = max_starting_polls
        self.carry = dict(carry or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ssh_conn_id": self.ssh_conn_id,
                "host": self.host,
                "job_id": self.job_id,
                "argv": self.argv,
                "port": self.port,
                "sudo_user": self.sudo_user,
                "base_dir": self.base_dir,
                "poll_interval": self.poll_interval,
                "log_offset": self.log_offset,
                "deadline": self.deadline,
                "max_reconnect_attempts": self.max_reconnect_attempts,
                "max_starting_polls": self.max_starting_polls,
                "carry": self.carry,
            },
        )

    @property
    def job(self) -> RemoteJob:
        return RemoteJob(job_id=self.job_id, argv=tuple(self.argv), base_dir=self.base_dir)

    @property
    def where(self) -> str:
        return "localhost" if self.ssh_conn_id == LOCAL else (self.host or self.ssh_conn_id)

    async def _run(self, argv: Sequence[str]) -> CommandResult:
        return await run_remote_async(
            self.ssh_conn_id, self.host, argv, port=self.port, sudo_user=self.sudo_user, timeout=60, log=self.log
        )

    def _event(self, status: str, message: str, state: str, **data: Any) -> TriggerEvent:
        return event(
            status, message, job_id=self.job_id, host=self.where, argv=self.argv, state=state,
            log_offset=self.log_offset, carry=self.carry, **data,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        job = self.job
        failures = starting = polls = 0
        seen = ""  # the end of what was logged, for an error message
        while True:
            if self.deadline is not None and time.time() > self.deadline:
                try:
                    await self._run(job.kill_argv())
                except Exception as exc:  # the error below says what matters; the kill is best effort
                    self.log.warning("could not stop job %s on %s: %s", self.job_id, self.where, exc)
                yield self._event(ERROR, f"job {self.job_id} on {self.where}: no result by its deadline; stopped", "killed")
                return
            try:
                status = parse_job_status((await self._run(job.status_argv(self.log_offset))).check().stdout)
            except (RemoteTransportError, TimeoutError) as exc:
                failures += 1
                if failures > self.max_reconnect_attempts:
                    yield self._event(
                        ERROR, f"job {self.job_id}: {self.where} unreachable for {failures} polls in a row: {exc}",
                        "unknown",
                    )
                    return
                self.log.warning("polling job %s on %s failed (%d of %d): %s", self.job_id, self.where, failures, self.max_reconnect_attempts, exc)
                await asyncio.sleep(min(self.poll_interval * 2**failures, 300))
                continue
            failures = 0
            if status.state == "done":
                unseen = status.log_size - self.log_offset  # what the polls did not stream yet
                if unseen > 0:
                    for line in status.log.encode()[-unseen:].decode("utf-8", "replace").splitlines():
                        self.log.info("[%s] %s", self.where, line)
                self.log_offset = status.log_size
                if status.exit_code is None:
                    yield self._event(ERROR, f"job {self.job_id} on {self.where}: unreadable exit code", "done")
                    return
                yield self._event(
                    SUCCESS, f"job {self.job_id} on {self.where} exited with {status.exit_code}", "done",
                    exit_code=status.exit_code, log_tail=status.log,
                )
                return
            if status.log:
                for line in status.log.splitlines():
                    self.log.info("[%s] %s", self.where, line)
                seen = (seen + status.log)[-TAIL_CHARS:]
                self.log_offset += status.log_bytes
            if status.state == "gone":
                yield self._event(
                    ERROR, f"job {self.job_id} on {self.where} ended without an exit code (killed?); its log ends: {seen}",
                    "gone",
                )
                return
            if status.state == "absent":
                yield self._event(ERROR, f"job {self.job_id}: its folder {job.job_dir} is gone from {self.where}", "absent")
                return
            starting = starting + 1 if status.state == "starting" else 0
            if starting > self.max_starting_polls:
                yield self._event(ERROR, f"job {self.job_id} on {self.where} never started (no pid file)", "starting")
                return
            polls += 1
            # quick first polls (a short command ends in a second), then every poll_interval
            await asyncio.sleep(min(self.poll_interval, 0.25 * 2**polls))

    async def on_kill(self) -> None:
        """The user killed the deferred task: stop the job's whole process group."""
        self.log.info("stopping job %s on %s", self.job_id, self.where)
        await self._run(self.job.kill_argv())
