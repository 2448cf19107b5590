"""A real backfill of ebs_<name>: scheduler, dag-processor, triggerer and api-server as subprocesses.

After a backfill over 45 days with `keep_daily: 7, keep_weekly: 4, keep_monthly: 3`, exactly the
snapshots that policy keeps as of the last day remain. The expected set is computed here by
enumerating the dates (not with retention.py). A dry-run backfill afterwards changes nothing, and a
snapshot without our tags survives everything.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from tests.harness import REPO
from tests.sandbox.core import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

NAME = "backfill"
DAG_ID = f"ebs_{NAME}"
FIRST = date(2026, 9, 1)
LAST = date(2026, 10, 15)  # 45 daily runs
DRY_FIRST, DRY_LAST = date(2026, 10, 16), date(2026, 10, 19)
POLICY = {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 3}


def expected_dates(first: date, last: date, daily: int, weekly: int, monthly: int) -> set[date]:
    """What the policy keeps of one snapshot per day, as of `last`, by enumerating the days."""
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    keep = set(days[-daily:])
    newest_of_week: dict[tuple[int, int], date] = {}
    newest_of_month: dict[tuple[int, int], date] = {}
    for day in days:  # ascending: the last write per bucket is its newest day
        newest_of_week[day.isocalendar()[:2]] = day
        newest_of_month[(day.year, day.month)] = day
    keep |= {newest_of_week[w] for w in sorted(newest_of_week)[-weekly:]}
    keep |= {newest_of_month[m] for m in sorted(newest_of_month)[-monthly:]}
    return keep


def test_expected_dates_enumeration_itself():
    # 2026-10-15 is a Thursday: week 42 so far ends on it; weeks 41, 40, 39 end on Sundays.
    kept = expected_dates(FIRST, LAST, **{k.removeprefix("keep_"): v for k, v in POLICY.items()})
    assert sorted(kept) == sorted(
        {date(2026, 10, d) for d in range(9, 16)}
        | {date(2026, 10, 11), date(2026, 10, 4), date(2026, 9, 27)}
        | {date(2026, 9, 30)}
    )


PRELOAD_PLUGIN = """
# Test speed only (see airflow_stack): imported by the scheduler before it forks its workers.
import botocore.loaders

import airflow_backup_provider.builders.ebs  # noqa: F401

# botocore caches a loaded service model per session; share it per process instead, and load
# EC2's here so that every forked task process starts with it (botocore treats it as read-only).
_models = {}
_load = botocore.loaders.Loader.load_service_model


def _shared_load_service_model(self, service_name, type_name, api_version=None):
    key = (service_name, type_name, api_version)
    if key not in _models:
        _models[key] = _load(self, service_name, type_name, api_version)
    return _models[key]


botocore.loaders.Loader.load_service_model = _shared_load_service_model

# One client here warms what every later one reuses in this process and its forks: botocore's
# operation-name cache and the source lines the amazon provider inspects for its user agent.
try:
    from airflow_backup_provider.hooks.ebs import EbsHook

    EbsHook(aws_conn_id="aws_default").conn
except Exception:  # a CLI process without the connection: nothing to warm
    pass
"""


class AirflowStack:
    """scheduler + dag-processor + triggerer + api-server in one process group, temp AIRFLOW_HOME."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home = home
        self.env = env
        self.process: subprocess.Popen | None = None
        self.db = home / "airflow.db"

    def airflow(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            ["airflow", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert result.returncode == 0, f"airflow {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def start(self, components: str = "api-server dag-processor triggerer scheduler") -> None:
        """Start `components` in one new process group; the api-server answers before the
        scheduler starts, or the first tasks fail with "Connection refused"."""
        self.stop()
        log = open(self.home / "stack.log", "ab")  # noqa: SIM115
        port = self.env["AIRFLOW__API__PORT"]
        commands = []
        for component in components.split():
            if component == "api-server":
                commands.append(f"airflow api-server --port {port} &")
                commands.append(f"until (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 0.5; done;")
            else:
                commands.append(f"airflow {component} &")
        self.process = subprocess.Popen(
            ["bash", "-c", " ".join(commands) + " wait"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def backfill(self, *args: str) -> None:
        """`airflow backfill create` while nothing else writes: SQLite refuses a second writer
        (a busy timeout does not help a transaction that read before another one wrote)."""
        self.stop()
        self.airflow("backfill", "create", "--dag-id", DAG_ID, "--max-active-runs", "1", *args)
        self.start()

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        self._stop(process)

    def _stop(self, process: subprocess.Popen) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                continue
            # children may outlive bash: make sure the group is empty
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return

    def query(self, sql: str, *params) -> list[tuple]:
        with sqlite3.connect(self.db, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(1)
        tail = (self.home / "stack.log").read_text(errors="replace")[-4000:]
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n--- stack log tail ---\n{tail}")

    def run_states(self, run_type: str = "backfill") -> dict[str, str]:
        rows = self.query(
            "select logical_date, state from dag_run where dag_id = ? and run_type = ?", DAG_ID, run_type
        )
        return {str(d)[:10]: s for d, s in rows}


@contextmanager
def airflow_stack(tmp_path: Path, sandbox, clusters: dict) -> Iterator[AirflowStack]:
    home = tmp_path / "airflow-home"
    dags = home / "dags"
    dags.mkdir(parents=True)
    (dags / "backup_dags.py").write_text((REPO / "dags" / "backup_dags.py").read_text())
    # Load the provider in the scheduler before it forks its LocalExecutor workers, so each task
    # process inherits boto3 and the amazon provider instead of importing them again (seconds per
    # task on two cores). Test speed only: tasks still parse the DAG file themselves.
    (home / "plugins").mkdir()
    (home / "plugins" / "preload_backup_provider.py").write_text(PRELOAD_PLUGIN)
    clusters_path = home / "clusters.yaml"
    clusters_path.write_text(yaml.safe_dump(clusters, sort_keys=False))
    port = free_port()
    env = {
        **os.environ,
        **sandbox.connections(),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(home),
        "BACKUP_CLUSTERS_FILE": str(clusters_path),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        # five processes share one SQLite file: wait for locks rather than fail at once
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
        # only the backfill makes runs: no scheduled run of "today" mixes into the dates
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # the loop sleeps this long when it has nothing to do: most of a short task's latency
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    stack = AirflowStack(home, env)
    stack.airflow("db", "migrate", timeout=300)
    with sqlite3.connect(stack.db) as conn:  # readers no longer block the writer (persists in the file)
        conn.execute("PRAGMA journal_mode=WAL")
    stack.start("dag-processor")
    try:
        yield stack
    finally:
        stack.stop()


def snapshot_dates(ec2, volume_id: str) -> dict[date, list[str]]:
    found: dict[date, list[str]] = {}
    for page in ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [volume_id]}]
    ):
        for snap in page["Snapshots"]:
            tags = {t["Key"]: t["Value"] for t in snap.get("Tags") or []}
            if tags.get("backup:name") == NAME:
                found.setdefault(date.fromisoformat(tags["backup:logical-date"][:10]), []).append(snap["SnapshotId"])
    return found


def test_backfill_keeps_exactly_what_the_policy_says(sandbox, tmp_path):
    ec2 = sandbox.boto3_client("ec2")
    volumes = [ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]]
    foreign = ec2.create_snapshot(VolumeId=volumes[0], Description="made by hand, no tags")["SnapshotId"]
    clusters = {
        "defaults": {"retries": 0, "deferrable": False, "poke_interval": "2s", "alert_emails": []},
        "entries": [
            {
                "kind": "ebs",
                "name": NAME,
                "volume_ids": volumes,
                "schedule": "@daily",
                "start_date": "2026-01-01",
                "retention": POLICY,
            }
        ],
    }
    started = time.monotonic()
    with airflow_stack(tmp_path, sandbox, clusters) as stack:
        stack.wait_for(
            lambda: stack.query("select 1 from serialized_dag where dag_id = ?", DAG_ID),
            timeout=90,
            what=f"{DAG_ID} parsed by the dag-processor",
        )
        stack.backfill("--from-date", FIRST.isoformat(), "--to-date", LAST.isoformat())
        days = (LAST - FIRST).days + 1

        def all_done() -> bool:
            states = stack.run_states()
            return len(states) == days and all(s in ("success", "failed") for s in states.values())

        stack.wait_for(all_done, timeout=600, what=f"{days} backfill runs")
        states = stack.run_states()
        assert set(states.values()) == {"success"}, {d: s for d, s in states.items() if s != "success"}

        expected = expected_dates(FIRST, LAST, daily=7, weekly=4, monthly=3)
        kept_ids = set()
        for volume in volumes:
            found = snapshot_dates(ec2, volume)
            assert sorted(found) == sorted(expected), f"{volume}: kept {sorted(found)}"
            assert all(len(ids) == 1 for ids in found.values()), f"{volume}: two snapshots for one day: {found}"
            kept_ids |= {i for ids in found.values() for i in ids}
        assert ec2.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["State"] == "completed"

        # The scheduler marks a backfill complete a loop after its last run ends; a second
        # backfill of the same DAG is refused until then.
        stack.wait_for(
            lambda: not stack.query("select 1 from backfill where completed_at is null"),
            timeout=120,
            what="the first backfill marked complete",
        )

        # A dry-run backfill of the following days would create snapshots and prune older
        # dailies; as a dry run it changes nothing.
        stack.backfill(
            "--from-date", DRY_FIRST.isoformat(), "--to-date", DRY_LAST.isoformat(),
            "--dag-run-conf", json.dumps({"dry_run": True}),
        )  # fmt: skip
        total = days + (DRY_LAST - DRY_FIRST).days + 1

        def dry_done() -> bool:
            states = stack.run_states()
            return len(states) == total and all(s in ("success", "failed") for s in states.values())

        stack.wait_for(dry_done, timeout=180, what="the dry-run backfill")
        assert set(stack.run_states().values()) == {"success"}
        after = set()
        for volume in volumes:
            after |= {i for ids in snapshot_dates(ec2, volume).values() for i in ids}
        assert after == kept_ids
        assert ec2.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["State"] == "completed"
    print(f"\nbackfill e2e: {total} runs in {time.monotonic() - started:.0f}s")
