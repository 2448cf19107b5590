"""Alert mails, sent through the SMTP provider, used as task callbacks and by the report task."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk.exceptions import AirflowException

# What sending a mail raises when the server or its connection is not there: smtplib's errors
# are OSErrors (ConnectionRefusedError, timeouts, SMTPException), and SmtpHook turns a missing
# connection or a dropped server into AirflowException.
MAIL_ERRORS: tuple[type[BaseException], ...] = (OSError, AirflowException)

NODE_ATTRIBUTES = ("node", "host", "node_name", "target")  # target: the EBS volume or instance, a restore's node
NODE_KEYS = ("label", "host", "name")  # a node given as a dict (cassandra, devicedb)


def _node_name(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return next((str(value[k]) for k in NODE_KEYS if isinstance(value.get(k), str) and value[k]), "")
    return ""


def _node_of(task: Any, ti: Any = None) -> str:
    """The node a task works on: the operator's `node`/`host`/`target` (a name, or a dict naming it;
    a TaskFlow task's op kwarg), else a mapped task's rendered map index (the builders render the
    node there), else its task group (one per node)."""
    op_kwargs = getattr(task, "op_kwargs", None)
    for attribute in NODE_ATTRIBUTES:
        name = _node_name(getattr(task, attribute, None))
        if not name and isinstance(op_kwargs, dict):
            name = _node_name(op_kwargs.get(attribute))
        if name:
            return name
    rendered = getattr(ti, "rendered_map_index", None)
    if isinstance(rendered, str) and rendered:
        return rendered
    group_id = getattr(getattr(task, "task_group", None), "group_id", None)
    if group_id:
        return group_id
    map_index = getattr(ti, "map_index", -1)
    return f"map index {map_index}" if isinstance(map_index, int) and map_index >= 0 else "-"


def mail_failure_text(exc: BaseException, *, what: str, to: Sequence[str] | str, smtp_conn_id: str) -> str:
    """One line for the log: which mail, to whom, through which connection, and the SMTP error."""
    recipients = to if isinstance(to, str) else ", ".join(to)
    return f"{what} to {recipients} NOT sent through SMTP connection {smtp_conn_id!r}: {type(exc).__name__}: {exc}"


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
        "node": _node_of(task, ti),
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
        try:
            super().notify(context)
        except MAIL_ERRORS as exc:
            # Raised, it would only add a traceback from the callback runner under the task's own
            # error; the alert that could not go out, and why, is the one line worth reading.
            self.log.error(
                "%s", mail_failure_text(exc, what=f"alert '{self.subject}'", to=self.to, smtp_conn_id=self.smtp_conn_id)
            )


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


__all__ = [
    "MAIL_ERRORS",
    "BackupAlertNotifier",
    "build_alert_callbacks",
    "failure_fields",
    "mail_failure_text",
    "send_report_mail",
]
