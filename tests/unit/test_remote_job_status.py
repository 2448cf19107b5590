"""The detached job's status script, on the worker (``ssh_conn_id: local``): every state from the
files the ssh provider's job wrapper writes, each read once per poll."""

from __future__ import annotations

import subprocess

from airflow_backup_provider.hooks.remote import RemoteCommandHook, RemoteJob


def status(tmp_path, job: RemoteJob):
    return RemoteCommandHook("local").job_status(job)


def job_in(tmp_path) -> RemoteJob:
    return RemoteJob(job_id="ab_test_job", argv=("true",), base_dir=str(tmp_path))


def test_every_state_from_the_job_folder(tmp_path):
    job = job_in(tmp_path)
    assert status(tmp_path, job).state == "absent"
    folder = tmp_path / "ab_test_job"
    folder.mkdir()
    (folder / "stdout.log").write_text("line 1\n")
    assert status(tmp_path, job).state == "starting"  # the wrapper made the folder, no pid yet
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (folder / "pid").write_text(str(sleeper.pid))
        running = status(tmp_path, job)
        assert (running.state, running.log, running.log_size) == ("running", "line 1\n", 7)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert status(tmp_path, job).state == "gone"  # its process ended without an exit code
    (folder / "exit_code").write_text("3")
    done = status(tmp_path, job)
    assert (done.state, done.exit_code, done.log) == ("done", 3, "line 1\n")


def test_a_job_that_starts_while_polled_is_never_seen_gone(tmp_path):
    """Polled as fast as the script runs from the moment it starts: starting, running, done only."""
    hook = RemoteCommandHook("local")
    for attempt in range(5):
        job = RemoteJob(job_id=f"ab_test_fast_{attempt}", argv=("sh", "-c", "echo hi"), base_dir=str(tmp_path))
        hook.start_job(job)
        seen = []
        for _ in range(3000):  # bounded: a job that never ends fails the test instead of hanging it
            seen.append(hook.job_status(job).state)
            assert seen[-1] in ("starting", "running", "done"), seen
            if seen[-1] == "done":
                break
        assert seen[-1] == "done", seen[-20:]
        assert hook.job_status(job).exit_code == 0
