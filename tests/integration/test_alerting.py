"""A failing task mails the on-call addresses; the report fails the run and mails a summary."""

import pytest

from tests.harness import REPO, as_logical_date, load_dagbag, run_dag, xcom

pytestmark = pytest.mark.sandbox

PROBE_FILE = REPO / "tests" / "dags" / "probe_dags.py"


def probe_dag():
    bag = load_dagbag(PROBE_FILE)
    assert not bag.import_errors
    return bag.dags["ebs_probe"]


def test_failure_mails_the_fields_and_the_report_fails_the_run(airflow_db, sandbox, mails, monkeypatch):
    monkeypatch.setenv("PROBE_FAIL", "1")
    states = run_dag(probe_dag(), "2026-11-20")
    assert states["node-b.backup"] == "failed"
    assert states["later_node"] == "success"  # a later node went on and succeeded...
    assert states["report"] == "failed"  # ...and the run still fails

    alert = next(m for m in mails if m["subject"].startswith("[backup failed]"))
    assert alert["to"] == ["oncall@example.com", "dba@example.com"]
    assert "ebs_probe.node-b.backup on node-b (try 1/1)" in alert["subject"]
    for field in ("ebs_probe", "node-b.backup", "node-b", "RuntimeError: disk on fire", "try_number=1", "/dags/ebs_probe/runs/"):
        assert field in alert["body"], field

    report = next(m for m in mails if m["subject"].startswith("[backup FAILED]"))
    assert "1 failed, 2 backed up, 1 skipped" in report["subject"]
    assert "snap-c (32 bytes)" in report["body"] and "snapshot for this date exists" in report["body"]
    assert len([m for m in mails if m["subject"].startswith("[backup failed]")]) == 1  # the report is not alerted twice


def test_retry_alert_when_the_file_asks(airflow_db, sandbox, mails, monkeypatch):
    monkeypatch.setenv("PROBE_FAIL", "1")
    monkeypatch.setenv("PROBE_RETRIES", "1")
    states = run_dag(probe_dag(), "2026-11-21")
    assert states["node-b.backup"] == "failed"
    subjects = [m["subject"] for m in mails]
    assert any(s.startswith("[backup up for retry] ebs_probe.node-b.backup") and "(try 1/2)" in s for s in subjects), subjects
    assert any(s.startswith("[backup failed] ebs_probe.node-b.backup") and "(try 2/2)" in s for s in subjects), subjects


def test_success_report(airflow_db, sandbox, mails, monkeypatch):
    monkeypatch.delenv("PROBE_FAIL", raising=False)
    states = run_dag(probe_dag(), "2026-11-22")
    assert set(states.values()) == {"success"}
    (report,) = mails
    assert report["subject"].startswith("[backup succeeded] ebs_probe")
    assert "3 backed up" in report["subject"]


def finished_run(dag_id: str, logical_date: str) -> tuple[str, str, dict[str, tuple[str, int]]]:
    """(run id, run state, {unmapped task id: (state, try number)}) of the run of that date."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id, logical_date=as_logical_date(logical_date)).one()
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run.run_id).all()
        return run.run_id, str(run.state), {ti.task_id: (str(ti.state), ti.try_number) for ti in tis if ti.map_index < 0}


def test_good_backup_with_smtp_down_is_a_good_run_and_the_failed_mail_shows(airflow_db, sandbox, smtp_down, monkeypatch):
    monkeypatch.delenv("PROBE_FAIL", raising=False)
    monkeypatch.setenv("PROBE_RETRIES", "1")  # the mail is retried by Airflow like any task
    states = run_dag(probe_dag(), "2026-11-23")
    run_id, run_state, tries = finished_run("ebs_probe", "2026-11-23")
    assert (run_state, states["report"]) == ("success", "success"), states  # the run says what happened to the data...
    assert tries["mail_report"] == ("failed", 2)  # ...the mail was tried twice and failed, visibly
    del states["mail_report"]
    assert set(states.values()) == {"success"}, states
    assert not smtp_down

    error = xcom("ebs_probe", run_id, "mail_report", key="mail_error")
    assert error.startswith(
        "report mail to oncall@example.com, dba@example.com NOT sent through SMTP connection 'smtp_default': "
        "ConnectionRefusedError"
    ), error
    verdict = xcom("ebs_probe", run_id, "report")
    assert (verdict["failed"], verdict["backed_up"]) == (0, 3)
    assert verdict["mail"] == f"the report mail was not sent (mail_report: failed): {error}"


def test_bad_backup_with_smtp_down_is_still_a_failed_run(airflow_db, sandbox, smtp_down, monkeypatch, capfd):
    monkeypatch.setenv("PROBE_FAIL", "1")
    monkeypatch.delenv("PROBE_RETRIES", raising=False)
    states = run_dag(probe_dag(), "2026-11-24")
    assert (states["node-b.backup"], states["report"], states["mail_report"]) == ("failed", "failed", "failed")
    assert finished_run("ebs_probe", "2026-11-24")[1] == "failed"
    assert not smtp_down
    # the alert that could not go out is one clear line in the task's log, not a callback traceback
    log = capfd.readouterr().out
    assert (
        "alert '[backup failed] ebs_probe.node-b.backup on node-b (try 1/1)' to oncall@example.com, "
        "dba@example.com NOT sent through SMTP connection 'smtp_default': ConnectionRefusedError"
    ) in log
    assert "Failed to run task callback" not in log


def test_alerts_of_mapped_tasks_name_the_node(airflow_db, sandbox, mails):
    bag = load_dagbag(PROBE_FILE)
    states = run_dag(bag.dags["ebs_probe_mapped"], "2026-11-20")
    assert states["snapshot[1]"] == "failed" and states["upload[1]"] == "failed", states
    subjects = sorted(m["subject"] for m in mails if m["subject"].startswith("[backup failed]"))
    assert subjects == [
        "[backup failed] ebs_probe_mapped.snapshot[1] on 10.0.0.2 (try 1/1)",
        "[backup failed] ebs_probe_mapped.upload[1] on devicedb-b:9090 (try 1/1)",
    ], subjects
