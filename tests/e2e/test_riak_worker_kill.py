"""A worker killed mid-run, with the real Airflow (api-server, dag-processor, scheduler with the
LocalExecutor): the `start` of node 1 is SIGKILLed, with its supervisor, while `riak start` runs;
the scheduler notices the dead task, retries it, and the node is started; the roll goes on. A
manual trigger during that run waits until it has ended (max_active_runs=1)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.stack import airflow_env
from tests.harness import REPO
from tests.sandbox.kinds import riak as kind

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

DAG_ID = "riak_killed_worker"


class Stack:
    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env, self.db = home, env, home / "airflow.db"
        self.process: subprocess.Popen | None = None

    def airflow(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(["airflow", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self) -> None:
        port = self.env["AIRFLOW__API__PORT"]
        script = (
            f"airflow api-server --port {port} & "
            f"until (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 0.5; done; "
            "airflow dag-processor & airflow scheduler & wait"
        )
        log = open(self.home / "stack.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(["bash", "-c", script], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def stop(self) -> None:
        if self.process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=20)
                break
            except subprocess.TimeoutExpired:
                continue
        self.process = None

    def query(self, sql: str, *params) -> list[tuple]:
        with sqlite3.connect(self.db, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        tail = (self.home / "stack.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n--- stack log ---\n{tail}")


def test_worker_killed_during_start_is_retried_and_the_node_started(sandbox, tmp_path):
    sandbox.reset_mails()
    instances = kind.make_instances(sandbox, 2)
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=0, handoff_polls=0, stop_seconds=0.1,
                       start_seconds=0.1, kv_not_up_lines=0)
    first, second = sandbox.nodes[0], sandbox.nodes[1]
    kind.set_knobs(first, primaries_missing_polls=0, handoff_polls=0, stop_seconds=0.1, start_seconds=6,
                   kv_not_up_lines=0)
    entry = {
        "kind": "riak",
        "name": "killed_worker",
        "schedule": None,
        "alert_emails": ["oncall@example.com"],
        "alert_on_retry": True,
        "retries": 1,
        "retry_delay": "1s",
        "node_down_retry_delay": "1s",
        "deferrable": False,
        "poke_interval": "1s",
        "gate_timeout": "60s",
        "nodes": [
            {"host": n.address, "node_name": kind.node_name(n), "instance_id": i}
            for n, i in zip((first, second), instances, strict=True)
        ],
    }
    home = tmp_path / "home"
    dags = home / "dags"
    dags.mkdir(parents=True)
    (dags / "backup_dags.py").write_text((REPO / "dags" / "backup_dags.py").read_text())
    (home / "clusters.yaml").write_text(yaml.safe_dump({"entries": [entry]}))
    env = airflow_env(
        home,
        sandbox,
        home / "clusters.yaml",
        {
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        },
    )
    stack = Stack(home, env)
    stack.airflow("db", "migrate")
    with sqlite3.connect(stack.db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    stack.start()
    try:
        stack.wait_for(lambda: stack.query("select 1 from serialized_dag where dag_id = ?", DAG_ID), 120,
                       "the DAG parsed")
        stack.airflow("dags", "trigger", DAG_ID, "--run-id", "kill_run")
        start_id = "node1_" + first.address.replace(".", "_") + ".start"
        pid = stack.wait_for(
            lambda: [r[0] for r in stack.query(
                "select pid from task_instance where dag_id=? and task_id=? and state='running' and pid is not null",
                DAG_ID, start_id)],
            180, "node 1's start running",
        )[0]
        # a second (manual) trigger while this run is busy (in the background: the CLI takes
        # seconds to start): it must wait for the run to end
        second_trigger = subprocess.Popen(
            ["airflow", "dags", "trigger", DAG_ID, "--run-id", "second_run", "--conf", '{"dry_run": true}'],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        stack.wait_for(lambda: (kind.node_state(first)["running"] is False
                                and any(e.event == "stopping" for e in kind.read_timeline(sandbox, with_stopping=True))),
                       30, "node 1 stopped")
        time.sleep(1)  # `riak start` (6 s) is under way on the node
        supervisor = int(subprocess.run(["ps", "-o", "ppid=", "-p", str(pid)], capture_output=True, text=True,
                                        check=False).stdout.strip() or 0)
        for victim in (pid, supervisor):
            if victim > 1:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        stack.wait_for(lambda: stack.query("select state from dag_run where dag_id=? and run_id='kill_run' "
                                           "and state in ('success','failed')", DAG_ID), 300, "the run to end")
        assert second_trigger.wait(120) == 0
        assert stack.query("select state from dag_run where run_id='second_run'") == [("queued",)] or (
            stack.query("select start_date >= (select end_date from dag_run where run_id='kill_run') "
                        "from dag_run where run_id='second_run'") == [(1,)]
        )
        stack.wait_for(lambda: stack.query("select state from dag_run where dag_id=? and run_id='second_run' "
                                           "and state in ('success','failed')", DAG_ID), 300, "the second run to end")
        (ordered,) = stack.query(
            "select b.start_date >= a.end_date from dag_run a, dag_run b where a.run_id='kill_run' and b.run_id='second_run'"
        )
        assert ordered == (1,), "the manual run started while the first one was running"
        (tries,) = stack.query("select try_number, state from task_instance where dag_id=? and task_id=? and run_id='kill_run'",
                              DAG_ID, start_id)
        assert tries == (2, "success"), tries
        assert stack.query("select run_id, state from dag_run order by run_id") == [
            ("kill_run", "success"), ("second_run", "success"),
        ]
        assert kind.node_state(first)["running"] and kind.node_state(second)["running"]
        assert kind.max_down_at_once(kind.read_timeline(sandbox)) == 1
        subjects = [m["subject"] for m in sandbox.mails]
        # the killed try is mailed as up for retry (the first `riak start` went on without its
        # SSH client: the retry finds the node running, "Node is already running!", pong)
        assert any(s.startswith(f"[backup up for retry] {DAG_ID}.{start_id}") for s in subjects), subjects
        assert any(s.startswith(f"[backup succeeded] {DAG_ID} kill_run") for s in subjects), subjects
    finally:
        stack.stop()
