"""The demo as a new user runs it (every DAG of dags/clusters.yaml on the sandbox: a backup of
every kind, the restores, then every drill), then the Backups page in a real browser (Debian's
chromium through Playwright) on a real `airflow api-server` reading the demo's metadata DB: a row
per entry of every kind, each with its backup, chart and drill verdict.

A screenshot goes to $CATALOG_ARTIFACTS_DIR (default: the test's tmp_path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.catalog_server import catalog_api_server
from tests.harness import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]
CHROMIUM = "/usr/bin/chromium"
KINDS_WITH_DRILLS = {"ebs", "riak", "cassandra", "devicedb", "bup"}


def summary_json(output: str) -> dict:
    """The catalog's JSON summary the demo prints last."""
    return json.loads(output[output.index("\n{", output.index("The backup catalog")) + 1 :])


def test_demo_runs_every_kind_and_drill_and_the_page_shows_them(tmp_path):
    work = tmp_path / "demo"
    env = {**os.environ, "DEMO_WORK": str(work)}
    demo = subprocess.run(
        [sys.executable, "-m", "tests.sandbox.demo", "--keep"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=1800,
    )
    assert demo.returncode == 0, demo.stdout[-6000:] + demo.stderr[-4000:]

    entries = yaml.safe_load((work / "clusters.yaml").read_text())["entries"]
    kinds = {e["kind"] for e in entries}
    assert kinds == {"ebs", "riak", "cassandra", "devicedb", "bup"}, kinds
    table = [line.split() for line in demo.stdout.splitlines() if "_drill" in line and line.split()[0].endswith("_drill")]
    drilled = {line[0]: line[1] for line in table}
    wanted = {f"{e['kind']}_{e['name']}_drill" for e in entries if e["kind"] in KINDS_WITH_DRILLS}
    assert drilled == dict.fromkeys(wanted, "success"), demo.stdout[-6000:]
    summary = summary_json(demo.stdout)
    assert {(row["kind"], row["cluster"]) for row in summary["clusters"]} == {(e["kind"], e["name"]) for e in entries}

    home = work / "airflow-home"
    demo_env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(work / "dags"),
        "BACKUP_CLUSTERS_FILE": str(work / "clusters.yaml"),
    }
    artifacts = Path(os.environ.get("CATALOG_ARTIFACTS_DIR") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with catalog_api_server(tmp_path / "server", {"admin": "admin"}, extra_env=demo_env) as server:
        admin = server.token("admin")
        rows = {(r["kind"], r["cluster"]): r for r in server.json("/backups/api/catalog?limit=100", admin)["clusters"]}
        assert set(rows) == {(e["kind"], e["name"]) for e in entries}
        for (kind, cluster), row in rows.items():
            assert row["status"] == "ok", (kind, cluster, row)
            assert row["last_success"] and row["history"], (kind, cluster, row)
            assert (row["size_bytes"] or 0) > 0 or kind in ("ebs", "riak"), (kind, cluster, row)  # snapshots: no byte count
            if kind in KINDS_WITH_DRILLS:
                assert row["last_drill_verdict"] == "passed" and row["last_drill_success"], (kind, cluster, row)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                context = browser.new_context(viewport={"width": 1600, "height": 900})
                context.add_cookies([{"name": "_token", "value": admin, "url": server.base_url}])
                page = context.new_page()
                assert page.goto(f"{server.base_url}/backups/?limit=100").status == 200
                shown = {
                    (row.get_attribute("data-kind"), row.get_attribute("data-cluster")): row.get_attribute("data-status")
                    for row in page.locator("tr.cluster").all()
                }
                assert shown == dict.fromkeys(rows, "ok")
                for kind, cluster in rows:
                    row = page.locator(f'tr[data-kind="{kind}"][data-cluster="{cluster}"]')
                    assert int(row.locator("svg.chart").get_attribute("data-points")) >= 1, (kind, cluster)
                    if kind in KINDS_WITH_DRILLS:
                        assert row.locator(".verdict-passed").count() == 1, (kind, cluster)
                page.screenshot(path=str(artifacts / "backup-catalog-demo.png"), full_page=True)
            finally:
                browser.close()
