"""What every generated DAG shares: defaults from the file, tags, params, the report task."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow.sdk import DAG, Param

from airflow_backup_provider import names
from airflow_backup_provider.assets import cluster_asset, run_type_of
from airflow_backup_provider.config import EntryBase
from airflow_backup_provider.connections import connections_used
from airflow_backup_provider.notifications import build_alert_callbacks
from airflow_backup_provider.operators.report import BackupReportMailOperator, BackupReportOperator
from airflow_backup_provider.sensors.exclusive import OneRunAtATimeSensor

TURN_GATE_TASK_ID = "wait_for_other_runs"

# Trigger-form patterns. The very end of a value is `(?![\s\S])`: jsonschema's `pattern` is
# Python's re.search, where `$` also matches before a trailing newline ("/etc\n" would pass);
# this works the same in JavaScript.
FORM_END = r"(?![\s\S])"
# an absolute path of safe characters without a '..' part, and not the root folder ("/", "/./")
FORM_PATH = r"^(?!.*/\.\.(/|$))(?!(?:/\.?)+" + FORM_END + r")/" + names.PATH_CHARS + "*" + FORM_END
# a day YYYY-MM-DD in ASCII digits (`\d` is any Unicode digit) with a month and day that exist
FORM_DAY = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"


def dry_run_param() -> Param:
    """A new Param each time: a Param object shared between DAGs (or runs) carries the value
    one run resolved into the next one in the same process."""
    return Param(
        False,
        type="boolean",
        title="Dry run",
        description="Log what would be created or deleted, and change nothing.",
    )


def default_args(entry: EntryBase) -> dict[str, Any]:
    args: dict[str, Any] = {
        "owner": entry.owner,
        "retries": entry.retries,
        "retry_delay": entry.retry_delay,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": max(entry.retry_delay * 8, entry.retry_delay),
    }
    args.update(
        build_alert_callbacks(
            entry.alert_emails,
            from_email=entry.alert_from,
            smtp_conn_id=entry.smtp_conn_id,
            on_retry=entry.alert_on_retry,
        )
    )
    return args


def short_description(entry: EntryBase, summary: str, suffix: str = "", limit: int = 200) -> str:
    """The DAG list's description column: the entry's own description for its backup DAG, else
    the summary's first sentence (a restore's says it restores), at most `limit` characters."""
    text = " ".join(((entry.description if not suffix else "") or summary).split())
    sentence = text.split(". ", 1)[0].rstrip(".") + "."
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def new_dag(
    entry: EntryBase,
    *,
    suffix: str = "",
    summary: str,
    nodes: Iterable[str] = (),
    params: dict[str, Param] | None = None,
    schedule: Any = "__entry__",
    extra_tags: Iterable[str] = (),
) -> DAG:
    """A DAG for `entry` with the house rules: one run at a time, defaults from the file, a form."""
    node_list = list(nodes)
    doc = [f"### {entry.dag_id(suffix)}", "", summary, ""]
    if entry.description:
        doc += [entry.description, ""]
    if node_list:
        doc += ["**Nodes touched, in order:**", ""] + [f"1. `{n}`" for n in node_list] + [""]
    doc += [
        f"Generated from the clusters file entry `{entry.name}` (kind `{entry.kind}`).",
        f"Alerts go to: {', '.join(entry.alert_emails) or 'nobody (set alert_emails)'}.",
    ]
    all_params: dict[str, Param] = {"dry_run": dry_run_param()}
    all_params.update(params or {})
    return DAG(
        dag_id=entry.dag_id(suffix),
        schedule=entry.schedule if schedule == "__entry__" else schedule,
        start_date=entry.start_date,
        catchup=entry.catchup,
        max_active_runs=1,
        default_args=default_args(entry),
        tags=["backup", f"kind:{entry.kind}", f"cluster:{entry.name}", *extra_tags],
        description=short_description(entry, summary, suffix),
        doc_md="\n".join(doc),
        params=all_params,
        render_template_as_native_obj=True,
    )


def finish_dag(dag: DAG, entry: EntryBase, *, shares_turn_with: Iterable[str] = ()) -> BackupReportOperator:
    """Close a built DAG: the one-run-at-a-time gate (which checks the connections) before its first
    tasks, the report mail and the report after its last. `shares_turn_with`: the cluster's other
    DAGs that take the same turn (see :class:`OneRunAtATimeSensor`)."""
    add_turn_gate(dag, entry, shares_turn_with=shares_turn_with)
    return add_report(dag, entry)


def add_turn_gate(dag: DAG, entry: EntryBase, *, shares_turn_with: Iterable[str] = ()) -> OneRunAtATimeSensor:
    """The first task: no other run of this DAG (a backfill's included), nor of the DAGs it shares
    its turn with, is past it at the same time."""
    roots = [t for t in dag.tasks if not t.upstream_list]
    mails = {entry.smtp_conn_id: "smtp_conn_id"} if entry.alert_emails else {}
    gate = OneRunAtATimeSensor(
        task_id=TURN_GATE_TASK_ID,
        dag=dag,
        connections=connections_used(dag.tasks, extra=mails),
        poke_interval=entry.poke_interval.total_seconds(),
        max_wait=10 * entry.poke_interval.total_seconds(),
        timeout=entry.other_runs_timeout.total_seconds(),
        retries=max(entry.retries, 2),
        shares_turn_with=shares_turn_with,
        doc_md="Checks that the connections this DAG uses exist, then waits while another run of this DAG "
        "is in progress: backfill runs are not bounded by `max_active_runs`, and two runs of one cluster "
        "must never overlap.",
    )
    for root in roots:
        gate >> root
    return gate


def add_report(dag: DAG, entry: EntryBase) -> BackupReportOperator:
    """The last tasks: ``mail_report`` after every leaf, then ``report``, the only leaf, which fails the
    run if any backup task failed. A mail that fails (SMTP down) fails ``mail_report`` alone: the run's
    state is its leaves', so a good backup stays a green run (see operators/report.py)."""
    leaves = [t for t in dag.tasks if not t.downstream_list]
    mail = None
    if entry.alert_emails:
        mail = BackupReportMailOperator(
            dag=dag,
            alert_emails=entry.alert_emails,
            smtp_conn_id=entry.smtp_conn_id,
            from_email=entry.alert_from,
        )
        for leaf in leaves:
            leaf >> mail
    report = BackupReportOperator(
        dag=dag,
        mail_task_id=mail.task_id if mail else None,
        catalog_asset=cluster_asset(entry),
        run_type=run_type_of(dag.dag_id, entry.dag_id()),
    )
    for upstream in [mail] if mail else leaves:
        upstream >> report
    return report


def volume_wait_args(entry: EntryBase) -> dict[str, Any]:
    """The arguments of the EBS volume waits of a restore or a drill (wait_available, wait_in_use):
    in the plan's region, bounded by the entry's restore_timeout, without retries."""
    return {
        "aws_conn_id": entry.aws_conn_id,
        "region_name": "{{ ti.xcom_pull(task_ids='plan')['region'] }}",
        "deferrable": entry.deferrable,
        "mode": "reschedule",
        "poke_interval": entry.poke_interval.total_seconds(),
        "timeout": entry.restore_timeout.total_seconds(),
        "retries": 0,
    }
