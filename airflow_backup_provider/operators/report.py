"""The `report` task that ends every backup DAG, and `mail_report`, the summary mail before it.

Operators record what they produced with :func:`record_outcome` (an XCom under
:data:`OUTCOME_KEY`). Once every task is done (trigger rule ``all_done``), ``mail_report`` mails
a summary of what was backed up, skipped and failed; then ``report`` fails the run if any task
failed, so that a failure on node 1 is never hidden by nodes 2 and 3 succeeding.

Why two tasks, in that order: the run's state is the state of its leaf tasks, and it must say
what happened to the data. ``report`` is the only leaf and judges the backup tasks alone; a mail
that cannot be sent (SMTP down) fails ``mail_report`` only, which Airflow retries, alerts and
shows red in the grid, and which the report names in its log, while a good backup's run stays
green. A bad backup fails ``report``, so its run fails whether the mail went out or not.
(A teardown after the report would keep the run green too, Airflow leaving teardowns out of the
run's state, but a teardown with no setup bends what teardowns are for, and the report would no
longer be the last task, which the one-run-at-a-time gate takes as the end of a run.)
"""

from __future__ import annotations

import html
from collections.abc import Collection, Sequence
from typing import Any

from airflow.sdk import Asset, BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowException

from airflow_backup_provider.assets import catalog_alias, catalog_items, event_extra
from airflow_backup_provider.dates import now_utc, run_date
from airflow_backup_provider.flags import as_bool
from airflow_backup_provider.notifications import MAIL_ERRORS, mail_failure_text, send_report_mail

OUTCOME_KEY = "backup_outcome"
FAILED_STATES = frozenset({"failed", "upstream_failed"})
REPORT_TASK_ID = "report"
MAIL_TASK_ID = "mail_report"
MAIL_ERROR_KEY = "mail_error"


def record_outcome(
    context: Any,
    *,
    status: str,
    node: str | None = None,
    produced: Sequence[dict[str, Any]] = (),
    detail: str = "",
    rows: Sequence[dict[str, Any]] = (),
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """
    Tell the report what this task did.

    :param status: ``done``, ``skipped`` (nothing to do, e.g. today's snapshot exists),
        ``dry_run``, or ``failed`` (recorded before raising, when there is something to say).
    :param produced: one dict per artifact, e.g. ``{"id": "snap-1", "size": 8}``.
    :param rows: lines of a status table the report shows as is (same keys in every row, e.g.
        ``{"volume":..., "snapshot":..., "state":...}``), gathered from every task of the run.
    :param warnings: what the report shows first without failing the run (e.g. a backup taken
        long after its logical date: :func:`airflow_backup_provider.dates.late_warning`).
    """
    outcome = {"status": status, "node": node, "produced": list(produced), "detail": detail}
    if rows:
        outcome["rows"] = [dict(row) for row in rows]
    if warnings:
        outcome["warnings"] = [str(w) for w in warnings]
    context["ti"].xcom_push(key=OUTCOME_KEY, value=outcome)
    return outcome


def summarize_run(
    states: dict[str, str | None], outcomes: dict[str, dict[str, Any]], *, exclude: str | Collection[str]
) -> dict[str, list[dict[str, Any]]]:
    """Pure: split the run's tasks into backed up / skipped / failed / other rows."""
    summary: dict[str, list[dict[str, Any]]] = {
        "failed": [],
        "backed_up": [],
        "skipped": [],
        "other": [],
        "status_rows": [],
        "warnings": [],
    }
    excluded = {exclude} if isinstance(exclude, str) else set(exclude)
    for task_key in sorted(states):
        if task_key in excluded:
            continue
        state = states[task_key] or "none"
        outcome = outcomes.get(task_key) or {}
        summary["status_rows"].extend(outcome.get("rows") or [])
        summary["warnings"].extend({"task": task_key, "text": text} for text in outcome.get("warnings") or [])
        row = {
            "task": task_key,
            "state": state,
            "node": outcome.get("node") or "",
            "produced": outcome.get("produced") or [],
            "detail": outcome.get("detail") or "",
        }
        if state in FAILED_STATES:
            summary["failed"].append(row)
        elif outcome.get("status") in ("skipped", "dry_run") or state == "skipped":
            summary["skipped"].append(row)
        elif outcome.get("produced"):
            summary["backed_up"].append(row)
        else:
            summary["other"].append(row)
    return summary


def _produced_text(produced: list[dict[str, Any]]) -> str:
    parts = []
    for item in produced:
        text = str(item.get("id", "?"))
        if item.get("size") is not None:
            text += f" ({item['size']} bytes)"
        parts.append(text)
    return ", ".join(parts)


def render_summary(dag_id: str, run_id: str, summary: dict[str, list[dict[str, Any]]]) -> tuple[str, str, str]:
    """(subject, html body, plain log text)."""
    verdict = "FAILED" if summary["failed"] else "succeeded"
    subject = f"[backup {verdict}] {dag_id} {run_id}: {len(summary['failed'])} failed, {len(summary['backed_up'])} backed up, {len(summary['skipped'])} skipped"
    warnings = summary.get("warnings") or []
    if warnings:
        subject += f", {len(warnings)} warning(s)"
    lines = [subject]
    sections = []
    if warnings:
        lines.append(f"Warnings: {len(warnings)}")
        lines.extend(f"  {w['task']}: {w['text']}" for w in warnings)
        items = "".join(f"<li>{html.escape(w['task'])}: {html.escape(w['text'])}</li>" for w in warnings)
        sections.append(f"<h3>Warnings ({len(warnings)})</h3><ul>{items}</ul>")
    for title, key in (("Failed", "failed"), ("Backed up", "backed_up"), ("Skipped", "skipped")):
        rows = summary[key]
        lines.append(f"{title}: {len(rows)}")
        for row in rows:
            lines.append(f"  {row['task']:<45} {row['state']:<16} {row['node']:<20} {_produced_text(row['produced'])} {row['detail']}")
        cells = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (row["task"], row["state"], row["node"], _produced_text(row["produced"]), row["detail"])
            )
            + "</tr>"
            for row in rows
        )
        sections.append(
            f"<h3>{title} ({len(rows)})</h3>"
            + (f'<table border="1" cellpadding="4" style="border-collapse:collapse"><tr><th>task</th><th>state</th><th>node</th><th>produced</th><th>detail</th></tr>{cells}</table>' if rows else "<p>none</p>")
        )
    status_rows = summary.get("status_rows") or []
    if status_rows:
        columns = list(dict.fromkeys(key for row in status_rows for key in row))
        widths = [max([len(c)] + [len(str(r.get(c, ""))) for r in status_rows]) for c in columns]
        lines.append("Status:")
        lines.append("  " + "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
        for row in status_rows:
            lines.append("  " + "  ".join(str(row.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True)))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        cells = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns) + "</tr>"
            for row in status_rows
        )
        sections.append(
            f'<h3>Status</h3><table border="1" cellpadding="4" style="border-collapse:collapse"><tr>{head}</tr>{cells}</table>'
        )
    body = f"<p>{html.escape(subject)}</p>" + "".join(sections)
    return subject, body, "\n".join(lines)


def records_outcome(task: Any) -> bool:
    """Whether a task may have called :func:`record_outcome`: sensors (they wait) and tasks that say
    so (``records_outcome = False``) never do."""
    if task is None:
        return True
    return getattr(task, "records_outcome", not isinstance(task, BaseSensorOperator))


class _RunSummaryMixin:
    """What both closing tasks read: the run's task states and outcomes, without the two of them."""

    closing_task_ids = (REPORT_TASK_ID, MAIL_TASK_ID)

    def run_summary(self, context: Any) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        ti = context["ti"]
        run_id = context["run_id"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
        outcomes = self._collect_outcomes(ti, states)
        return states, summarize_run(states, outcomes, exclude=self.closing_task_ids)

    def _collect_outcomes(self, ti: Any, states: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Outcome XComs of the tasks that ran to the end, or failed after recording one."""
        outcomes: dict[str, dict[str, Any]] = {}
        dag = self.dag  # type: ignore[attr-defined]
        task_ids = set(dag.task_ids) if dag else set()
        for key, state in states.items():
            if state not in ("success", "failed") or key in self.closing_task_ids:
                continue
            task_id, map_index = key, -1
            if key not in task_ids:
                base, _, index = key.rpartition("_")
                if base in task_ids and index.isdigit():
                    task_id, map_index = base, int(index)
            if not records_outcome(dag.get_task(task_id) if task_id in task_ids else None):
                continue  # asking anyway logs an "XCom not found" error per task in the report's log
            value = ti.xcom_pull(task_ids=task_id, key=OUTCOME_KEY, map_indexes=map_index)
            if value:
                outcomes[key] = value
        return outcomes


class BackupReportMailOperator(_RunSummaryMixin, BaseOperator):
    """Mail the run's summary to the alert addresses (the run's outcome is the report's, after it).

    A mail that cannot be sent fails this task, with the SMTP error, and Airflow's retries try again.
    """

    ui_color = "#f0e4ff"
    records_outcome = False

    def __init__(
        self,
        *,
        alert_emails: Sequence[str],
        smtp_conn_id: str = "smtp_default",
        from_email: str = "airflow-backup@localhost",
        mail_on_success: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", MAIL_TASK_ID)
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.alert_emails = list(alert_emails)
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email
        self.mail_on_success = mail_on_success

    def execute(self, context: Any) -> str:
        _, summary = self.run_summary(context)
        subject, body, _ = render_summary(context["ti"].dag_id, context["run_id"], summary)
        if not self.alert_emails:
            return "not sent: no alert_emails"
        if not (summary["failed"] or self.mail_on_success):
            return "not sent: nothing failed and mail_on_success is off"
        try:
            send_report_mail(
                self.alert_emails, subject=subject, html_body=body, from_email=self.from_email, smtp_conn_id=self.smtp_conn_id
            )
        except MAIL_ERRORS as exc:
            text = mail_failure_text(exc, what="report mail", to=self.alert_emails, smtp_conn_id=self.smtp_conn_id)
            self.log.error("%s", text)
            context["ti"].xcom_push(key=MAIL_ERROR_KEY, value=text)  # for the report's log
            raise AirflowException(text) from exc
        self.log.info("report mailed to %s: %s", ", ".join(self.alert_emails), subject)
        return f"sent: {subject}"


class BackupReportOperator(_RunSummaryMixin, BaseOperator):
    """Summarize the run and fail when any backup task failed (the mail task's state aside).

    With `catalog_asset` and `run_type` (``backup``, ``restore``, ``drill``), a run that really did
    something (not a dry run, not all skipped) adds an event to `catalog_asset` through the catalog's
    Asset alias (see :mod:`airflow_backup_provider.assets`).
    """

    ui_color = "#f0e4ff"

    def __init__(
        self,
        *,
        mail_task_id: str | None = None,
        catalog_asset: Asset | None = None,
        run_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        if catalog_asset is not None and run_type is not None:
            kwargs.setdefault("outlets", [catalog_alias()])
        kwargs.setdefault("task_id", REPORT_TASK_ID)
        kwargs.setdefault("trigger_rule", "all_done")
        # The report judges the run; retrying it cannot change the verdict.
        kwargs.setdefault("retries", 0)
        # Its own failure is the verdict, mailed by mail_report: no second alert from the task callback.
        kwargs.setdefault("on_failure_callback", None)
        super().__init__(**kwargs)
        self.mail_task_id = mail_task_id
        self.catalog_asset = catalog_asset
        self.run_type = run_type

    def execute(self, context: Any) -> dict[str, Any]:
        states, summary = self.run_summary(context)
        _, _, text = render_summary(context["ti"].dag_id, context["run_id"], summary)
        self.log.info("%s", text)
        result: dict[str, Any] = {key: len(rows) for key, rows in summary.items()}
        if self.mail_task_id:
            result["mail"] = self._mail_state(context["ti"], states.get(self.mail_task_id))
        if summary["failed"]:
            names = ", ".join(row["task"] for row in summary["failed"])
            raise AirflowException(f"{len(summary['failed'])} task(s) failed in this run: {names}")
        result["catalog_event"] = self._add_catalog_event(context, states, summary)
        return result

    def _add_catalog_event(self, context: Any, states: dict[str, Any], summary: dict[str, list[dict[str, Any]]]) -> bool:
        """An event on the cluster's Asset when the run really backed up, restored or drilled."""
        if self.catalog_asset is None or self.run_type is None:
            return False
        if as_bool((context.get("params") or {}).get("dry_run")) or not catalog_items(summary["backed_up"]):
            self.log.info("no catalog event: a dry run, or nothing was produced")
            return False
        dag_run = context["dag_run"]
        extra = event_extra(
            run_type=self.run_type,
            dag_id=context["ti"].dag_id,
            run_id=context["run_id"],
            logical_date=run_date(context),
            started=getattr(dag_run, "start_date", None),
            ended=now_utc(),
            backed_up=summary["backed_up"],
            task_states=states,
        )
        context["outlet_events"][catalog_alias()].add(self.catalog_asset, extra=extra)
        self.log.info("catalog event on %s: %s", self.catalog_asset.name, extra)
        return True

    def _mail_state(self, ti: Any, state: str | None) -> str:
        """The mail's fate, in the report's log: a mail that failed does not fail a good backup."""
        if state == "success":
            return str(ti.xcom_pull(task_ids=self.mail_task_id) or "sent")
        error = ti.xcom_pull(task_ids=self.mail_task_id, key=MAIL_ERROR_KEY) if state in FAILED_STATES else None
        text = f"the report mail was not sent ({self.mail_task_id}: {state}): {error or 'see its log'}"
        self.log.warning("%s", text)
        return text
