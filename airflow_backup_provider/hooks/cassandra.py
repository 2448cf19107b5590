"""A Cassandra node: nodetool over SSH, and its files over SFTP (no agent on the node).

Command lines and parsers come from :mod:`airflow_backup_provider.stores.cassandra_nodetool`, the
file walker from ``stores.cassandra_files``; this hook only runs them. Files move between a node and S3
through the object store (:class:`ObjectStoreHook`), several at a time, each worker thread with its own
SFTP session on the node's one SSH connection.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from functools import cached_property
from typing import Any, TypeVar

import paramiko
from airflow.providers.ssh.hooks.ssh import SSHHook

from airflow_backup_provider.hooks.object_store import ObjectStoreHook, StreamResult
from airflow_backup_provider.hooks.remote import CommandResult, RemoteCommandError, RemoteCommandHook
from airflow_backup_provider.stores import cassandra_files, cassandra_layout, cassandra_nodetool

T = TypeVar("T")
R = TypeVar("R")

SFTP_PREFETCH_LIMIT = 64  # outstanding read requests per file
# Reading a file: 64 KiB a request (every OpenSSH sftp-server answers that much in full; paramiko
# asks for 32 KiB), each answer in one SSH packet, and a channel window for the requests in flight
# (paramiko's defaults: 32 KiB packets, 2 MiB window). A third of the SFTP CPU of paramiko's defaults.
SFTP_READ_SIZE = 64 * 1024
SFTP_MAX_PACKET = 256 * 1024
SFTP_WINDOW = 8 * 1024 * 1024


class _PiecewiseReader(io.RawIOBase):
    """A prefetched SFTP file read one request's piece at a time, the pieces of a read joined once.

    paramiko's own ``read(n)`` grows one bytes object piece by piece, copying about
    n * n / (2 * piece) bytes: at 1 MiB reads that was half of the upload's SFTP CPU."""

    def __init__(self, handle: paramiko.SFTPFile):
        self.handle = handle

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.handle.read()
        pieces, got = [], 0
        while got < size:
            piece = self.handle.read(min(SFTP_READ_SIZE, size - got))
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def collect_write_acks(handle: paramiko.SFTPFile) -> None:
    """Wait for the server's answer to every pipelined write of `handle`, raising on the first
    failed one (an IOError, e.g. "Failure" for a full disk).

    paramiko's close() does not do this: pipelined writes are registered without a file object,
    so close() neither waits for their answers nor reports them, and it swallows an error of the
    close itself; a write that hit a full disk went unnoticed (checked against paramiko 5.x).
    """
    handle.flush()  # the buffered tail goes out as writes first
    pending = handle._reqs
    while pending:
        handle.sftp._read_response(pending.popleft())  # raises IOError on an error status


class CassandraNodeHook(RemoteCommandHook):
    """
    Run nodetool on one node and read or write its files.

    :param nodetool: the nodetool command (name on the node's PATH, or an absolute path).
    :param nodetool_timeout: how long one nodetool call may stay silent, in seconds.
    Other parameters: :class:`RemoteCommandHook`.

    The SSH link is not compressed unless the connection's extra says ``"compress": "true"``
    (the ssh provider compresses by default): SSTables are compressed by Cassandra and again with
    zstd here, so zlib on the link gains little and was the largest CPU cost of an upload, on the node.
    """

    hook_name = "Backup Cassandra node"

    def __init__(self, *args: Any, nodetool: str = "nodetool", nodetool_timeout: float = 600, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.nodetool = nodetool
        self.nodetool_timeout = nodetool_timeout
        self._local_sftp = threading.local()
        self._sftp_clients: list[paramiko.SFTPClient] = []
        self._sftp_lock = threading.Lock()

    @cached_property
    def ssh_hook(self) -> SSHHook:
        hook = RemoteCommandHook.ssh_hook.func(self)
        if self.ssh_conn_id is not None:
            extra = hook.get_connection(self.ssh_conn_id).extra_dejson
            hook.compress = str(extra.get("compress", "false")).lower() == "true"
        return hook

    # ---- nodetool -------------------------------------------------------------------------------
    def run_nodetool(self, argv: Sequence[str], what: str) -> CommandResult:
        result = self.run(argv, timeout=self.nodetool_timeout)
        if not result.ok:
            raise RemoteCommandError(result, f"{what} ({cassandra_nodetool.nodetool_failure(result.stderr + result.stdout)})")
        return result

    def flush(self, keyspaces: Sequence[str] = ()) -> None:
        for keyspace in keyspaces or [None]:
            self.run_nodetool(cassandra_nodetool.flush_argv(self.nodetool, keyspace), "nodetool flush")

    def snapshot(self, tag: str, keyspaces: Sequence[str] = ()) -> cassandra_nodetool.SnapshotResult:
        """Take snapshot `tag`; a snapshot this run already made (a retried task) counts as made."""
        result = self.run(cassandra_nodetool.snapshot_argv(tag, keyspaces, self.nodetool), timeout=self.nodetool_timeout)
        text = result.stdout + "\n" + result.stderr
        if not result.ok:
            parsed = None
            with contextlib.suppress(cassandra_nodetool.NodetoolOutputError):
                parsed = cassandra_nodetool.parse_snapshot(text, tag)
            if parsed and parsed.already_exists:
                return parsed
            raise RemoteCommandError(result, f"nodetool snapshot -t {tag} ({cassandra_nodetool.nodetool_failure(text)})")
        return cassandra_nodetool.parse_snapshot(text, tag)

    def list_snapshots(self) -> list[cassandra_nodetool.ListedSnapshot]:
        result = self.run_nodetool(cassandra_nodetool.listsnapshots_argv(self.nodetool), "nodetool listsnapshots")
        return cassandra_nodetool.parse_listsnapshots(result.stdout)[0]

    def clear_snapshot(self, tag: str, keyspaces: Sequence[str] = ()) -> tuple[str, ...]:
        result = self.run_nodetool(cassandra_nodetool.clearsnapshot_argv(tag, keyspaces, self.nodetool), "nodetool clearsnapshot")
        return cassandra_nodetool.parse_clearsnapshot(result.stdout + result.stderr, tag)

    def status_text(self) -> str:
        text = self.run_nodetool(cassandra_nodetool.status_argv(self.nodetool), "nodetool status").stdout
        cassandra_nodetool.parse_status(text)  # refuse to store something that is not a status
        return text

    # ---- files ----------------------------------------------------------------------------------
    def thread_sftp(self) -> paramiko.SFTPClient:
        """This thread's SFTP session (paramiko's SFTP client is not safe across threads)."""
        client = getattr(self._local_sftp, "client", None)
        if client is None or client.sock.closed:
            client = paramiko.SFTPClient.from_transport(
                self.get_conn().get_transport(), window_size=SFTP_WINDOW, max_packet_size=SFTP_MAX_PACKET
            )
            self._local_sftp.client = client
            with self._sftp_lock:
                self._sftp_clients.append(client)
        return client

    def close(self) -> None:
        with self._sftp_lock:
            for client in self._sftp_clients:
                with contextlib.suppress(Exception):
                    client.close()
            self._sftp_clients.clear()
        self._local_sftp = threading.local()
        super().close()

    def listdir(self, path: str) -> list[cassandra_files.DirEntry]:
        try:
            entries = self.thread_sftp().listdir_attr(path)
        except OSError as exc:
            if getattr(exc, "errno", None) == 2 or isinstance(exc, FileNotFoundError):
                raise FileNotFoundError(path) from exc
            raise
        result = []
        for entry in entries:
            name, attrs = entry.filename, entry
            if stat.S_ISLNK(attrs.st_mode or 0):
                # a keyspace or table folder moved to another disk and linked back: follow it
                try:
                    attrs = self.thread_sftp().stat(posixpath.join(path, name))
                except FileNotFoundError:
                    raise cassandra_layout.CassandraNameError(
                        f"data folder: {posixpath.join(path, name)!r} is a dangling symlink"
                    ) from None
            mode = attrs.st_mode or 0
            if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                result.append(cassandra_files.DirEntry(name=name, is_dir=stat.S_ISDIR(mode), size=int(attrs.st_size or 0)))
        return result

    def walk(self, data_dir: str, tag: str, scope: cassandra_files.Scope, include_backups: bool = True) -> cassandra_files.WalkResult:
        return cassandra_files.walk_data_dir(data_dir, tag, scope, self.listdir, include_backups=include_backups)

    def read_file(self, path: str) -> bytes:
        with self.thread_sftp().open(path, "rb") as handle:
            return handle.read()

    @contextlib.contextmanager
    def open_for_read(self, path: str, size: int | None = None) -> Iterator[io.RawIOBase]:
        """A remote file with read-ahead: many reads in flight, so the link stays full."""
        handle = self.thread_sftp().open(path, "rb", bufsize=1024 * 1024)
        try:
            handle.MAX_REQUEST_SIZE = SFTP_READ_SIZE  # paramiko's read-ahead cuts the file into such requests
            handle.prefetch(size, max_concurrent_requests=SFTP_PREFETCH_LIMIT)
            yield _PiecewiseReader(handle)
        finally:
            handle.close()

    def makedirs(self, path: str) -> None:
        sftp = self.thread_sftp()
        missing = []
        current = posixpath.normpath(path)
        while current not in ("/", ""):
            try:
                sftp.stat(current)
                break
            except FileNotFoundError:
                missing.append(current)
                current = posixpath.dirname(current)
        for folder in reversed(missing):
            with contextlib.suppress(OSError):
                sftp.mkdir(folder)
            sftp.stat(folder)

    def realpath(self, path: str) -> str:
        """The path with symlinks resolved (of its longest existing ancestor, rest appended)."""
        sftp = self.thread_sftp()
        rest: list[str] = []
        current = posixpath.normpath(path)
        while True:
            try:
                resolved = sftp.normalize(current)
                return posixpath.join(resolved, *reversed(rest)) if rest else resolved
            except OSError:
                if current in ("/", ""):
                    return path
                rest.append(posixpath.basename(current))
                current = posixpath.dirname(current)

    @contextlib.contextmanager
    def open_for_write(self, path: str) -> Iterator[paramiko.SFTPFile]:
        """A remote file written with many writes in flight; every write's answer is checked
        before the file counts as written, so a full disk or a refused write raises here."""
        handle = self.thread_sftp().open(path, "wb", bufsize=1024 * 1024)
        handle.set_pipelined(True)
        try:
            yield handle
            collect_write_acks(handle)
        finally:
            handle.close()

    def file_size(self, path: str) -> int:
        return int(self.thread_sftp().stat(path).st_size or 0)

    def sha256_files(self, paths: Sequence[str], batch: int = 200) -> dict[str, str]:
        """SHA-256 of files as they are on the node's disk (`sha256sum`, run on the node: the
        bytes are read there, not sent back)."""
        digests: dict[str, str] = {}
        for start in range(0, len(paths), batch):
            result = self.run(cassandra_nodetool.sha256sum_argv(paths[start : start + batch]), timeout=self.nodetool_timeout)
            digests.update(cassandra_nodetool.parse_sha256sum(result.stdout))
            if not result.ok:
                raise RemoteCommandError(result, f"sha256sum ({result.stderr.strip()[:300]})")
        return digests

    def replace(self, source: str, target: str) -> None:
        self.thread_sftp().posix_rename(source, target)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.thread_sftp().remove(path)

    # ---- to and from S3 -------------------------------------------------------------------------
    def upload_file(self, s3: ObjectStoreHook, bucket: str, remote_path: str, key: str, size: int | None) -> StreamResult:
        return s3.upload_stream(bucket, key, lambda: self.open_for_read(remote_path, size))

    def parallel(self, items: Sequence[T], work: Callable[[T], R], threads: int) -> list[R]:
        """Run `work` on every item, `threads` at a time; the first failure stops the rest."""
        if threads <= 1 or len(items) <= 1:
            return [work(item) for item in items]
        results: list[Any] = [None] * len(items)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"xfer-{self.target}") as pool:
            futures = {pool.submit(work, item): index for index, item in enumerate(items)}
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            for future in done:
                error = future.exception()
                if error is not None:
                    raise error
                results[futures[future]] = future.result()
            for future in pending:
                if not future.cancelled():
                    results[futures[future]] = future.result()
        return results
