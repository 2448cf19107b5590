"""The backup catalog's page and JSON on a full metadata DB; print their time divided by the time of
Airflow's own `GET /api/v2/dags`, on the same DB, from the same api-server, in this run.

    .venv/bin/python bench/catalog.py [--clusters 200] [--days 365]

200 EBS entries, their DAGs serialized by Airflow itself (`airflow dags reserialize`), then
365 days of runs (one failed in 20) and one catalog Asset event per good run, written straight
into SQLite. Each URL is asked ROUNDS times after a warm-up; the medians are compared: the page and
the JSON (their default page of 50 rows, the summary over all 200) against Airflow's DAG list (its
default page of 50), and all 200 rows against `?limit=200`. Goal: <= 2.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
HOME = Path(tempfile.mkdtemp(prefix="abp-bench-catalog-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(HOME / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "BACKUP_CLUSTERS_FILE": str(HOME / "clusters.yaml"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
)

GOAL = 2.0
ROUNDS = 15


def write_dags(clusters: int) -> None:
    import yaml

    entries = [
        {"kind": "ebs", "name": f"vol{n:03d}", "volume_ids": [f"vol-{n:017x}"], "schedule": "@daily"} for n in range(clusters)
    ]
    (HOME / "clusters.yaml").write_text(yaml.safe_dump({"entries": entries}))
    (HOME / "dags").mkdir()
    for name in ("backup_dags.py", "backup_freshness.py"):
        (HOME / "dags" / name).write_text((REPO / "dags" / name).read_text())


def airflow(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(["airflow", *args], env=env, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode:
        raise SystemExit(f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def fill(clusters: int, days: int, now: datetime) -> tuple[int, int]:
    """Runs and events straight into the tables (Airflow's own models, core inserts)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import insert, select

    rnd = random.Random(1)
    with create_session() as session:
        assets = dict(session.execute(select(AssetModel.name, AssetModel.id)).all())
        runs, events = [], []
        for n in range(clusters):
            dag_id, asset_id = f"ebs_vol{n:03d}", assets[f"backup_ebs_vol{n:03d}"]
            for day in range(days):
                logical = (now - timedelta(days=days - day)).replace(hour=0, minute=0, second=0, microsecond=0)
                started = logical + timedelta(minutes=rnd.randrange(5))
                duration = timedelta(seconds=rnd.randrange(60, 3600))
                state = "failed" if rnd.random() < 0.05 else "success"
                run_id = f"scheduled__{logical.isoformat()}"
                runs.append({
                    "dag_id": dag_id, "run_id": run_id, "logical_date": logical, "run_after": logical,
                    "data_interval_start": logical, "data_interval_end": logical + timedelta(days=1),
                    "start_date": started, "end_date": started + duration, "queued_at": started, "state": state,
                    "run_type": "scheduled", "clear_number": 0, "span_status": "ended", "conf": {},
                })
                if state == "success":
                    size = rnd.randrange(1 << 30, 1 << 34)
                    events.append({
                        "asset_id": asset_id, "timestamp": started + duration, "source_dag_id": dag_id,
                        "source_task_id": "report", "source_run_id": run_id, "source_map_index": -1,
                        "extra": {"run_type": "backup", "dag_id": dag_id, "run_id": run_id,
                                  "logical_date": logical.isoformat(), "ids": [f"snap-{n:08x}{day:04x}"],
                                  "bytes": size, "items": 1, "duration_seconds": duration.total_seconds(),
                                  "verified": False},
                    })
        for chunk in range(0, len(runs), 5000):
            session.execute(insert(DagRun.__table__), runs[chunk : chunk + 5000])
        for chunk in range(0, len(events), 5000):
            session.execute(insert(AssetEvent.__table__), events[chunk : chunk + 5000])
    return len(runs), len(events)


def median_time(server, path: str, token: str) -> tuple[float, int]:
    code, _, body = server.get(path, token)  # warm-up (and a check that it answers)
    if code != 200:
        raise SystemExit(f"GET {path}: {code} {body[:500]}")
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        server.get(path, token)
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    now = datetime.now(UTC)
    started = time.perf_counter()
    write_dags(args.clusters)
    airflow("db", "migrate")
    airflow("dags", "reserialize")
    runs, events = fill(args.clusters, args.days, now)
    print(f"metadata DB {HOME / 'airflow.db'}: {args.clusters} DAGs, {runs} runs, {events} asset events "
          f"(filled in {time.perf_counter() - started:.0f}s)")

    from tests.e2e.catalog_server import catalog_api_server

    with catalog_api_server(HOME / "server", {"admin": "admin"}) as server:
        token = server.token("admin")
        catalog = json.loads(server.get("/backups/api/catalog", token)[2])
        assert catalog["summary"]["clusters"] == args.clusters, catalog["summary"]
        baseline, _ = median_time(server, "/api/v2/dags", token)
        baseline_all, _ = median_time(server, f"/api/v2/dags?limit={args.clusters}", token)
        results = {}
        for name, path in (("page", "/backups/"), ("json", "/backups/api/catalog"), ("summary", "/backups/api/summary"),
                           ("metrics", "/backups/metrics"), ("page-all", f"/backups/?limit={args.clusters}"),
                           ("json-all", f"/backups/api/catalog?limit={args.clusters}")):
            results[name] = median_time(server, path, token)
    print(f"GET /api/v2/dags (Airflow's default page of 50): {baseline * 1000:.1f} ms; "
          f"?limit={args.clusters}: {baseline_all * 1000:.1f} ms")
    for name, (seconds, size) in results.items():
        print(f"catalog {name:<9} {seconds * 1000:7.1f} ms ({size} bytes): {seconds / baseline:.2f}x /api/v2/dags, "
              f"{seconds / baseline_all:.2f}x ?limit={args.clusters}")
    worst = max(results["page"][0], results["json"][0]) / baseline
    print(f"ratio (page and JSON, default page of 50 rows each, the slower / GET /api/v2/dags, its default page of 50): "
          f"{worst:.2f} (goal <= {GOAL})")
    every = max(results["page-all"][0], results["json-all"][0]) / baseline_all
    print(f"ratio (all {args.clusters} rows with their charts / GET /api/v2/dags?limit={args.clusters}): {every:.2f}")


if __name__ == "__main__":
    main()
