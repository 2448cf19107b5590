"""The Backups page in a real browser (Debian's chromium through Playwright, never a downloaded
browser) on a real `airflow api-server`, after real bup runs on the sandbox; then a cluster whose
backups stopped goes stale, backup_freshness mails it once, and a new backup clears it.

The DAGs run with dag.test() in this process, on the session's metadata DB, which the api-server
reads too. A screenshot goes to $CATALOG_ARTIFACTS_DIR (default: the test's tmp_path).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.e2e.catalog_server import catalog_api_server
from tests.harness import DAG_FILE, clusters_file, load_dag, load_dagbag, run_dag
from tests.integration.test_bup import example_entry
from tests.sandbox.core import wait_until
from tests.sandbox.kinds import bup as bup_kind

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]
CHROMIUM = "/usr/bin/chromium"
STALE_AFTER = 45  # seconds: the max_age of the cluster whose backups stop
FRESHNESS_FILE = DAG_FILE.with_name("backup_freshness.py")


def bup_entry(sandbox, name: str, **overrides) -> dict:
    entry = bup_kind.prepare(sandbox, {**example_entry(), "name": name})
    entry.update(retries=0, alert_emails=["oncall@example.com"], prune=False)
    entry.pop("s3_sync", None)
    entry.update(overrides)
    return {"kind": "bup", **entry}


@pytest.fixture(scope="module")
def clusters(sandbox, airflow_db) -> dict:
    broken_dump = {"name": "broken", "argv": ["sh", "-c", "echo boom >&2; exit 3"], "output": "broken.sql"}
    return {
        "defaults": {"retention": {"keep_last": 5}},
        "entries": [
            bup_entry(sandbox, "webcat"),
            bup_entry(sandbox, "oldcat", max_age=f"{STALE_AFTER}s"),
            bup_entry(sandbox, "brokencat", dumps=[broken_dump]),
            {"kind": "ebs", "name": "nevercat", "volume_ids": ["vol-0a1b2c3d4e5f60718"]},
        ],
    }


def freshness_dag():
    bag = load_dagbag(FRESHNESS_FILE)
    assert not bag.import_errors, bag.import_errors
    return bag.dags["backup_freshness"]


def rows_by_cluster(server, token) -> dict[str, dict]:
    return {row["cluster"]: row for row in server.json("/backups/api/catalog", token)["clusters"]}


def stale_mails(mails: list) -> list:
    return [m for m in mails if m["subject"].startswith("[backup stale]")]


def test_page_states_chart_and_one_stale_mail(clusters, sandbox, mails, tmp_path):
    from playwright.sync_api import sync_playwright

    artifacts = Path(os.environ.get("CATALOG_ARTIFACTS_DIR") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    with (
        clusters_file(tmp_path, clusters) as path,
        catalog_api_server(tmp_path / "server", {"admin": "admin"}, extra_env={"BACKUP_CLUSTERS_FILE": str(path)}) as server,
    ):
        admin = server.token("admin")
        assert {row["status"] for row in rows_by_cluster(server, admin).values()} == {"never"}
        web = load_dag("bup_webcat")
        for day in ("2026-11-18", "2026-11-19", "2026-11-20"):
            assert run_dag(web, day)["report"] == "success"
        assert run_dag(load_dag("bup_brokencat"), "2026-11-20")["report"] == "failed"
        assert run_dag(load_dag("bup_oldcat"), "2026-11-20")["report"] == "success"
        old_backup_done = time.monotonic()
        rows = rows_by_cluster(server, admin)
        assert {name: row["status"] for name, row in rows.items()} == {
            "webcat": "ok", "oldcat": "ok", "brokencat": "failing", "nevercat": "never"}
        assert len(rows["webcat"]["history"]) == 3 and rows["webcat"]["size_bytes"] > 0
        assert rows["webcat"]["items"] == 1 and rows["webcat"]["runs"] == {"success": 3}
        assert rows["brokencat"]["runs"] == {"failed": 1}

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                context = browser.new_context(viewport={"width": 1600, "height": 700})
                assert context.new_page().goto(f"{server.base_url}/backups/").status == 401
                context.add_cookies([{"name": "_token", "value": admin, "url": server.base_url}])
                page = context.new_page()
                offline = []  # anything the page asks from outside the api-server
                page.on("request", lambda r: offline.append(r.url) if not r.url.startswith(server.base_url) else None)
                assert page.goto(f"{server.base_url}/backups/").status == 200
                shown = {
                    row.get_attribute("data-cluster"): row.get_attribute("data-status")
                    for row in page.locator("tr.cluster").all()
                }
                # oldcat may already be past its short max_age on a busy machine
                assert shown.pop("oldcat") in ("ok", "stale")
                assert shown == {"webcat": "ok", "brokencat": "failing", "nevercat": "never"}
                chart = page.locator('tr[data-cluster="webcat"] svg.chart')
                assert chart.get_attribute("data-points") == "3"
                assert chart.get_attribute("data-bars") == "3" and chart.locator("path.size").count() == 1
                assert chart.locator("polyline.duration").count() == 1
                assert page.locator('tr[data-cluster="webcat"] .status').inner_text() == "ok"
                assert page.locator('tr[data-cluster="webcat"] a').first.get_attribute("href") == "/dags/bup_webcat"
                page.screenshot(path=str(artifacts / "backup-catalog.png"), full_page=True)
                assert offline == []
            finally:
                browser.close()
        assert (artifacts / "backup-catalog.png").stat().st_size > 10_000

        # oldcat's backups stopped: stale after its max_age, mailed once, cleared by a new backup
        freshness = freshness_dag()
        sandbox.reset_mails()
        wait_until(lambda: time.monotonic() - old_backup_done > STALE_AFTER + 1, STALE_AFTER + 5, "oldcat's max_age")
        stale_row = rows_by_cluster(server, admin)["oldcat"]
        # paused, as dag.test() leaves its DAGs: the freshness check reads events, not the DagBag
        assert stale_row["status"] == "stale" and stale_row["paused"] is True
        first = run_dag(freshness, datetime(2026, 12, 1, 10, tzinfo=UTC))
        assert first["check_freshness"] == "success", first
        wait_until(lambda: stale_mails(mails), 30, "the stale mail")
        (mail,) = stale_mails(mails)
        assert "bup/oldcat" in mail["subject"] and "webcat" not in mail["subject"]
        assert "oncall@example.com" in mail["to"]

        assert run_dag(freshness, datetime(2026, 12, 1, 11, tzinfo=UTC))["check_freshness"] == "success"
        assert len(stale_mails(mails)) == 1  # once per staleness, not every hour

        assert run_dag(load_dag("bup_oldcat"), "2026-11-21")["report"] == "success"
        assert rows_by_cluster(server, admin)["oldcat"]["status"] == "ok"
        assert run_dag(freshness, datetime(2026, 12, 1, 12, tzinfo=UTC))["check_freshness"] == "success"
        from airflow.models.variable import Variable

        assert Variable.get("backup_freshness_alerted", deserialize_json=True) == {}
        assert len(stale_mails(mails)) == 1

        # and stale again later: a new staleness, a new mail
        wait_until(lambda: rows_by_cluster(server, admin)["oldcat"]["status"] == "stale", STALE_AFTER + 10,
                   "oldcat stale again", interval=1)
        assert run_dag(freshness, datetime(2026, 12, 1, 13, tzinfo=UTC))["check_freshness"] == "success"
        wait_until(lambda: len(stale_mails(mails)) == 2, 30, "the second stale mail")
        assert yaml.safe_load(yaml.safe_dump(rows_by_cluster(server, admin)["webcat"]["runs"])) == {"success": 3}
