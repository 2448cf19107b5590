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

from airflow_backup_provider.hooks.cassandra import collect_write_acks
from airflow_backup_provider.hooks.remote import RemoteCommandHook
from airflow_backup_provider.stores import drill as store


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

    def remove_scratch(self) -> bool:
        """Remove the scratch folder (and its now-empty parents up to the drill folder); True when
        there was one. Raises when it is still there afterwards."""
        existed = self.exists(self.scratch)
        self.run(["rm", "-rf", "--", self.scratch], timeout=3600).check(f"removing {self.scratch}")
        if self.exists(self.scratch):
            raise RuntimeError(f"{self.target}: the scratch folder {self.scratch} is still there after rm -rf")
        parent = posixpath.dirname(self.scratch)
        self.run(["rmdir", "--ignore-fail-on-non-empty", "--", parent], timeout=60)
        return existed
