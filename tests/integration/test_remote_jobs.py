"""Long remote commands as detached jobs (hooks/remote.RemoteJob, triggers/remote_job.py,
operators/remote_job.py): real bup on the worker (``ssh_conn_id: local``) and real sshd nodes.

The waits below are the test's own (it watches a process from outside); the product waits in the
trigger only.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import pytest

from airflow_backup_provider.hooks.remote import RemoteCommandHook, RemoteJob
from airflow_backup_provider.operators.bup import BupSaveOperator
from airflow_backup_provider.stores.bup import Remote
from airflow_backup_provider.triggers.remote_job import RemoteJobTrigger
from tests.sandbox import SSH_CONN_ID, wait_until
from tests.unit.test_retention_operators import airflow_context


def wait_for(what: str, check, timeout: float = 60.0):
    return wait_until(check, timeout, what, interval=0.1)


def group_members(pgid: int) -> list[str]:
    """The processes still in process group `pgid` (the job's session)."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def first_event(trigger: RemoteJobTrigger) -> dict:
    async def first():
        async for fired in trigger.run():
            return fired.payload
    return asyncio.run(first())


def test_killing_the_task_mid_save_ends_the_remote_bup_save_and_records_no_save(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    # a sparse 64 GiB file: bup reads (and hashes) every zero, which takes minutes, yet costs no disk
    with open(data / "big.img", "wb") as handle:
        handle.truncate(64 * 1024**3)
    repo = tmp_path / "repo"
    save = BupSaveOperator(
        task_id="save", branch="kill1", paths=[str(data)], host="localhost", ssh_conn_id="local",
        bup_dir=str(tmp_path / "bup"), remote=Remote(host="", path=str(repo)), deferrable=False,
    )
    save.job_poll_interval = 0.5
    context = airflow_context("2026-11-20")
    outcome: dict = {}

    def run_task():
        try:
            outcome["result"] = save.execute(context)
        except BaseException as exc:  # what the task would end with
            outcome["error"] = exc

    task = threading.Thread(target=run_task, daemon=True)
    task.start()
    # the save runs detached: its pid file names its process group, and bup is in it
    running = wait_for("the task's remote job", lambda: getattr(save, "_remote_job", None), timeout=120)
    job: RemoteJob = running[1]
    pid_file = Path(job.paths.pid_file)
    pgid = int(wait_for("the job's pid file", lambda: pid_file.exists() and pid_file.read_text().strip()))
    wait_for("bup save in the job's process group", lambda: any("bup" in p and "save" in p for p in group_members(pgid)))

    save.on_kill()  # what the task runner calls when the task is killed (mark failed, timeout, SIGTERM)

    wait_for("the job's process group to end", lambda: not group_members(pgid), timeout=30)
    task.join(timeout=60)
    assert not task.is_alive(), "the task still waits for a job that was killed"
    assert "result" not in outcome, outcome
    assert "without an exit code" in str(outcome["error"]), outcome["error"]
    # bup writes the branch only when the save completes: a killed save leaves none
    branches = subprocess.run(["bup", "-d", str(repo), "ls"], capture_output=True, text=True).stdout.split()
    assert "kill1" not in branches




@pytest.mark.sandbox
def test_a_job_over_ssh_reports_exit_code_and_log_and_a_retry_adopts_it(sandbox):
    node = sandbox.nodes[0]
    marker = node.root / "pwned"
    hostile = f"x; touch {marker}; $(touch {marker}) `touch {marker}` ' \" \\"
    argv = ["sh", "-c", 'printf "%s\\n" "$1"; sleep 2; echo second; exit 3', "sh", hostile]
    with RemoteCommandHook(SSH_CONN_ID, host=node.address) as hook:
        job = RemoteJob.named(
            dag_id="d", task_id="t", run_id="r1", map_index=-1, step="s", argv=argv, target=hook.target,
        )
        assert hook.start_job(job) == "started"
        assert hook.start_job(job) == "adopted"  # a retry while it runs watches it, never starts a second
        trigger = RemoteJobTrigger(
            ssh_conn_id=SSH_CONN_ID, host=node.address, job_id=job.job_id, argv=job.argv, poll_interval=0.5,
        )
        # the trigger survives serialization (the triggerer rebuilds it from these kwargs)
        path, kwargs = trigger.serialize()
        assert path.endswith("RemoteJobTrigger")
        fired = first_event(RemoteJobTrigger(**kwargs))
        assert fired["status"] == "success" and fired["exit_code"] == 3
        assert fired["log_tail"] == f"{hostile}\nsecond\n"
        assert not marker.exists()
        hook.remove_job(job)
        assert hook.job_status(job).state == "absent"


@pytest.mark.sandbox
def test_killing_a_deferred_task_stops_its_job_through_the_trigger(sandbox):
    node = sandbox.nodes[0]
    with RemoteCommandHook(SSH_CONN_ID, host=node.address) as hook:
        job = RemoteJob.named(
            dag_id="d", task_id="t", run_id="r2", map_index=-1, step="s", argv=["sleep", "600"], target=hook.target,
        )
        hook.start_job(job)
        wait_for("the job to run", lambda: hook.job_status(job, max_bytes=0).state == "running")
        trigger = RemoteJobTrigger(
            ssh_conn_id=SSH_CONN_ID, host=node.address, job_id=job.job_id, argv=job.argv, poll_interval=0.5,
        )
        asyncio.run(trigger.on_kill())  # the triggerer's call when the user kills the deferred task
        wait_for("the job's process group to end", lambda: not hook.job_alive(job), timeout=30)
        fired = first_event(trigger)
        assert fired["status"] == "error" and fired["state"] == "gone", fired
        hook.remove_job(job)
