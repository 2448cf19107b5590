"""Long remote commands as detached jobs: start (or adopt), hand the wait to the trigger, read the result.

An operator mixes in :class:`RemoteJobMixin` and, where it ran ``hook.run(argv, timeout=...)`` for
a command that can take hours, calls :meth:`RemoteJobMixin.run_remote_job` naming the method that
goes on with the result. That method calls :meth:`RemoteJobMixin.remote_job_result` to get the
same :class:`~airflow_backup_provider.hooks.remote.CommandResult` the blocking call gave.

``deferrable=True``: the task defers to
:class:`~airflow_backup_provider.triggers.remote_job.RemoteJobTrigger` and holds no worker slot.
``deferrable=False``: the same trigger runs in the worker until it fires (one mechanism, one
event). Either way the command itself runs detached on the node, so ``on_kill`` (and a user's kill
of the deferred task, through the trigger's ``on_kill``) stops its whole process group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_backup_provider.hooks.remote import CommandResult, RemoteCommandHook, RemoteJob
from airflow_backup_provider.triggers.events import TriggerEventError, read_event
from airflow_backup_provider.triggers.remote_job import RemoteJobTrigger

# a job that ended (or never started) leaves nothing to adopt: its folder goes with the result
_ENDED_STATES = ("done", "gone", "starting", "killed")


async def _first_event(trigger: RemoteJobTrigger) -> dict[str, Any]:
    async for fired in trigger.run():
        return fired.payload
    raise RuntimeError(f"trigger for job {trigger.job_id} ended without an event")


class RemoteJobMixin:
    """For operators (with ``deferrable`` and a ``log``) whose long commands run as detached jobs."""

    deferrable: bool
    job_poll_interval: float = 10.0

    def remote_job(self, context: Any, hook: RemoteCommandHook, argv: Sequence[str], *, step: str) -> RemoteJob:
        """The job `argv` of this task instance (the same name on every try: see RemoteJob)."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", None)
        return RemoteJob.named(
            dag_id=getattr(ti, "dag_id", None) or self.dag_id,
            task_id=getattr(ti, "task_id", None) or self.task_id,
            run_id=getattr(ti, "run_id", None) or context.get("run_id") or str(context.get("logical_date")),
            map_index=-1 if map_index is None else map_index,
            step=step, argv=argv, target=hook.target, sudo_user=hook.sudo_user,
        )

    def start_remote_job(self, context: Any, hook: RemoteCommandHook, argv: Sequence[str], *, step: str) -> RemoteJob:
        """Start `argv` detached, or adopt the same job an earlier try left running."""
        job = self.remote_job(context, hook, argv, step=step)
        hook.start_job(job)
        self._remote_job = (hook, job)
        return job

    def wait_remote_job(
        self,
        context: Any,
        hook: RemoteCommandHook,
        job: RemoteJob,
        *,
        method_name: str,
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Go on in ``method_name(context, event=..., **kwargs)`` when `job` ends: deferred, or
        (``deferrable=False``) with the same trigger run here. `kwargs` must be JSON-able."""
        trigger = RemoteJobTrigger(
            ssh_conn_id=hook.ssh_conn_id,
            host=hook.host,
            port=hook.port,
            sudo_user=hook.sudo_user,
            job_id=job.job_id,
            argv=job.argv,
            base_dir=job.base_dir,
            poll_interval=self.job_poll_interval,
            deadline=time.time() + timeout if timeout else None,
            carry={"next_method": method_name, "kwargs": dict(kwargs or {})},
        )
        if self.deferrable:
            self.defer(trigger=trigger, method_name="remote_job_ended")
        return self.remote_job_ended(context, asyncio.run(_first_event(trigger)))

    def remote_job_ended(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Where the trigger's event lands: on to the method named when the wait began."""
        carry = (event or {}).get("carry") if isinstance(event, Mapping) else None
        if not isinstance(carry, Mapping) or not isinstance(carry.get("next_method"), str):
            read_event(event, what=f"remote job of {self.task_id}")  # raises for an error event
            raise TriggerEventError(f"remote job of {self.task_id}: event without its carry: {event!r}")
        return getattr(self, carry["next_method"])(context, event=event, **dict(carry.get("kwargs") or {}))

    def run_remote_job(
        self,
        context: Any,
        hook: RemoteCommandHook,
        argv: Sequence[str],
        *,
        step: str,
        method_name: str,
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """:meth:`start_remote_job` then :meth:`wait_remote_job`."""
        job = self.start_remote_job(context, hook, argv, step=step)
        return self.wait_remote_job(context, hook, job, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def remote_job_result(self, hook: RemoteCommandHook, event: Mapping[str, Any] | None, *, what: str) -> CommandResult:
        """The ended job as the blocking call's result (its log as stdout and stderr); raises the
        trigger's error. The job's folder is removed once nothing runs in it."""
        self._remote_job = None
        job = RemoteJob(
            job_id=str((event or {}).get("job_id", "")), argv=tuple((event or {}).get("argv", ())),
        )
        if isinstance(event, Mapping) and event.get("state") in _ENDED_STATES and job.job_id:
            try:
                hook.remove_job(job)
            except Exception as exc:  # a folder left in /tmp must not fail a finished command
                self.log.warning("could not remove the job folder %s: %s", job.job_dir, exc)
        data = read_event(event, what=what, requires=("exit_code", "log_tail", "host", "argv"))
        return job.as_result(data["host"], int(data["exit_code"]), str(data["log_tail"]), sudo_user=hook.sudo_user)

    def on_kill(self) -> None:
        """The task was killed while its job ran in this worker: stop the job's process group."""
        running = getattr(self, "_remote_job", None)
        if running is None:
            return
        hook, job = running
        try:
            with RemoteCommandHook(
                ssh_conn_id=hook.ssh_conn_id, host=hook.host, port=hook.port, sudo_user=hook.sudo_user
            ) as killer:  # its own connection: the task's may be busy in another thread
                killer.kill_job(job)
        except Exception as exc:
            self.log.error("could not stop job %s on %s: %s", job.job_id, hook.target, exc)
