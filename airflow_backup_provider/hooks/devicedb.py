"""Talk to one devicedb node over its documented HTTP API, directly or through an SSH tunnel.

Every error names the node (``host:port``), what was asked, the HTTP status and devicedb's own
error text and code, so that an alert is enough to act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import requests
from airflow.sdk.bases.hook import BaseHook

from airflow_backup_provider.config.devicedb import DevicedbNodeSpec
from airflow_backup_provider.hooks.remote import RemoteCommandHook, RemoteTransportError
from airflow_backup_provider.stores import devicedb as ddb


class DevicedbError(RuntimeError):
    """A devicedb node refused a call, answered an error, or could not be reached."""

    def __init__(self, node: str, what: str, detail: str, *, http_status: int | None = None, code: int | None = None):
        self.node = node
        self.what = what
        self.detail = detail
        self.http_status = http_status
        self.code = code
        status = f"HTTP {http_status}: " if http_status is not None else ""
        super().__init__(f"devicedb node {node}: {what}: {status}{detail}")


class DevicedbUnreachable(DevicedbError):
    """No HTTP answer at all (refused, reset, timeout).

    ``refused`` is True only when no connection was ever made, so the request surely did not
    reach the node (a read timeout or a reset after sending may have reached it).
    """

    def __init__(self, node: str, what: str, detail: str, *, refused: bool = False):
        super().__init__(node, what, detail)
        self.refused = refused


class DevicedbTarTooLarge(DevicedbError):
    """A node tar grew past the spool's bound: refused at once (a retry would not shrink it)."""


@dataclass(frozen=True)
class TarDownload:
    size: int
    sha256: str
    seconds: float


def _never_connected(exc: BaseException) -> bool:
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, NewConnectionError | ConnectTimeoutError | ConnectionRefusedError):
            return True
        reason = getattr(seen, "reason", None)
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = reason if isinstance(reason, BaseException) else nested or seen.__cause__ or seen.__context__
    return False


def answer_error(node: str, what: str, http_status: int, body: bytes) -> DevicedbError:
    """The error for a non-200 answer, with devicedb's own message and code."""
    error = ddb.parse_error_body(body[:4000])
    return DevicedbError(node, what, str(error), http_status=http_status, code=error.code)


def parsed_answer(node: str, what: str, parse, body: bytes):
    """`parse(body)` of a 200 answer; a body of the wrong shape is a DevicedbError naming the node."""
    try:
        return parse(body)
    except ddb.DevicedbResponseError as exc:
        raise DevicedbError(node, what, str(exc), http_status=200) from exc


def snapshot_answer(node: str, what: str, uuid: str, http_status: int, body: bytes) -> ddb.SnapshotInfo:
    """A node's answer to ``GET /snapshot/{uuid}``, read the same way by both hooks."""
    if http_status != 200:
        raise answer_error(node, what, http_status, body)
    return parsed_answer(node, what, lambda b: ddb.parse_snapshot(b, expected_uuid=uuid), body)


class DevicedbNodeHookBase(BaseHook):
    """Where one node's HTTP API is and how it is reached: what the sync and async hooks share."""

    conn_name_attr = "ssh_conn_id"

    def __init__(
        self,
        host: str,
        http_port: int = 8080,
        *,
        http_host: str | None = None,
        timeout: float = 30.0,
        ssh_tunnel: bool = False,
        ssh_conn_id: str | None = None,
        ssh_port: int = 22,
    ) -> None:
        super().__init__()
        self.host = host
        self.http_port = http_port
        self.http_host = http_host
        self.timeout = timeout
        self.ssh_tunnel = ssh_tunnel
        self.ssh_conn_id = ssh_conn_id
        self.ssh_port = ssh_port
        self._tunnel: Any = None

    @property
    def node(self) -> str:
        return f"{self.host}:{self.http_port}"


class DevicedbHook(DevicedbNodeHookBase):
    """
    One devicedb node.

    :param host: the node's address (SSH target when tunnelling, HTTP target otherwise).
    :param http_port: the node's cluster HTTP port.
    :param http_host: where the HTTP API listens, if not ``host``; with ``ssh_tunnel`` it is seen
        from the node (default ``localhost``).
    :param timeout: seconds to connect and to wait for each read.
    :param ssh_tunnel: reach the port through the ssh provider's tunnel over ``ssh_conn_id``.
    """

    hook_name = "devicedb node"

    def __init__(self, host: str, http_port: int = 8080, **kwargs: Any) -> None:
        super().__init__(host, http_port, **kwargs)
        self._session = requests.Session()
        self._remote: RemoteCommandHook | None = None
        self._base: str | None = None

    # ---- connection ---------------------------------------------------------------------------

    def base_url(self) -> str:
        if self._base is None:
            if self.ssh_tunnel:
                if not self.ssh_conn_id:
                    raise ValueError("ssh_tunnel: needs an ssh_conn_id to tunnel through")
                self._remote = RemoteCommandHook(ssh_conn_id=self.ssh_conn_id, host=self.host, port=self.ssh_port)
                self._remote.get_conn()  # connects with the remote hook's bounded retries
                tunnel = self._remote.ssh_hook.get_tunnel(
                    remote_port=self.http_port, remote_host=self.http_host or "localhost"
                )
                tunnel.__enter__()
                self._tunnel = tunnel
                self._base = ddb.base_url("127.0.0.1", tunnel.local_bind_port)
                self.log.info("devicedb node %s reached through an SSH tunnel on port %s", self.node, tunnel.local_bind_port)
            else:
                self._base = ddb.base_url(self.http_host or self.host, self.http_port)
        return self._base

    def close(self) -> None:
        self._session.close()
        if self._tunnel is not None:
            with contextlib.suppress(Exception):
                self._tunnel.__exit__(None, None, None)
            self._tunnel = None
        if self._remote is not None:
            self._remote.close()
            self._remote = None
        self._base = None

    def __enter__(self) -> DevicedbHook:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def get_conn(self) -> requests.Session:
        self.base_url()
        return self._session

    def _request(self, method: str, path: str, what: str, *, stream: bool = False, **kwargs: Any) -> requests.Response:
        url = self.base_url() + path
        try:
            return self._session.request(method, url, timeout=(self.timeout, self.timeout), stream=stream, **kwargs)
        except requests.Timeout as exc:
            raise DevicedbUnreachable(
                self.node, what, f"no answer within {self.timeout}s ({exc})", refused=_never_connected(exc)
            ) from exc
        except requests.ConnectionError as exc:
            raise DevicedbUnreachable(self.node, what, f"cannot connect: {exc}", refused=_never_connected(exc)) from exc

    def _fail(self, response: requests.Response, what: str) -> DevicedbError:
        return answer_error(self.node, what, response.status_code, response.content)

    def _parsed(self, what: str, parse, body: bytes):
        return parsed_answer(self.node, what, parse, body)

    # ---- snapshots ----------------------------------------------------------------------------

    def trigger_snapshot(self) -> ddb.SnapshotInfo:
        """POST /snapshot: one cluster snapshot, proposed through the raft log. Never retried here."""
        what = "POST /snapshot"
        response = self._request("POST", ddb.trigger_path(), what)
        if response.status_code != 200:
            raise self._fail(response, what)
        try:
            return ddb.parse_snapshot(response.content)
        except ddb.DevicedbResponseError as exc:
            raise DevicedbError(self.node, what, str(exc), http_status=200) from exc

    def snapshot_status(self, uuid: str) -> ddb.SnapshotInfo:
        what = f"GET /snapshot/{uuid}"
        response = self._request("GET", ddb.status_path(uuid), what)
        return snapshot_answer(self.node, what, uuid, response.status_code, response.content)

    @contextlib.contextmanager
    def open_snapshot_tar(self, uuid: str) -> Iterator[requests.Response]:
        """GET /snapshot/{uuid}.tar as a stream (``response.iter_content``); 404 codes 25/26/27 raise."""
        what = f"GET /snapshot/{uuid}.tar"
        response = self._request("GET", ddb.tar_path(uuid), what, stream=True)
        try:
            if response.status_code != 200:
                raise self._fail(response, what)
            yield response
        finally:
            response.close()

    def download_snapshot_tar(self, uuid: str, target: IO[bytes], *, max_bytes: int, chunk_size: int = 1 << 20) -> TarDownload:
        """Read the node's tar into `target` at the network's speed, hashing it on the way.

        devicedb cuts any response still being written after its 45 s write timeout, so the tar is
        never read at the pace of a slower consumer (S3). It comes chunked, with no Content-Length:
        its completeness is checked afterwards (``ddb.check_snapshot_tar``).
        """
        what = f"GET /snapshot/{uuid}.tar"
        digest = hashlib.sha256()
        size = 0
        started = time.monotonic()
        with self.open_snapshot_tar(uuid) as response:
            try:
                for chunk in response.iter_content(chunk_size=chunk_size):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DevicedbTarTooLarge(
                            self.node, what, f"the tar exceeds spool_max_bytes ({max_bytes} bytes): refused, nothing uploaded"
                        )
                    digest.update(chunk)
                    target.write(chunk)
            except requests.RequestException as exc:  # a broken chunked stream, a reset, a read timeout
                seconds = time.monotonic() - started
                raise DevicedbError(
                    self.node,
                    what,
                    f"the tar stream was cut after {size} bytes, {seconds:.1f}s into the download ({type(exc).__name__}: {exc}); "
                    "devicedb closes a response it is still writing after its write timeout (45 s), "
                    "so the network from the node to this worker is too slow for this tar, or the node went away",
                ) from exc
        return TarDownload(size=size, sha256=digest.hexdigest(), seconds=time.monotonic() - started)

    # ---- data ---------------------------------------------------------------------------------

    def ensure_site(self, site: str) -> None:
        what = f"PUT /sites/{site}"
        response = self._request("PUT", ddb.site_path(site), what)
        if response.status_code != 200:
            raise self._fail(response, what)

    def put_key(self, site: str, bucket: str, key: str, value: str, context: str = "") -> ddb.BatchResult:
        """Write one key; the answer says on how many replicas it was applied (``nApplied``)."""
        what = f"POST /sites/{site}/buckets/{bucket}/batches"
        response = self._request(
            "POST",
            ddb.batches_path(site, bucket),
            what,
            data=json.dumps(ddb.put_batch(key, value, context)),
            headers={"Content-Type": "application/json"},
        )
        if response.status_code != 200:
            raise self._fail(response, what)
        return self._parsed(what, ddb.parse_batch_result, response.content)

    def get_key(self, site: str, bucket: str, key: str) -> list[str]:
        """The sibling values of `key` (``[]`` when it does not exist)."""
        what = f"GET /sites/{site}/buckets/{bucket}/keys?key={key}"
        response = self._request("GET", ddb.keys_path(site, bucket, key), what)
        if response.status_code != 200:
            raise self._fail(response, what)
        try:
            return ddb.parse_key_values(response.content, key)
        except ddb.DevicedbResponseError as exc:
            raise DevicedbError(self.node, what, str(exc), http_status=200) from exc

    def cluster_nodes(self) -> list[ddb.ClusterNode]:
        """The nodes of the cluster overview (the call behind ``devicedb cluster overview``)."""
        what = "GET /cluster"
        response = self._request("GET", "/cluster", what)
        if response.status_code != 200:
            raise self._fail(response, what)
        return self._parsed(what, ddb.parse_cluster_nodes, response.content)

    def membership(self) -> list[str]:
        """Node ids in the cluster overview, sorted."""
        return sorted(n.node_id for n in self.cluster_nodes())

    def node_id(self) -> str | None:
        """This node's id, from the overview entry at its HTTP address (None when none matches)."""
        return ddb.node_id_at(self.cluster_nodes(), self.http_host or self.host, self.http_port)


class DevicedbAsyncHook(DevicedbNodeHookBase):
    """
    The async side of :class:`DevicedbHook`, for triggers: the same node, the same answers and
    errors (aiohttp; the tunnel is the ssh provider's ``SSHHookAsync`` local port forwarding).

    Use it as ``async with``; a tunnel is opened on the first call and, after a call through it
    failed to connect, reopened on the next one. A tunnel that cannot be opened raises
    :class:`RemoteTransportError`, as the sync hook's does.
    """

    hook_name = "devicedb node (async)"

    def __init__(self, host: str, http_port: int = 8080, **kwargs: Any) -> None:
        super().__init__(host, http_port, **kwargs)
        self._session: Any = None

    async def __aenter__(self) -> DevicedbAsyncHook:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        await self._close_tunnel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _close_tunnel(self) -> None:
        tunnel, self._tunnel = self._tunnel, None
        if tunnel is not None:
            with contextlib.suppress(Exception):
                await tunnel.__aexit__(None, None, None)

    async def base_url(self) -> str:
        if not self.ssh_tunnel:
            return ddb.base_url(self.http_host or self.host, self.http_port)
        if self._tunnel is None:
            self._tunnel = await self._open_tunnel()
        return ddb.base_url("localhost", self._tunnel.local_bind_port)

    async def _open_tunnel(self) -> Any:
        # imported here: only the triggerer needs them, not every DAG file that imports this hook
        import asyncssh
        from airflow.providers.ssh.hooks.ssh import SSHHookAsync

        if not self.ssh_conn_id:
            raise ValueError("ssh_tunnel: needs an ssh_conn_id to tunnel through")
        ssh = SSHHookAsync(ssh_conn_id=self.ssh_conn_id, host=self.host, port=self.ssh_port)
        remote = self.http_host or "localhost"
        try:
            # bounded: asyncssh waits for an unanswered SYN as long as the kernel does
            tunnel = await asyncio.wait_for(ssh.get_tunnel(remote_port=self.http_port, remote_host=remote), self.timeout)
            await asyncio.wait_for(tunnel.__aenter__(), self.timeout)
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise RemoteTransportError(
                f"devicedb node {self.node}: cannot open an SSH tunnel through {self.host}:{self.ssh_port} "
                f"to {remote}:{self.http_port}: {type(exc).__name__}: {exc}"
            ) from exc
        self.log.info("devicedb node %s reached through an SSH tunnel on port %s", self.node, tunnel.local_bind_port)
        return tunnel

    async def _get(self, path: str, what: str) -> tuple[int, bytes]:
        import aiohttp

        url = await self.base_url() + path
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.get(url) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            await self._close_tunnel()
            raise DevicedbUnreachable(self.node, what, f"no answer within {self.timeout}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            await self._close_tunnel()  # a tunnel whose SSH connection dropped is reopened next call
            raise DevicedbUnreachable(
                self.node, what, f"cannot connect: {type(exc).__name__}: {exc}",
                refused=isinstance(exc, aiohttp.ClientConnectorError),
            ) from exc

    async def snapshot_status(self, uuid: str) -> ddb.SnapshotInfo:
        what = f"GET /snapshot/{uuid}"
        http_status, body = await self._get(ddb.status_path(uuid), what)
        return snapshot_answer(self.node, what, uuid, http_status, body)


def hook_for_node(
    spec: DevicedbNodeSpec,
    *,
    timeout: float,
    ssh_tunnel: bool,
    ssh_conn_id: str | None,
    hook_class: type[DevicedbHook] | type[DevicedbAsyncHook] = DevicedbHook,
) -> DevicedbHook | DevicedbAsyncHook:
    """The hook for one node described by a node spec (see ``builders/devicedb.py``): sync by
    default, ``hook_class=DevicedbAsyncHook`` in a trigger."""
    return hook_class(
        spec.host,
        spec.http_port,
        http_host=spec.http_host,
        timeout=timeout,
        ssh_tunnel=ssh_tunnel,
        ssh_conn_id=ssh_conn_id,
        ssh_port=spec.ssh_port,
    )
