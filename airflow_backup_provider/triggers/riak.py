"""Async wait for a Riak health gate: poll ``riak-admin transfers`` over SSH (SSHHookAsync)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_backup_provider.hooks.remote import RemoteTransportError, run_remote_async
from airflow_backup_provider.stores import riak
from airflow_backup_provider.triggers.events import ERROR, SUCCESS, TIMEOUT, event


class RiakTransfersTrigger(BaseTrigger):
    """
    Yield ``success`` once the gate opens, ``timeout`` at ``deadline`` (unix time), or ``error``
    after ``max_transport_failures`` polls in a row could not reach the node.

    A dropped connection is not a verdict: the next poll reconnects.
    """

    def __init__(
        self,
        *,
        host: str,
        gate: str,
        deadline: float,
        ssh_conn_id: str | None = "backup_ssh",
        port: int | None = None,
        sudo_user: str | None = None,
        node: str | None = None,
        poll_interval: float = 30.0,
        command_timeout: float = 60.0,
        max_transport_failures: int = 5,
    ) -> None:
        super().__init__()
        self.host = host
        self.gate = riak.check_gate(gate)
        self.deadline = float(deadline)
        self.ssh_conn_id = ssh_conn_id
        self.port = port
        self.sudo_user = sudo_user
        self.node = node or host
        self.poll_interval = float(poll_interval)
        self.command_timeout = float(command_timeout)
        self.max_transport_failures = max(1, int(max_transport_failures))

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "host": self.host,
                "gate": self.gate,
                "deadline": self.deadline,
                "ssh_conn_id": self.ssh_conn_id,
                "port": self.port,
                "sudo_user": self.sudo_user,
                "node": self.node,
                "poll_interval": self.poll_interval,
                "command_timeout": self.command_timeout,
                "max_transport_failures": self.max_transport_failures,
            },
        )

    async def poll_once(self) -> list[str]:
        result = await run_remote_async(
            self.ssh_conn_id,
            self.host,
            riak.transfers_argv(),
            port=self.port,
            sudo_user=self.sudo_user,
            timeout=self.command_timeout,
        )
        return riak.gate_problems(self.gate, result.stdout, result.exit_code, result.stderr)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        failures = 0
        last = "no answer yet"
        polls = 0
        while True:
            polls += 1
            try:
                problems = await self.poll_once()
            except (RemoteTransportError, TimeoutError, OSError) as exc:
                failures += 1
                last = f"cannot reach {self.host}: {exc}"
                self.log.warning(
                    "%s gate for %s: %s (%d of %d in a row)",
                    self.gate, self.node, last, failures, self.max_transport_failures,
                )
                if failures >= self.max_transport_failures:
                    yield event(ERROR, last, polls=polls)
                    return
            else:
                failures = 0
                if not problems:
                    self.log.info("%s gate for %s is open after %d poll(s)", self.gate, self.node, polls)
                    yield event(SUCCESS, "gate open", polls=polls)
                    return
                last = "; ".join(problems)
                for problem in problems:
                    self.log.info("%s gate for %s: %s", self.gate, self.node, problem)
            if time.time() >= self.deadline:
                yield event(TIMEOUT, last, polls=polls)
                return
            await asyncio.sleep(min(self.poll_interval, max(0.0, self.deadline - time.time())))

