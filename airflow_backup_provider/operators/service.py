"""Stop or start a service on a node with the command the clusters file gives (interim minimal version).

The generic service operators come from the riak branch; this minimal one keeps the devicedb
restore working until they are merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_backup_provider.hooks.remote import RemoteCommandHook
from airflow_backup_provider.operators.report import record_outcome


class ServiceCommandOperator(BaseOperator):
    """Run one service command (argv) on a node over SSH; a non-zero exit fails the task."""

    template_fields: Sequence[str] = ("command", "host")
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.command = list(command)
        self.host = host
        self.port = port
        self.ssh_conn_id = ssh_conn_id
        self.sudo_user = sudo_user
        self.command_timeout = command_timeout

    def execute(self, context: Any) -> dict[str, Any]:
        with RemoteCommandHook(ssh_conn_id=self.ssh_conn_id, host=self.host, port=self.port, sudo_user=self.sudo_user) as hook:
            result = hook.run(self.command, timeout=self.command_timeout).check()
        record_outcome(context, status="done", node=self.host, detail=result.command_line)
        return {"host": self.host, "command": result.command_line, "stdout": result.stdout[-2000:]}
