"""Alert mails, sent through the SMTP provider, used as task callbacks and by the report task."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier


def _node_of(task: Any) -> str:
    """The node a task works on: the operator's `node`/`host`/`target`, else its task group (one per node)."""
    for attribute in ("node", "host", "node_name", "target"):  # target: the EBS volume or instance
        value = getattr(task, attribute, None)
        if isinstance(value, str) and value:
            return value
    group = getattr(task, "task_group", None)
    group_id = getattr(group, "group_id", None)
    return group_id or "-"


def failure_fields(context: dict[str, Any]) -> dict[str, str]:
    """What an on-call operator needs to act: where it failed, which try, why, and the log."""
    ti = context.get("ti") or context.get("task_instance")
    task = context.get("task") or getattr(ti, "task", None)
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    error = context.get("exception") or context.get("reason") or "unknown error"
    map_index = getattr(ti, "map_index", -1)
    task_id = getattr(ti, "task_id", "?") + (f"[{map_index}]" if map_index not in (-1, None) else "")
    return {
        "dag": str(dag_id),
        "task": task_id,
        "node": _node_of(task),
        "try": str(getattr(ti, "try_number", "?")),
        "max_tries": str((getattr(task, "retries", 0) or 0) + 1),
        "run_id": str(context.get("run_id") or getattr(ti, "run_id", "?")),
        "logical_date": str(context.get("logical_date") or "-"),
        "error": f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error),
        "log_url": str(getattr(ti, "log_url", "") or "-"),
    }


def _table(rows: Iterable[Sequence[Any]]) -> str:
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table border="1" cellpadding="4" style="border-collapse:collapse">{cells}</table>'


class BackupAlertNotifier(SmtpNotifier):
    """
    Mail the on-call addresses when a task fails (or is up for retry).

    The subject says what and where; the body names DAG, task, node, try number, error and the
    log URL. Rendering is done here in Python rather than Jinja so that an error text containing
    `{{` cannot break the mail.
    """

    template_fields = ()

    def __init__(
        self,
        to: str | Sequence[str],
        *,
        from_email: str = "airflow-backup@localhost",
        smtp_conn_id: str = "smtp_default",
        event: str = "failed",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            to=list(to) if not isinstance(to, str) else to,
            from_email=from_email,
            smtp_conn_id=smtp_conn_id,
            subject="-",
            html_content="-",
            **kwargs,
        )
        self.event = event

    def render_alert(self, context: dict[str, Any]) -> tuple[str, str]:
        fields = failure_fields(context)
        subject = (
            f"[backup {self.event}] {fields['dag']}.{fields['task']} on {fields['node']} "
            f"(try {fields['try']}/{fields['max_tries']})"
        )
        rows = [(name, value) for name, value in fields.items() if name != "max_tries"]
        body = (
            f"<p>Backup task <b>{html.escape(self.event)}</b>.</p>"
            + _table(rows)
            + f'<p><a href="{html.escape(fields["log_url"])}">Open the log</a></p>'
        )
        return subject, body

    def notify(self, context: dict[str, Any]) -> None:
        self.subject, self.html_content = self.render_alert(context)
        super().notify(context)


def build_alert_callbacks(
    alert_emails: Sequence[str], *, from_email: str, smtp_conn_id: str, on_retry: bool
) -> dict[str, Any]:
    """default_args entries: a failure notifier, and a retry notifier when the file asks for one."""
    if not alert_emails:
        return {}
    callbacks: dict[str, Any] = {
        "on_failure_callback": [
            BackupAlertNotifier(alert_emails, from_email=from_email, smtp_conn_id=smtp_conn_id)
        ]
    }
    if on_retry:
        callbacks["on_retry_callback"] = [
            BackupAlertNotifier(
                alert_emails, from_email=from_email, smtp_conn_id=smtp_conn_id, event="up for retry"
            )
        ]
    return callbacks


def send_report_mail(
    to: Sequence[str],
    *,
    subject: str,
    html_body: str,
    from_email: str,
    smtp_conn_id: str,
) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=smtp_conn_id) as hook:
        hook.send_email_smtp(
            to=list(to), subject=subject, html_content=html_body, from_email=from_email
        )


__all__ = ["BackupAlertNotifier", "build_alert_callbacks", "failure_fields", "send_report_mail"]
