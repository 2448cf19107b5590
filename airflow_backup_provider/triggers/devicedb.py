"""Wait for a devicedb cluster snapshot in the triggerer, holding no worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_backup_provider.stores import devicedb as ddb


class DevicedbSnapshotTrigger(BaseTrigger):
    """
    Poll ``GET /snapshot/{uuid}`` on every node until the verdict is ``completed`` or ``failed``.

    :param nodes: ``[[label, base_url], ...]``.
    :param triggered_at: ISO time the snapshot was started (the missing grace counts from it).
    :param missing_grace: seconds a node may answer ``missing`` (or not at all).
    """

    def __init__(
        self,
        *,
        nodes: list[list[str]],
        uuid: str,
        triggered_at: str,
        missing_grace: float,
        poll_interval: float = 30.0,
        http_timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self.nodes = [list(n) for n in nodes]
        self.uuid = ddb.check_uuid(uuid)
        self.triggered_at = triggered_at
        self.missing_grace = missing_grace
        self.poll_interval = poll_interval
        self.http_timeout = http_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "nodes": self.nodes,
                "uuid": self.uuid,
                "triggered_at": self.triggered_at,
                "missing_grace": self.missing_grace,
                "poll_interval": self.poll_interval,
                "http_timeout": self.http_timeout,
            },
        )

    async def _status(self, session: aiohttp.ClientSession, base: str) -> tuple[str, str | None]:
        try:
            async with session.get(base + ddb.status_path(self.uuid)) as response:
                body = await response.read()
                if response.status != 200:
                    return ddb.status_error_kind(response.status, body), f"HTTP {response.status}: {ddb.parse_error_body(body)}"
                return ddb.parse_snapshot(body, expected_uuid=self.uuid).status, None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return ddb.UNREACHABLE, f"{type(exc).__name__}: {exc}"
        except ddb.DevicedbResponseError as exc:
            return "unparseable", str(exc)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        triggered_at = datetime.fromisoformat(self.triggered_at)
        timeout = aiohttp.ClientTimeout(total=self.http_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                answers = await asyncio.gather(*(self._status(session, base) for _, base in self.nodes))
                statuses = {label: status for (label, _), (status, _) in zip(self.nodes, answers, strict=True)}
                errors = {label: error for (label, _), (_, error) in zip(self.nodes, answers, strict=True) if error}
                verdict = ddb.judge_snapshot(
                    statuses,
                    triggered_at=triggered_at,
                    now=datetime.now(UTC),
                    missing_grace=timedelta(seconds=self.missing_grace),
                    errors=errors,
                )
                self.log.info("snapshot %s: %s (%s)", self.uuid, verdict.state, verdict.reason)
                if verdict.state != "waiting":
                    yield TriggerEvent(
                        {"state": verdict.state, "reason": verdict.reason, "statuses": statuses, "uuid": self.uuid}
                    )
                    return
                await asyncio.sleep(self.poll_interval)
