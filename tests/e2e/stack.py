"""A real Airflow for end-to-end tests: api-server, dag-processor, scheduler (LocalExecutor) and
triggerer as subprocesses of one process group, in a temporary AIRFLOW_HOME on SQLite."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from tests.harness import REPO
from tests.sandbox.core import free_port, wait_until

PRELOAD_PLUGIN = """
# Test speed only (see airflow_stack): imported by the scheduler before it forks its workers.
import botocore.loaders

import airflow_backup_provider.factory  # noqa: F401
import airflow_backup_provider.builders.ebs  # noqa: F401
import airflow_backup_provider.builders.riak  # noqa: F401

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

    def __init__(self, home: Path, env: dict[str, str], dag_id: str):
        self.home = home
        self.dag_id = dag_id
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
        self.airflow("backfill", "create", "--dag-id", self.dag_id, *args)
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
        """`wait_until`, failing with the tail of the stack's log."""
        try:
            wait_until(predicate, timeout, what, interval=1)
        except TimeoutError:
            tail = (self.home / "stack.log").read_text(errors="replace")[-4000:]
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n--- stack log tail ---\n{tail}") from None

    def run_states(self, run_type: str = "backfill") -> dict[str, str]:
        rows = self.query(
            "select logical_date, state from dag_run where dag_id = ? and run_type = ?", self.dag_id, run_type
        )
        return {str(d)[:10]: s for d, s in rows}


def airflow_env(home: Path, sandbox, clusters_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every Airflow process of a test stack: its own home, DAG folder, SQLite
    file, LocalExecutor, the sandbox's connections, an api-server on a free port."""
    port = free_port()
    return {
        **os.environ,
        **sandbox.connections(),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(home),
        "BACKUP_CLUSTERS_FILE": str(clusters_path),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        # several processes share one SQLite file: wait for locks rather than fail at once
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        # the loop sleeps this long when it has nothing to do: most of a short task's latency
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        **(extra or {}),
    }


@contextmanager
def airflow_stack(tmp_path: Path, sandbox, clusters: dict, dag_id: str) -> Iterator[AirflowStack]:
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
    env = airflow_env(
        home,
        sandbox,
        clusters_path,
        {
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            # only the backfill makes runs: no scheduled run of "today" mixes into the dates
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        },
    )
    stack = AirflowStack(home, env, dag_id)
    stack.airflow("db", "migrate", timeout=300)
    with sqlite3.connect(stack.db) as conn:  # readers no longer block the writer (persists in the file)
        conn.execute("PRAGMA journal_mode=WAL")
    stack.start("dag-processor")
    try:
        yield stack
    finally:
        stack.stop()
