#!/usr/bin/env python3
"""Simulated devicedb 1.10 node for the sandbox: `devicedb-service start|stop|status|serve`.

`serve` is the node itself: an HTTP server on $SANDBOX_NODE_ADDRESS:<port> that speaks the
documented API (../shared/reference/devicedb.md) letter for letter:

  POST /snapshot                          200 {"uuid":"...","status":"processing"} | 500 plain text
  GET  /snapshot/{uuid}                   200 {"uuid":"...","status":"processing|completed|missing|failed"}
                                          | 500 "No snapshot directory configured" (no -snapshot_store)
  GET  /snapshot/{uuid}.tar               200 chunked tar of the node's LevelDB files, no Content-Length
                                          | 404 {"message":...,"code":25|26|27} | 500 code 3 (no store)
  PUT  /sites/{site}                      200
  POST /sites/{site}/buckets/{b}/batches  200 {"nApplied":N,"replicas":R,"Quorum":..,"patch":null} | 404
  GET  /sites/{site}/buckets/{b}/keys?key=k  200 [{"prefix":"","key":"k","context":"...","siblings":["v"]}]
  GET  /cluster                           200 the cluster overview (node ids come from the store)

The node's store is a real folder of LevelDB-like files (CURRENT, LOCK, LOG, MANIFEST-000001,
000001.log); node id and membership live in it, so a restore that replaces the folder brings them
back. A cluster snapshot is proposed to every peer (the sandbox's stand-in for the raft log): it
commits only while a majority of the nodes answers (without quorum the POST never answers, and the
proposal commits later, when quorum returns); a node that was down gets it when it is back. Each
node copies its store into <snapshot_store>/snapshot-<uuid>-<nodeID>/ and writes the snapshot
marker after `snapshot_delay` seconds (processing -> completed).

Like the real server (Go's http.Server with a 45 s WriteTimeout) every response must be written
within `write_timeout` seconds of its request: a tar read more slowly is cut mid-stream (the
client sees a broken chunked stream).

Config: $SANDBOX_NODE_ROOT/state/devicedb/config.json, or `serve -conf FILE`: a second node on the
same machine (a restore drill's scratch node) from its own config, with its knobs beside that file
and no pid file of the service's (`start`/`stop`/`status` stay the live node's). The config's
`peers` are the nodes this node may talk to: a store's members that are not among them (a restored
store names the live cluster's nodes) are never contacted, so `"peers": []` is a single-node
cluster that reads what its store holds. Knobs (read on every request):
$SANDBOX_NODE_ROOT/state/devicedb/knobs.json
  {"snapshot": "failed" | "missing" | null,   this node fails its snapshots / never applies them
   "no_snapshot_store": true,                 as if started without -snapshot_store
   "apply_delay": seconds,                    the node applies the snapshot entry late (missing until then)
   "site_delay": seconds,                     the node applies a new site late (writes miss it until then)
   "start_fails": N,                          the next N `start` commands fail
   "snapshot_delay": seconds,                 overrides the config's delay
   "write_timeout": seconds}                  the server's write timeout (default 45, as devicedb's)
A node that is down is simply a stopped service (`devicedb-service stop`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid as uuidlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(os.environ.get("SANDBOX_NODE_ROOT", "."))
STATE = ROOT / "state" / "devicedb"
CONFIG = STATE / "config.json"
KNOBS = STATE / "knobs.json"
PIDFILE = STATE / "devicedb.pid"
SERVICE_LOG = STATE / "service.log"
LEVELDB_LOG = "000001.log"
MANIFEST = "MANIFEST-000001"
STORE_FILES = ("000001.log", "CURRENT", "LOCK", "LOG", MANIFEST)
WRITE_TIMEOUT = 45.0
TAR_CHUNK = 256 * 1024


def load_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def config(path: Path = CONFIG) -> dict:
    data = load_json(path, None)
    if data is None:
        sys.stderr.write(f"devicedb: no configuration at {path}\n")
        sys.exit(2)
    return data


def knobs() -> dict:
    return load_json(KNOBS, {})


def use_config_file(path: Path) -> None:
    """`serve -conf FILE`: that node's knobs are beside its config, not the service's."""
    global KNOBS
    KNOBS = path.parent / "knobs.json"


# ---- the store ------------------------------------------------------------------------------------


class Store:
    """A folder of LevelDB-like files. Records are JSON lines in 000001.log."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()

    def initialize(self, node_id: str, members: list[dict], cfg: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / MANIFEST).exists():
            return
        (self.path / "CURRENT").write_text(f"{MANIFEST}\n")
        (self.path / "LOCK").write_text("")
        (self.path / "LOG").write_text("")
        (self.path / LEVELDB_LOG).write_text("")
        manifest = {
            "node_id": node_id,
            "members": members,
            "replication_factor": cfg.get("replication_factor", 3),
            "partitions": cfg.get("partitions", 1024),
        }
        (self.path / MANIFEST).write_text(json.dumps(manifest))
        self.log(f"initialized store for node {node_id}")

    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())

    def log(self, line: str) -> None:
        with open(self.path / "LOG", "a") as fh:
            fh.write(f"{time.strftime('%Y/%m/%d-%H:%M:%S')} {line}\n")

    def append(self, records: list[dict]) -> None:
        with self.lock, open(self.path / LEVELDB_LOG, "a") as fh:
            for record in records:
                fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def records(self) -> list[dict]:
        with self.lock:
            text = (self.path / LEVELDB_LOG).read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def sites(self) -> set[str]:
        return {r["site"] for r in self.records() if r.get("op") == "site"}

    def get(self, site: str, bucket: str, key: str) -> dict | None:
        found = None
        for record in self.records():
            if record.get("op") == "put" and (record["site"], record["bucket"], record["key"]) == (site, bucket, key):
                found = record
        return found

    def copy_to(self, target: Path) -> None:
        """A point-in-time copy of the store's files (what a LevelDB snapshot iterator gives):
        the five files of a small store, and the NNNNNN.ldb tables / NNNNNN.log of a bigger one."""
        target.mkdir(parents=True, exist_ok=True)
        with self.lock:
            for path in sorted(self.path.iterdir()):
                if path.is_file():
                    shutil.copy2(path, target / path.name)


def tar_chunks(folder: Path):
    """The tar devicedb streams: flat members, mode 0644, uid/gid 0, mtime 0, two zero blocks at the
    end (Go's archive/tar: no padding to a record size), written as the files are read."""
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        info = tarfile.TarInfo(path.name)
        info.size, info.mode, info.uid, info.gid, info.mtime = path.stat().st_size, 0o644, 0, 0, 0
        yield info.tobuf(format=tarfile.USTAR_FORMAT)
        with open(path, "rb") as fh:
            yield from iter(lambda: fh.read(TAR_CHUNK), b"")
        if info.size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


# ---- the node -------------------------------------------------------------------------------------


class Node:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.store = Store(Path(cfg["store"]))
        self.snapshot_store = Path(cfg["snapshot_store"]) if cfg.get("snapshot_store") else None
        self.in_progress: dict[str, float] = {}
        self.lock = threading.Lock()
        members = [{"id": p["id"], "host": p["host"], "port": p["port"]} for p in cfg["peers"]]
        # the nodes this one may talk to (by address): a restored store's other members are not
        self.reachable = {(str(p["host"]), int(p["port"])) for p in cfg["peers"]}
        self.store.initialize(cfg.get("node_id") or str(random.randrange(10**18, 2**63)), members, cfg)
        manifest = self.store.manifest()
        self.node_id = manifest["node_id"]
        # the raft stand-in: proposals waiting for quorum; committed entries a peer has not got yet
        self.pending: list[str] = []
        self.owed: set[tuple[str, str]] = set()
        self.committed = threading.Condition(self.lock)
        threading.Thread(target=self._raft_loop, daemon=True).start()

    def peers(self) -> list[dict]:
        return [
            m
            for m in self.store.manifest()["members"]
            if str(m["id"]) != str(self.node_id) and (str(m["host"]), int(m["port"])) in self.reachable
        ]

    def delay(self) -> float:
        return float(knobs().get("snapshot_delay", self.cfg.get("snapshot_delay", 1.0)))

    def storeless(self) -> bool:
        return self.snapshot_store is None or bool(knobs().get("no_snapshot_store"))

    def folder(self, snap_uuid: str) -> Path:
        return self.snapshot_store / f"snapshot-{snap_uuid}-{self.node_id}"

    # -- the raft stand-in
    def quorum(self) -> bool:
        peers = self.peers()
        up = 1 + sum(1 for peer in peers if forward(peer, "GET", "/internal/ping", timeout=0.5))
        return up > (len(peers) + 1) // 2

    def commit(self, snap_uuid: str) -> None:
        with self.lock:
            if snap_uuid not in self.pending:
                return
            self.pending.remove(snap_uuid)
        self.apply_snapshot(snap_uuid)
        for peer in self.peers():
            if not forward(peer, "POST", f"/internal/apply_snapshot/{snap_uuid}"):
                with self.lock:
                    self.owed.add((str(peer["id"]), snap_uuid))
        with self.lock:
            self.committed.notify_all()

    def _raft_loop(self) -> None:
        while True:
            time.sleep(0.3)
            with self.lock:
                pending, owed = list(self.pending), set(self.owed)
            if pending and self.quorum():
                for snap_uuid in pending:
                    self.store.log(f"snapshot {snap_uuid}: quorum is back, committing")
                    self.commit(snap_uuid)
            peers = {str(p["id"]): p for p in self.peers()}
            for peer_id, snap_uuid in owed:
                if peer_id in peers and forward(peers[peer_id], "POST", f"/internal/apply_snapshot/{snap_uuid}"):
                    with self.lock:
                        self.owed.discard((peer_id, snap_uuid))

    # -- snapshots
    def propose_snapshot(self, wait: float) -> tuple[int, str, str] | None:
        """None: no quorum within `wait` seconds; the request is never answered (the proposal stays
        in the log and commits once quorum returns, as on a real cluster)."""
        snap_uuid = str(uuidlib.uuid4())
        with self.lock:
            self.pending.append(snap_uuid)
        if self.quorum():
            self.commit(snap_uuid)
        else:
            self.store.log(f"snapshot {snap_uuid}: proposed, no quorum")
            deadline = time.monotonic() + wait
            with self.lock:
                while snap_uuid in self.pending and time.monotonic() < deadline:
                    self.committed.wait(timeout=0.2)
                if snap_uuid in self.pending:
                    return None
        body = json.dumps({"uuid": snap_uuid, "status": "processing"})
        return 200, "application/json; charset=utf8", body + "\n"

    def apply_snapshot(self, snap_uuid: str) -> None:
        late = float(knobs().get("apply_delay", 0))
        if late > 0:
            self.store.log(f"snapshot {snap_uuid}: entry applied in {late}s")
            timer = threading.Timer(late, self._apply_snapshot, args=(snap_uuid,))
            timer.daemon = True
            timer.start()
            return
        self._apply_snapshot(snap_uuid)

    def _apply_snapshot(self, snap_uuid: str) -> None:
        mode = knobs().get("snapshot")
        if mode == "missing" or self.storeless():
            self.store.log(f"snapshot {snap_uuid}: entry not applied")
            return
        target = self.folder(snap_uuid)
        with self.lock:
            if target.exists() or snap_uuid in self.in_progress:
                return  # a redelivered entry
            self.in_progress[snap_uuid] = time.monotonic() + self.delay()  # processing while it copies
        self.store.log(f"snapshot {snap_uuid}: copying store")
        self.store.copy_to(target)

        def finish() -> None:
            if mode != "failed":
                with open(target / LEVELDB_LOG, "a") as fh:
                    fh.write(json.dumps({"op": "snapshot-marker", "uuid": snap_uuid}) + "\n")
            with self.lock:
                self.in_progress.pop(snap_uuid, None)
            self.store.log(f"snapshot {snap_uuid}: {'marker not written' if mode == 'failed' else 'completed'}")

        timer = threading.Timer(self.delay(), finish)
        timer.daemon = True
        timer.start()

    def snapshot_status(self, snap_uuid: str) -> str:
        with self.lock:
            if snap_uuid in self.in_progress:
                return "processing"
        if self.snapshot_store is None:
            return "missing"
        target = self.folder(snap_uuid)
        if not (target / "CURRENT").is_file() or not (target / LEVELDB_LOG).is_file():
            return "missing"
        for line in (target / LEVELDB_LOG).read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                return "failed"
            if record.get("op") == "snapshot-marker" and record.get("uuid") == snap_uuid:
                return "completed"
        return "failed"

    def snapshot_tar(self, snap_uuid: str) -> Path | tuple[int, str, int]:
        if self.storeless():
            return (500, "The storage driver experienced an error", 3)
        status = self.snapshot_status(snap_uuid)
        if status == "processing":
            return (404, "The specified snapshot is still in progress", 25)
        if status == "failed":
            return (404, "The snapshot could be opened, but it appears to be incomplete or invalid.", 27)
        if status != "completed":
            return (404, "The snapshot could not be opened.", 26)
        return self.folder(snap_uuid)

    # -- data
    def add_site(self, site: str, forwarded: bool) -> None:
        late = float(knobs().get("site_delay", 0)) if forwarded else 0
        if late > 0 and site not in self.store.sites():
            timer = threading.Timer(late, self.add_site, args=(site, False))
            timer.daemon = True
            timer.start()
            return
        if site not in self.store.sites():
            self.store.append([{"op": "site", "site": site}])
        if not forwarded:
            for peer in self.peers():
                forward(peer, "PUT", f"/sites/{urllib.parse.quote(site, safe='')}?forwarded=1")

    def write_batch(self, site: str, bucket: str, ops: list, forwarded: bool) -> dict:
        records = []
        for op in ops:
            if op.get("type") not in ("put", "delete"):
                raise ValueError("An invalid operation was specified")
            records.append(
                {
                    "op": "put",
                    "site": site,
                    "bucket": bucket,
                    "key": op["key"],
                    "value": op.get("value") if op["type"] == "put" else None,
                    "context": op.get("context") or "",
                    "clock": op.get("clock") or time.time_ns(),
                }
            )
        self.store.append(records)
        applied = 1
        if not forwarded:
            for peer in self.peers():
                if forward(peer, "POST", "/internal/replicate", {"site": site, "bucket": bucket, "records": records}):
                    applied += 1
        replicas = len(self.peers()) + 1
        return {"nApplied": applied, "replicas": replicas, "Quorum": applied > replicas // 2, "patch": None}

    def overview(self) -> dict:
        manifest = self.store.manifest()
        nodes = [
            {
                "Address": {"NodeID": int(m["id"]), "Host": m["host"], "Port": int(m["port"])},
                "Capacity": 1,
                "Tokens": {},
                "PartitionReplicas": {},
            }
            for m in sorted(manifest["members"], key=lambda m: int(m["id"]))
        ]
        return {
            "Nodes": nodes,
            "ClusterSettings": {
                "ReplicationFactor": manifest["replication_factor"],
                "Partitions": manifest["partitions"],
            },
            "PartitionDistribution": [],
            "TokenAssignments": [],
        }


def forward(peer: dict, method: str, path: str, body: object = None, timeout: float = 3) -> bool:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{peer['host']}:{peer['port']}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def db_error(message: str, code: int) -> str:
    return json.dumps({"message": message, "code": code}) + "\n"


class Handler(BaseHTTPRequestHandler):
    node: Node
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet; the store's LOG records what matters
        pass

    def parse_request(self) -> bool:
        # Go's WriteTimeout runs from the end of the request headers
        self.deadline = time.monotonic() + float(knobs().get("write_timeout", WRITE_TIMEOUT))
        return super().parse_request()

    def cut(self, why: str) -> None:
        """What Go does past the write deadline: the connection is closed mid-response."""
        self.node.store.log(f"{self.command} {self.path}: {why}")
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def stream_tar(self, folder: Path) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in tar_chunks(folder):
            left = self.deadline - time.monotonic()
            if left <= 0:
                return self.cut("write timeout, tar cut")
            self.connection.settimeout(left)
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:  # socket.timeout included: the reader is too slow
                return self.cut("write timeout, tar cut")
        self.connection.settimeout(None)
        self.wfile.write(b"0\r\n\r\n")

    def reply(self, status: int, body: str | bytes, content_type: str = "application/json; charset=utf8") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def route(self):
        parsed = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in parsed.path.strip("/").split("/")]
        return parts, urllib.parse.parse_qs(parsed.query)

    def do_POST(self):  # noqa: N802
        parts, query = self.route()
        payload = self.body()
        node = self.node
        if parts == ["snapshot"]:
            answer = node.propose_snapshot(wait=max(0.0, self.deadline - time.monotonic()))
            if answer is None:
                return self.cut("POST /snapshot: The request was cancelled")
            self.reply(*_swap(answer))
        elif len(parts) == 3 and parts[:2] == ["internal", "apply_snapshot"]:
            node.apply_snapshot(parts[2])
            self.reply(200, "\n")
        elif parts == ["internal", "replicate"]:
            data = json.loads(payload)
            if data["site"] not in node.store.sites():
                self.reply(404, db_error("The specified site does not exist at this node", 20))
                return
            node.store.append(data["records"])
            self.reply(200, "\n")
        elif len(parts) == 5 and parts[0] == "sites" and parts[2] == "buckets" and parts[4] == "batches":
            site, bucket = parts[1], parts[3]
            if site not in node.store.sites():
                self.reply(404, db_error("The specified site does not exist at this node.", 20))
                return
            if bucket not in ("default", "lww", "cloud", "local"):
                self.reply(404, db_error("The site does not contain the specified bucket.", 22))
                return
            try:
                ops = json.loads(payload)
                if not isinstance(ops, list):
                    raise ValueError
                result = node.write_batch(site, bucket, ops, forwarded=False)
            except (ValueError, KeyError, TypeError):
                self.reply(400, db_error("An invalid batch was specified", 7))
                return
            self.reply(200, json.dumps(result) + "\n")
        else:
            self.reply(404, "404 page not found\n", "text/plain; charset=utf-8")

    def do_PUT(self):  # noqa: N802
        parts, query = self.route()
        self.body()
        if len(parts) == 2 and parts[0] == "sites":
            self.node.add_site(parts[1], forwarded="forwarded" in query)
            self.reply(200, "\n")
        else:
            self.reply(404, "404 page not found\n", "text/plain; charset=utf-8")

    def do_GET(self):  # noqa: N802
        parts, query = self.route()
        node = self.node
        if len(parts) == 2 and parts[0] == "snapshot" and parts[1].endswith(".tar"):
            result = node.snapshot_tar(parts[1][: -len(".tar")])
            if isinstance(result, tuple):
                self.reply(result[0], db_error(*result[1:]))
            else:
                self.stream_tar(result)
        elif parts == ["internal", "ping"]:
            self.reply(200, "\n")
        elif len(parts) == 2 and parts[0] == "snapshot":
            if node.storeless():
                self.reply(500, "No snapshot directory configured\n", "text/plain; charset=utf-8")
                return
            status = node.snapshot_status(parts[1])
            self.reply(200, json.dumps({"uuid": parts[1], "status": status}) + "\n")
        elif parts == ["cluster"]:
            self.reply(200, json.dumps(node.overview()) + "\n")
        elif len(parts) == 5 and parts[0] == "sites" and parts[2] == "buckets" and parts[4] == "keys":
            site, bucket = parts[1], parts[3]
            if site not in node.store.sites():
                self.reply(404, db_error("The specified site does not exist at this node.", 20))
                return
            entries = []
            for key in query.get("key", []):
                record = node.store.get(site, bucket, key)
                if record is None or record["value"] is None:
                    entries.append(None)
                else:
                    context = f"{node.node_id}:{record['clock']}"
                    entries.append({"prefix": "", "key": key, "context": context, "siblings": [record["value"]]})
            self.reply(200, json.dumps(entries) + "\n")
        else:
            self.reply(404, "404 page not found\n", "text/plain; charset=utf-8")


def _swap(result):
    status, content_type, body = result
    return status, body, content_type


# ---- the service ----------------------------------------------------------------------------------


def running_pid() -> int | None:
    try:
        pid = int(PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # a zombie or a recycled pid is not our server
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"devicedb-service" in cmdline and b"serve" in cmdline else None


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def cmd_serve(config_file: Path | None = None) -> int:
    if config_file is not None:
        use_config_file(config_file)
    cfg = config(config_file or CONFIG)
    node = Node(cfg)
    Handler.node = node
    try:
        server = ThreadingHTTPServer((cfg["address"], int(cfg["port"])), Handler)
    except OSError as exc:  # as devicedb: it exits when its port is taken
        sys.stderr.write(f"Error listening on port {cfg['address']}:{cfg['port']}: {exc.strerror}\n")
        return 1
    server.daemon_threads = True
    if config_file is None:  # a second node from its own config is not the service
        PIDFILE.write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    node.store.log(f"node {node.node_id} serving on {cfg['address']}:{cfg['port']}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        node.store.log(f"node {node.node_id} stopped")
    return 0


def cmd_start() -> int:
    cfg = config()
    state = knobs()
    if int(state.get("start_fails", 0)) > 0:
        state["start_fails"] = int(state["start_fails"]) - 1
        KNOBS.write_text(json.dumps(state))
        sys.stderr.write("devicedb: failed to start: the store could not be opened\n")
        return 1
    if running_pid():
        print("devicedb is already running")
        return 0
    log = open(SERVICE_LOG, "ab")
    subprocess.Popen(
        [sys.executable, str(Path(sys.argv[0]).resolve()), "serve"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if running_pid() and listening(cfg["address"], int(cfg["port"])):
            print("devicedb started")
            return 0
        time.sleep(0.05)
    sys.stderr.write("devicedb: did not start listening within 15s\n")
    return 1


def cmd_stop() -> int:
    pid = running_pid()
    if pid is None:
        print("devicedb is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if not Path(f"/proc/{pid}").exists() or b"Z" in _proc_state(pid):
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    PIDFILE.unlink(missing_ok=True)
    print("devicedb stopped")
    return 0


def _proc_state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3]
    except OSError:
        return b"Z"


def cmd_status() -> int:
    if running_pid():
        print("active")
        return 0
    print("inactive")
    return 3


def main(argv: list[str]) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    commands = {"serve": cmd_serve, "start": cmd_start, "stop": cmd_stop, "status": cmd_status}
    if len(argv) == 3 and argv[:2] == ["serve", "-conf"]:
        return cmd_serve(Path(argv[2]))
    if len(argv) != 1 or argv[0] not in commands:
        sys.stderr.write("usage: devicedb-service start|stop|status|serve [-conf FILE]\n")
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    random.seed()
    sys.exit(main(sys.argv[1:]))
