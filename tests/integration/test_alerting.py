"""A failing task mails the on-call addresses; the report fails the run and mails a summary."""

import pytest

from tests.harness import REPO, load_dagbag, run_dag

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
