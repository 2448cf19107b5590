"""The catalog's endpoints behind Airflow's auth manager, on a real api-server: no login -> 401,
and a user who may read one DAG sees one row (simple auth manager, multi-team: each team's bundle
holds one cluster's DAGs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.catalog_server import catalog_api_server

pytestmark = pytest.mark.e2e

ENTRIES = {
    "team_a": {"kind": "ebs", "name": "alpha", "volume_ids": ["vol-0a1b2c3d4e5f60718"]},
    "team_b": {"kind": "ebs", "name": "beta", "volume_ids": ["vol-0a1b2c3d4e5f60719"]},
}
DAG_FILE = """# Airflow DAG file of one team's bundle: the DAGs of that team's clusters file.
from airflow_backup_provider.factory import register_dags

register_dags(globals(), path={path!r})
"""


def airflow(env: dict, *args: str) -> str:
    done = subprocess.run(["airflow", *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def two_teams(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("catalog-access")
    bundles = []
    for team, entry in ENTRIES.items():
        folder = home / f"bundle-{team}"
        folder.mkdir()
        clusters = folder.parent / f"clusters-{team}.yaml"
        clusters.write_text(yaml.safe_dump({"entries": [entry]}))
        (folder / "backup_dags.py").write_text(DAG_FILE.format(path=str(clusters)))
        bundles.append({"name": f"{team}_dags", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                        "kwargs": {"path": str(folder)}, "team_name": team})
    everything = home / "clusters.yaml"  # the catalog's file: every team's entries
    everything.write_text(yaml.safe_dump({"entries": list(ENTRIES.values())}))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "BACKUP_CLUSTERS_FILE": str(everything),
    }
    airflow(env, "db", "migrate")
    airflow(env, "teams", "sync")
    airflow(env, "dags", "reserialize")
    return {"home": home, "env": env}


def test_no_login_is_refused_and_a_team_user_sees_only_its_cluster(two_teams):
    users = {"admin": "admin", "alice": "viewer:team_a"}
    with catalog_api_server(two_teams["home"] / "server", users, extra_env=two_teams["env"]) as server:
        for path in ("/backups/", "/backups/api/catalog", "/backups/api/summary", "/backups/metrics"):
            code, _, body = server.get(path)
            assert code in (401, 403), (path, code, body)
            assert server.get(path, token="not-a-jwt")[0] in (401, 403)

        admin, alice = server.token("admin"), server.token("alice")
        everyone = server.json("/backups/api/catalog", admin)
        assert sorted(row["cluster"] for row in everyone["clusters"]) == ["alpha", "beta"]
        assert everyone["summary"] == {"clusters": 2, "ok": 0, "stale": 0, "failing": 0, "never": 2}
        mine = server.json("/backups/api/catalog", alice)
        assert [row["cluster"] for row in mine["clusters"]] == ["alpha"]

        code, kind, page = server.get("/backups/", alice)
        assert code == 200 and kind.startswith("text/html")
        assert page.count('<tr class="cluster"') == 1 and 'data-cluster="alpha"' in page
        code, kind, metrics = server.get("/backups/metrics", alice)
        assert code == 200 and kind.startswith("text/plain")
        assert "# TYPE backup_runs_total counter" in metrics and 'cluster="beta"' not in metrics

        # the UI lists the page in its navigation, and shows it inside the UI for alice
        views = server.json("/api/v2/plugins", admin)
        (plugin,) = [p for p in views["plugins"] if p["name"] == "backup_catalog"]
        assert plugin["external_views"][0]["destination"] == "nav"
        assert plugin["external_views"][0]["href"] == "/backups/"
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                context = browser.new_context()
                context.add_cookies([{"name": "_token", "value": alice, "url": server.base_url}])
                page = context.new_page()
                page.goto(f"{server.base_url}/plugin/backups")
                frame = page.frame_locator('iframe[src*="/backups/"]')
                rows = frame.locator("tr.cluster")
                rows.first.wait_for(timeout=60_000)
                assert rows.count() == 1 and rows.first.get_attribute("data-cluster") == "alpha"
            finally:
                browser.close()


def test_metrics_open_to_a_scraper_by_a_setting(two_teams):
    env = {**two_teams["env"], "AIRFLOW__BACKUP_CATALOG__METRICS_PUBLIC": "True"}
    with catalog_api_server(two_teams["home"] / "open", {"admin": "admin"}, extra_env=env) as server:
        code, _, metrics = server.get("/backups/metrics")
        assert code == 200, metrics
        assert 'backup_runs_total' in metrics
        assert server.get("/backups/api/catalog")[0] in (401, 403)  # the rest stays closed
