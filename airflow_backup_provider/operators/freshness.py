"""``backup_freshness``'s task: mail the on-call when a cluster's last good backup is older than
its ``max_age``, once per staleness.

It reads the clusters file (the DAG's builder) and each cluster's catalog Asset events (its inlets,
through the Task SDK), never the DagBag: a cluster whose DAG is paused, or no longer imports, goes
stale like any other. What was alerted is remembered in a Variable (asset name -> the last good
backup it was stale after); a new backup of that cluster clears it, so the next staleness mails again.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from airflow.sdk import Variable

from airflow_backup_provider.assets import cluster_asset
from airflow_backup_provider.catalog import Entry, format_age, status
from airflow_backup_provider.dates import as_utc, format_instant, now_utc
from airflow_backup_provider.notifications import send_report_mail
from airflow_backup_provider.operators.base import BackupOperator

ALERTED_VARIABLE = "backup_freshness_alerted"
# the newest events read per cluster to find its last backup among restores and drills
EVENTS_READ = 20


def new_alerts(stale: dict[str, str], alerted: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Pure: (asset names to mail now, what is alerted after this run). `stale` maps each stale
    cluster's asset to the last good backup it is stale after; a cluster no longer stale drops out."""
    to_mail = sorted(name for name, since in stale.items() if alerted.get(name) != since)
    return to_mail, dict(sorted(stale.items()))


class BackupFreshnessOperator(BackupOperator):
    """Check every entry's last good backup against its max_age; mail the newly stale ones."""

    ui_color = "#fff3c4"
    template_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        entries: Sequence[tuple[Entry, Sequence[str]]],
        broken: Sequence[tuple[Entry, str]] = (),
        broken_alert_emails: Sequence[str] = (),
        smtp_conn_id: str,
        from_email: str,
        variable_key: str = ALERTED_VARIABLE,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("inlets", [cluster_asset(entry) for entry, _ in [*entries, *broken]])
        super().__init__(**kwargs)
        self.entries = list(entries)  # (entry, its alert_emails)
        self.broken = list(broken)  # (entry that no longer validates, its problems)
        self.broken_alert_emails = list(broken_alert_emails)
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email
        self.variable_key = variable_key

    def last_backup(self, context: Any, entry: Entry) -> Any:
        events = context["inlet_events"][cluster_asset(entry)].ascending(False).limit(EVENTS_READ)
        return next((event for event in events if event.source_dag_id == entry.dag_id), None)

    def execute(self, context: Any) -> dict[str, Any]:
        now = now_utc()
        stale: dict[str, str] = {}
        rows: dict[str, dict[str, str]] = {}
        recipients: dict[str, list[str]] = {}
        for entry, emails in self.entries:
            event = self.last_backup(context, entry)
            last = as_utc(event.timestamp, "timestamp") if event is not None else None
            state = status(last_success=last, last_run_state=None, max_age=entry.max_age, now=now)
            name = cluster_asset(entry).name
            if state == "stale":
                stale[name] = format_instant(last)
                recipients[name] = list(emails)
                rows[name] = {"kind": entry.kind, "cluster": entry.name, "last good backup": format_instant(last),
                              "age": format_age(now - last), "max age": format_age(entry.max_age), "dag": entry.dag_id}
        for entry, problems in self.broken:
            event = self.last_backup(context, entry)
            last = as_utc(event.timestamp, "timestamp") if event is not None else None
            name = cluster_asset(entry).name
            # remembered by its problems: the same breakage is mailed once, a new one again
            stale[name] = f"broken: {problems}"
            recipients[name] = self.broken_alert_emails
            rows[name] = {"kind": entry.kind, "cluster": entry.name,
                          "last good backup": format_instant(last) if last else "never",
                          "age": format_age(now - last) if last else "-",
                          "max age": f"entry no longer valid, no backups run: {problems}", "dag": entry.dag_id}
        alerted = Variable.get(self.variable_key, default={}, deserialize_json=True)
        to_mail, remembered = new_alerts(stale, alerted)
        mailed = []
        if to_mail:
            mailed = self._mail([rows[name] for name in to_mail], sorted({a for name in to_mail for a in recipients[name]}))
        if remembered != alerted:
            Variable.set(self.variable_key, remembered, serialize_json=True)
        self.record_outcome(context, status="done", detail=f"{len(stale)} stale, {len(to_mail)} newly", rows=list(rows.values()))
        return {"stale": sorted(stale), "alerted": to_mail, "mailed_to": mailed}

    def _mail(self, rows: list[dict[str, str]], to: list[str]) -> list[str]:
        if not to:
            self.log.warning("stale backups but no alert_emails to tell: %s", ", ".join(r["cluster"] for r in rows))
            return []
        subject = f"[backup stale] {len(rows)} cluster(s): " + ", ".join(f"{r['kind']}/{r['cluster']}" for r in rows)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        cells = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
        body = (f"<p>{html.escape(subject)}</p><p>The last good backup of each is older than its max_age. "
                f"This is said once per staleness: the next backup clears it.</p><table border=\"1\">"
                f"<tr>{head}</tr>{cells}</table>")
        send_report_mail(to, subject=subject, html_body=body, from_email=self.from_email, smtp_conn_id=self.smtp_conn_id)
        self.log.info("mailed %s: %s", ", ".join(to), subject)
        return to

