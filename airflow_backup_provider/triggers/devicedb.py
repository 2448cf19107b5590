"""Wait for a devicedb cluster snapshot in the triggerer, holding no worker slot."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_backup_provider.config.devicedb import DevicedbNodeSpec
from airflow_backup_provider.hooks.devicedb import DevicedbAsyncHook, DevicedbError, hook_for_node
from airflow_backup_provider.hooks.remote import RemoteTransportError
from airflow_backup_provider.stores import devicedb as ddb
from airflow_backup_provider.triggers.events import ERROR, SUCCESS, TIMEOUT, event


class DevicedbSnapshotTrigger(BaseTrigger):
    """
    Poll ``GET /snapshot/{uuid}`` on every node (:class:`DevicedbAsyncHook`, directly or through an
    SSH tunnel) until the verdict is ``completed`` or ``failed``, judged as the sensor's poke does.

    Events (``triggers/events.py``), each with ``uuid``, ``state`` and ``statuses`` (label -> status):
    ``success`` when completed; ``error`` with ``final`` when the snapshot failed (a retry cannot
    mend it); ``error`` when a tunnel cannot be opened (``state`` ``unreachable``, retried);
    ``timeout`` at ``deadline`` (unix time).

    :param nodes: the nodes (:class:`DevicedbNodeSpec`, or their records).
    :param triggered_at: ISO time the snapshot was started (the missing grace counts from it).
    :param missing_grace: seconds a node may answer ``missing`` (or not at all).
    """

    def __init__(
        self,
        *,
        nodes: Sequence[DevicedbNodeSpec | Mapping[str, Any]],
        uuid: str,
        triggered_at: str,
        missing_grace: float,
        poll_interval: float = 30.0,
        http_timeout: float = 30.0,
        ssh_tunnel: bool = False,
        ssh_conn_id: str | None = None,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        # from a sensor: specs; from the triggerer: the records serialize() wrote
        self.nodes = [n if isinstance(n, DevicedbNodeSpec) else DevicedbNodeSpec.from_record(n) for n in nodes]
        self.uuid = ddb.check_uuid(uuid)
        self.triggered_at = triggered_at
        self.missing_grace = missing_grace
        self.poll_interval = poll_interval
        self.http_timeout = http_timeout
        self.ssh_tunnel = ssh_tunnel
        self.ssh_conn_id = ssh_conn_id
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "nodes": [n.as_record() for n in self.nodes],
                "uuid": self.uuid,
                "triggered_at": self.triggered_at,
                "missing_grace": self.missing_grace,
                "poll_interval": self.poll_interval,
                "http_timeout": self.http_timeout,
                "ssh_tunnel": self.ssh_tunnel,
                "ssh_conn_id": self.ssh_conn_id,
                "deadline": self.deadline,
            },
        )

    def _event(self, status: str, reason: str, state: str, statuses: dict[str, str], **kwargs: Any) -> TriggerEvent:
        message = f"cluster snapshot {self.uuid}: {reason}; statuses {statuses}"
        return event(status, message, uuid=self.uuid, state=state, statuses=statuses, **kwargs)

    @staticmethod
    async def _status(hook: DevicedbAsyncHook, uuid: str) -> tuple[str, str | None]:
        try:
            return (await hook.snapshot_status(uuid)).status, None
        except DevicedbError as exc:
            return ddb.status_error_kind(exc.http_status, exc.detail), str(exc)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        triggered_at = datetime.fromisoformat(self.triggered_at)
        labels = [spec.label for spec in self.nodes]
        statuses: dict[str, str] = {}
        async with contextlib.AsyncExitStack() as hooks:
            nodes = [
                await hooks.enter_async_context(
                    hook_for_node(
                        spec,
                        timeout=self.http_timeout,
                        ssh_tunnel=self.ssh_tunnel,
                        ssh_conn_id=self.ssh_conn_id,
                        hook_class=DevicedbAsyncHook,
                    )
                )
                for spec in self.nodes
            ]
            while True:
                answers = await asyncio.gather(*(self._status(h, self.uuid) for h in nodes), return_exceptions=True)
                tunnels = [a for a in answers if isinstance(a, RemoteTransportError)]
                if tunnels:
                    yield self._event(ERROR, "; ".join(map(str, tunnels)), ddb.UNREACHABLE, statuses)
                    return
                for answer in answers:
                    if isinstance(answer, BaseException):
                        raise answer
                statuses = {label: status for label, (status, _) in zip(labels, answers, strict=True)}
                errors = {label: error for label, (_, error) in zip(labels, answers, strict=True) if error}
                verdict = ddb.judge_snapshot(
                    statuses,
                    triggered_at=triggered_at,
                    now=datetime.now(UTC),
                    missing_grace=timedelta(seconds=self.missing_grace),
                    errors=errors,
                )
                self.log.info("snapshot %s: %s (%s)", self.uuid, verdict.state, verdict.reason)
                if verdict.state == ddb.COMPLETED:
                    yield self._event(SUCCESS, verdict.reason, verdict.state, statuses)
                    return
                if verdict.state == ddb.FAILED:
                    yield self._event(ERROR, verdict.reason, verdict.state, statuses, final=True)
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    yield self._event(TIMEOUT, f"still {verdict.reason}", verdict.state, statuses)
                    return
                wait = self.poll_interval if self.deadline is None else min(self.poll_interval, self.deadline - time.time())
                await asyncio.sleep(max(0.0, wait))
