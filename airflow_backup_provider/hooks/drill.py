"""The drill host's scratch folder: made, written, listed and removed, on the worker or over SSH.

Commands (`mkdir`, `find`, `rm`) are argv lists through :class:`RemoteCommandHook`, which runs them
on the worker for the local drill host; file writes go to the worker's disk, or over SFTP with
pipelined, checked writes (:func:`~airflow_backup_provider.hooks.cassandra.collect_write_acks`).
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator
from typing import IO, Any

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from airflow_backup_provider.hooks.cassandra import collect_write_acks
from airflow_backup_provider.hooks.remote import RemoteCommandHook, RemoteJob
from airflow_backup_provider.stores import drill as store

# a stopped scratch server has this long to exit after SIGTERM (then its group gets SIGKILL)
JOB_STOP_SECONDS = 30.0


class ScratchHook(RemoteCommandHook):
    """Write and check files under one scratch folder on the drill host (``ssh_conn_id="local"``: the worker).

    :param scratch: the drill run's own folder; every path this hook writes or removes is inside it.
    Other parameters: :class:`RemoteCommandHook`.
    """

    hook_name = "Backup drill scratch folder"

    def __init__(self, *args: Any, scratch: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scratch = posixpath.normpath(scratch)

    def inside(self, path: str) -> str:
        """`path` when it is the scratch folder or under it: a drill writes nowhere else."""
        normal = posixpath.normpath(path)
        if normal != self.scratch and not normal.startswith(self.scratch + "/"):
            raise ValueError(f"{path!r} is outside the drill's scratch folder {self.scratch!r}")
        return normal

    def makedirs(self, *paths: str) -> None:
        folders = sorted({self.inside(p) for p in paths})
        for start in range(0, len(folders), 500):
            self.run(["mkdir", "-p", "--", *folders[start : start + 500]], timeout=600).check("making scratch folders")

    @contextlib.contextmanager
    def open_for_write(self, path: str) -> Iterator[IO[bytes]]:
        path = self.inside(path)
        if self.is_local:
            with open(path, "wb") as handle:
                yield handle
            return
        with self.sftp() as sftp:
            handle = sftp.open(path, "wb", bufsize=1024 * 1024)
            handle.set_pipelined(True)
            try:
                yield handle
                collect_write_acks(handle)
            finally:
                handle.close()

    @contextlib.contextmanager
    def open_for_read(self, path: str) -> Iterator[IO[bytes]]:
        """A seekable reader of a file in the scratch folder."""
        path = self.inside(path)
        if self.is_local:
            with open(path, "rb") as handle:
                yield handle
            return
        with self.sftp() as sftp, sftp.open(path, "rb", bufsize=1024 * 1024) as handle:
            yield handle

    def list_tree(self, folder: str | None = None) -> list[store.TreeEntry]:
        result = self.run(store.find_argv(self.inside(folder or self.scratch)), timeout=3600).check("listing the scratch folder")
        return store.parse_find(result.stdout)

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", self.inside(path)], timeout=60).exit_code == 0

    # ---- detached servers of the drill's own (a scratch devicedb node), in `<scratch>/jobs/` ----
    @property
    def jobs_folder(self) -> str:
        return posixpath.join(self.scratch, store.SCRATCH_JOBS)

    def job(self, name: str, argv: tuple[str, ...] = ()) -> RemoteJob:
        """The detached job `name` of this scratch folder (its pid and log under `<scratch>/jobs/`)."""
        job = RemoteJob(job_id=name, argv=tuple(argv), base_dir=self.jobs_folder)
        self.inside(job.job_dir)
        return job

    def jobs(self) -> list[RemoteJob]:
        """Every job a drill started in this scratch folder (running or not)."""
        listed = self.run(
            ["find", self.jobs_folder, "-mindepth", "1", "-maxdepth", "1", "-type", "d", "-printf", "%f\\0"], timeout=60
        )
        if not listed.ok:  # no jobs folder: no job was ever started here
            return []
        return [self.job(name) for name in listed.stdout.split("\0") if name]

    def stop_job(self, job: RemoteJob) -> bool:
        """Stop `job`'s whole process group (SIGTERM, then SIGKILL after JOB_STOP_SECONDS) and wait
        until none of it lives; True when it was running. Raises when it outlives the SIGKILL."""
        if not self.job_alive(job):
            return False
        self.kill_job(job)
        if not self._until_gone(job, JOB_STOP_SECONDS):
            self.log.warning("%s: job %s still runs %ss after SIGTERM: SIGKILL", self.target, job.job_id, JOB_STOP_SECONDS)
            script = 'p=$(cat "$1/pid" 2>/dev/null) && [ "$p" -gt 1 ] 2>/dev/null && kill -KILL -"$p" 2>/dev/null; true'
            self.run(["sh", "-c", script, "sh", job.job_dir], timeout=60)
            if not self._until_gone(job, 10.0):
                raise RuntimeError(f"{self.target}: the drill's process {job.job_id} ({job.job_dir}) survives SIGKILL")
        return True

    def _until_gone(self, job: RemoteJob, seconds: float) -> bool:
        retrying = Retrying(
            retry=retry_if_result(lambda alive: alive),
            stop=stop_after_delay(seconds),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry_error_callback=lambda state: state.outcome.result(),
        )
        return not retrying(lambda: self.job_alive(job))

    def stop_jobs(self) -> list[str]:
        """Stop every job still running in this scratch folder; the names of those stopped."""
        return [job.job_id for job in self.jobs() if self.stop_job(job)]

    def remove_scratch(self) -> bool:
        """Stop what the drill left running there, then remove the scratch folder (and its now-empty
        parents up to the drill folder); True when there was one. Raises when it is still there afterwards."""
        existed = self.exists(self.scratch)
        if existed:
            stopped = self.stop_jobs()  # never an rm -rf under a running server's feet
            if stopped:
                self.log.warning("%s: stopped the drill's processes left running: %s", self.target, ", ".join(stopped))
        self.run(["rm", "-rf", "--", self.scratch], timeout=3600).check(f"removing {self.scratch}")
        if self.exists(self.scratch):
            raise RuntimeError(f"{self.target}: the scratch folder {self.scratch} is still there after rm -rf")
        parent = posixpath.dirname(self.scratch)
        self.run(["rmdir", "--ignore-fail-on-non-empty", "--", parent], timeout=60)
        return existed
