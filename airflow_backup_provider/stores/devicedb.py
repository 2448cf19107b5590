"""devicedb 1.10 cluster snapshots: URLs, response parsers, the status verdict, the manifest.

Pure functions only (no Airflow, no I/O), written against the documented HTTP API:

- ``POST /snapshot`` (any node) -> 200 ``{"uuid":"...","status":"processing"}``; 500 plain text.
- ``GET /snapshot/{uuid}`` (each node) -> 200 ``{"uuid":"...","status":S}``,
  S in ``processing``, ``completed``, ``missing``, ``failed``.
- ``GET /snapshot/{uuid}.tar`` (each node) -> 200 tar (LevelDB files, no folder prefix), or 404
  ``{"message":"...","code":C}`` with C 25 (in progress), 26 (open failed), 27 (read failed).
- ``PUT /sites/{site}``; ``POST /sites/{site}/buckets/{bucket}/batches``;
  ``GET /sites/{site}/buckets/{bucket}/keys?key=k``.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any
from urllib.parse import quote, urlencode

from airflow_backup_provider import names
from airflow_backup_provider.dates import parse_instant
from airflow_backup_provider.names import cluster_prefix
from airflow_backup_provider.retention import BackupItem

PROCESSING = "processing"
COMPLETED = "completed"
MISSING = "missing"
FAILED = "failed"
SNAPSHOT_STATUSES = (PROCESSING, COMPLETED, MISSING, FAILED)
# Not devicedb statuses: what the poller records when a node did not answer at all, and when it
# answered the status call with 500 "No snapshot directory configured" (started without
# -snapshot_store: it will never take the snapshot, so waiting for it is pointless).
UNREACHABLE = "unreachable"
NO_SNAPSHOT_STORE = "no snapshot store"
NO_SNAPSHOT_STORE_TEXT = "No snapshot directory configured"

SNAPSHOT_IN_PROGRESS = 25
SNAPSHOT_OPEN_FAILED = 26
SNAPSHOT_READ_FAILED = 27
SNAPSHOT_ERROR_CODES = {
    SNAPSHOT_IN_PROGRESS: "snapshot in progress",
    SNAPSHOT_OPEN_FAILED: "snapshot could not be opened",
    SNAPSHOT_READ_FAILED: "snapshot could not be read",
}

BUCKETS = ("default", "lww", "cloud", "local")
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "airflow-backup-provider/devicedb-snapshot/1"


class DevicedbResponseError(ValueError):
    """A devicedb node answered something this code does not understand."""


@dataclass(frozen=True)
class SnapshotInfo:
    uuid: str
    status: str


@dataclass(frozen=True)
class DevicedbErrorBody:
    message: str
    code: int | None

    @property
    def meaning(self) -> str:
        return SNAPSHOT_ERROR_CODES.get(self.code or -1, "error")

    def __str__(self) -> str:
        code = f"code {self.code}" if self.code is not None else "no code"
        return f"{self.message} ({code}: {self.meaning})" if self.code in SNAPSHOT_ERROR_CODES else f"{self.message} ({code})"


# ---- names and URLs -------------------------------------------------------------------------------


check_uuid = names.check_uuid  # a snapshot UUID (never reaches a URL or a shell unchecked)
check_segment = names.check_url_segment  # a site, bucket or key used in a URL path


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def trigger_path() -> str:
    return "/snapshot"


def status_path(uuid: str) -> str:
    return f"/snapshot/{check_uuid(uuid)}"


def tar_path(uuid: str) -> str:
    return f"/snapshot/{check_uuid(uuid)}.tar"


def site_path(site: str) -> str:
    return f"/sites/{quote(check_segment(site, 'site'), safe='')}"


def batches_path(site: str, bucket: str) -> str:
    return f"{site_path(site)}/buckets/{quote(check_bucket(bucket), safe='')}/batches"


def keys_path(site: str, bucket: str, key: str) -> str:
    query = urlencode({"key": check_segment(key, "key")})
    return f"{site_path(site)}/buckets/{quote(check_bucket(bucket), safe='')}/keys?{query}"


def check_bucket(bucket: str) -> str:
    if bucket not in BUCKETS:
        raise ValueError(f"bucket: value {bucket!r} is not one of {list(BUCKETS)}")
    return bucket


def put_batch(key: str, value: str, context: str = "") -> list[dict[str, str]]:
    """The body of a batch that writes one key."""
    return [{"type": "put", "key": check_segment(key, "key"), "value": value, "context": context}]


# ---- parsers --------------------------------------------------------------------------------------


def _json(body: bytes | str, what: str) -> Any:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DevicedbResponseError(f"{what}: not JSON: {text[:200]!r}") from exc


def parse_snapshot(body: bytes | str, *, expected_uuid: str | None = None) -> SnapshotInfo:
    """``{"uuid":"...","status":"..."}`` as returned by POST /snapshot and GET /snapshot/{uuid}."""
    data = _json(body, "snapshot response")
    if not isinstance(data, dict) or not isinstance(data.get("uuid"), str) or not isinstance(data.get("status"), str):
        raise DevicedbResponseError(f"snapshot response: expected uuid and status, got {data!r}")
    status = data["status"]
    if status not in SNAPSHOT_STATUSES:
        raise DevicedbResponseError(f"snapshot response: unknown status {status!r} (expected one of {list(SNAPSHOT_STATUSES)})")
    uuid = check_uuid(data["uuid"], "snapshot response uuid")
    if expected_uuid is not None and uuid != check_uuid(expected_uuid):
        raise DevicedbResponseError(f"snapshot response: asked for {expected_uuid}, the node answered for {uuid}")
    return SnapshotInfo(uuid=uuid, status=status)


def parse_error_body(body: bytes | str) -> DevicedbErrorBody:
    """``{"message":"...","code":N}``; a plain-text body (POST /snapshot's 500) becomes its message."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    try:
        data = json.loads(text)
    except ValueError:
        return DevicedbErrorBody(message=text.strip()[:500] or "(empty body)", code=None)
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        code = data.get("code")
        return DevicedbErrorBody(message=data["message"], code=code if isinstance(code, int) else None)
    return DevicedbErrorBody(message=text.strip()[:500], code=None)


def status_error_kind(http_status: int | None, body: bytes | str) -> str:
    """What a status call that did not answer 200 means: ``NO_SNAPSHOT_STORE`` for the 500 of a
    node started without -snapshot_store (final), ``UNREACHABLE`` for anything else (may pass)."""
    if http_status == 500 and parse_error_body(body).message.startswith(NO_SNAPSHOT_STORE_TEXT):
        return NO_SNAPSHOT_STORE
    return UNREACHABLE


@dataclass(frozen=True)
class BatchResult:
    """A batch write's answer: on how many of the replicas it was applied."""

    applied: int
    replicas: int
    quorum: bool

    @property
    def everywhere(self) -> bool:
        return self.applied >= self.replicas


def parse_batch_result(body: bytes | str) -> BatchResult:
    """``{"nApplied":N,"replicas":R,"Quorum":true|false,"patch":null}``."""
    data = _json(body, "batch response")
    if not isinstance(data, dict) or not isinstance(data.get("nApplied"), int) or not isinstance(data.get("replicas"), int):
        raise DevicedbResponseError(f"batch response: expected nApplied and replicas, got {str(data)[:200]!r}")
    quorum = data.get("Quorum")
    return BatchResult(
        applied=data["nApplied"],
        replicas=data["replicas"],
        quorum=bool(quorum) if isinstance(quorum, bool) else data["nApplied"] > data["replicas"] // 2,
    )


def parse_key_values(body: bytes | str, key: str) -> list[str]:
    """The sibling values of `key` from GET .../keys?key=k (``[]`` when the key does not exist)."""
    data = _json(body, "keys response")
    if not isinstance(data, list):
        raise DevicedbResponseError(f"keys response: expected a list, got {data!r}")
    values: list[str] = []
    for entry in data:
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise DevicedbResponseError(f"keys response: unexpected entry {entry!r}")
        if entry.get("key") == key:
            values.extend(str(v) for v in entry.get("siblings") or [] if v is not None)
    return values


@dataclass(frozen=True)
class ClusterNode:
    node_id: str  # decimal uint64 (can exceed 2**63: kept as text)
    host: str | None
    port: int | None


def parse_cluster_nodes(body: bytes | str) -> list[ClusterNode]:
    """The nodes of the cluster overview that ``devicedb cluster overview`` prints (GET /cluster)."""
    data = _json(body, "cluster overview")
    nodes = data.get("Nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list):
        raise DevicedbResponseError(f"cluster overview: no Nodes list in {str(data)[:200]!r}")
    found: list[ClusterNode] = []
    for node in nodes:
        address = node.get("Address") if isinstance(node, dict) else None
        node_id = None
        if isinstance(address, dict):
            node_id = address.get("NodeID", address.get("nodeID", address.get("id")))
        if node_id is None and isinstance(node, dict):
            node_id = node.get("NodeID", node.get("id"))
        if node_id is None:
            raise DevicedbResponseError(f"cluster overview: a node without an id: {str(node)[:200]!r}")
        address = address if isinstance(address, dict) else {}
        port = address.get("Port")
        found.append(
            ClusterNode(
                node_id=str(node_id),
                host=address.get("Host") if isinstance(address.get("Host"), str) else None,
                port=port if isinstance(port, int) else None,
            )
        )
    return found


def node_id_at(nodes: Sequence[ClusterNode], host: str, port: int) -> str | None:
    """The id of the overview's node at ``host:port`` (None when no single node matches)."""
    matches = {n.node_id for n in nodes if n.host == host and n.port == port}
    return matches.pop() if len(matches) == 1 else None


# ---- the nodes' snapshot folders ------------------------------------------------------------------

_SNAPSHOT_FOLDER_RE = names.whole(rf"snapshot-({names.UUID})-({names.DEVICEDB_NODE_ID})")


@dataclass(frozen=True)
class SnapshotFolder:
    name: str
    uuid: str
    node_id: str


def parse_snapshot_folders(listed: Iterable[str]) -> list[SnapshotFolder]:
    """The snapshot folders among the names listed in a snapshot store (anything else ignored)."""
    found = []
    for name in listed:
        match = _SNAPSHOT_FOLDER_RE.match(name.strip().rstrip("/"))
        if match:
            found.append(SnapshotFolder(name=match.group(0), uuid=match.group(1).lower(), node_id=match.group(2)))
    return sorted(found, key=lambda f: f.name)


def folder_to_remove(folders: Sequence[SnapshotFolder], uuid: str, node_id: str | None) -> SnapshotFolder | None:
    """Which of a store's folders is this node's copy of `uuid`: the one with the node's id, or,
    when the id is unknown, the only folder of that snapshot (None when it cannot be told)."""
    uuid = check_uuid(uuid)
    of_snapshot = [f for f in folders if f.uuid == uuid]
    if node_id is not None:
        return next((f for f in of_snapshot if f.node_id == str(node_id)), None)
    return of_snapshot[0] if len(of_snapshot) == 1 else None


def new_snapshots(before: Iterable[str], after: Iterable[SnapshotFolder]) -> list[str]:
    """The snapshot UUIDs whose folders appeared since the listing `before` (UUIDs seen then)."""
    known = {u.lower() for u in before}
    return sorted({f.uuid for f in after if f.uuid not in known})


# ---- the verdict over every node's status ---------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """``completed`` (every node done), ``waiting`` (poke again) or ``failed`` (stop now)."""

    state: str
    reason: str
    statuses: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state == COMPLETED


def judge_snapshot(
    statuses: Mapping[str, str],
    *,
    triggered_at: datetime,
    now: datetime,
    missing_grace: timedelta,
    errors: Mapping[str, str] | None = None,
) -> Verdict:
    """
    What every node's status means for the cluster snapshot.

    - any ``failed``: failed at once (the node opened its snapshot and the marker is wrong);
    - ``missing`` or no answer: tolerated while ``now - triggered_at <= missing_grace`` (the node
      may not have applied the raft entry yet, or is restarting), a failure after that;
    - ``processing``: keep waiting (the sensor's own timeout bounds this);
    - every node ``completed``: done.
    """
    errors = dict(errors or {})
    statuses = dict(statuses)
    failed = sorted(n for n, s in statuses.items() if s == FAILED)
    if failed:
        return Verdict(FAILED, f"snapshot failed on {', '.join(failed)}", statuses)
    unknown = sorted(n for n, s in statuses.items() if s not in (*SNAPSHOT_STATUSES, UNREACHABLE, NO_SNAPSHOT_STORE))
    if unknown:
        return Verdict(FAILED, f"unknown status on {', '.join(unknown)}: " + ", ".join(statuses[n] for n in unknown), statuses)
    storeless = sorted(n for n, s in statuses.items() if s == NO_SNAPSHOT_STORE)
    if storeless:
        detail = "; ".join(f"{n}: {errors.get(n, NO_SNAPSHOT_STORE_TEXT)}" for n in storeless)
        return Verdict(
            FAILED, f"no snapshot store on {', '.join(storeless)} (started without -snapshot_store): {detail}", statuses
        )
    late = sorted(n for n, s in statuses.items() if s in (MISSING, UNREACHABLE))
    if late:
        waited = now - triggered_at
        detail = ", ".join(
            f"{n} ({statuses[n]}{': ' + errors[n] if n in errors else ''})" for n in late
        )
        if waited > missing_grace:
            return Verdict(
                FAILED,
                f"still missing after the grace period of {missing_grace} (waited {waited}): {detail}",
                statuses,
            )
        return Verdict("waiting", f"within the grace period of {missing_grace}: {detail}", statuses)
    processing = sorted(n for n, s in statuses.items() if s == PROCESSING)
    if processing:
        return Verdict("waiting", f"processing on {', '.join(processing)}", statuses)
    return Verdict(COMPLETED, f"completed on all {len(statuses)} nodes", statuses)


# ---- where things go in S3 ------------------------------------------------------------------------


def node_labels(nodes: Sequence[tuple[str, int]]) -> list[str]:
    """A file-name-safe label per node: its host, or ``host-port`` when a host serves several nodes."""
    hosts = [host for host, _ in nodes]
    labels = [host if hosts.count(host) == 1 else f"{host}-{port}" for host, port in nodes]
    return [label.replace(":", "_") for label in labels]


def snapshot_prefix(prefix: str, cluster: str, uuid: str) -> str:
    return f"{cluster_prefix(prefix, cluster)}{check_uuid(uuid)}/"


def node_tar_key(prefix: str, cluster: str, uuid: str, node_label: str) -> str:
    return f"{snapshot_prefix(prefix, cluster, uuid)}{node_label}.tar"


def manifest_key(prefix: str, cluster: str, uuid: str) -> str:
    return f"{snapshot_prefix(prefix, cluster, uuid)}{MANIFEST_NAME}"


def run_record_key(prefix: str, cluster: str, logical_date: datetime) -> str:
    """Where the trigger records the UUID it took for one logical date (idempotent trigger)."""
    return f"{cluster_prefix(prefix, cluster)}_runs/{logical_date.strftime('%Y%m%dT%H%M%SZ')}.json"


def uuid_from_key(prefix: str, cluster: str, key: str) -> str | None:
    """The snapshot UUID a listed key belongs to, or None for anything else under the prefix."""
    base = cluster_prefix(prefix, cluster)
    if not key.startswith(base):
        return None
    first = key[len(base) :].split("/", 1)[0]
    return first.lower() if names.UUID_RE.match(first) else None


def check_key_value(cluster: str, logical_date: datetime, nonce: str) -> str:
    """The value written to the check key before a snapshot: unique per backup."""
    return f"{cluster}|{logical_date.isoformat()}|{nonce}"


def check_key_problem(node: str, check: Mapping[str, str], found: Sequence[str]) -> str | None:
    """What a node's read of the check key says against the value the backup recorded (None: it matches)."""
    if check["value"] in found:
        return None
    where = f"check key {check['key']!r} (site {check['site']!r}, bucket {check['bucket']!r})"
    got = "nothing (the key is missing)" if not found else " / ".join(repr(v) for v in found)
    return f"node {node}: {where} reads {got}, the backup recorded {check['value']!r}"


def scratch_node_config(*, address: str, port: int, store: str, snapshot_store: str) -> dict[str, Any]:
    """The config of a drill's scratch node: its own address, port and folders, and no peers (a
    single-node cluster: the restored store's other members, the live nodes, are never contacted)."""
    return {"address": address, "port": int(port), "store": store, "snapshot_store": snapshot_store, "peers": []}


# ---- the manifest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeArtifact:
    node: str
    host: str
    http_port: int
    key: str
    size: int
    sha256: str


def build_manifest(
    *,
    cluster: str,
    uuid: str,
    logical_date: datetime,
    created_at: datetime,
    artifacts: Iterable[NodeArtifact],
    check: Mapping[str, str] | None,
    membership: Sequence[str] | None = None,
    dag_id: str = "",
    run_id: str = "",
) -> dict[str, Any]:
    nodes = [
        {"node": a.node, "host": a.host, "http_port": a.http_port, "key": a.key, "size": a.size, "sha256": a.sha256}
        for a in artifacts
    ]
    return {
        "format": MANIFEST_FORMAT,
        "cluster": cluster,
        "uuid": check_uuid(uuid),
        "logical_date": logical_date.isoformat(),
        "created_at": created_at.isoformat(),
        "dag_id": dag_id,
        "run_id": run_id,
        "nodes": nodes,
        "total_size": sum(n["size"] for n in nodes),
        "check": dict(check) if check else None,
        "membership": list(membership) if membership else None,
    }


def manifest_json(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def group_snapshot_objects(listing: Iterable[Mapping[str, Any]], prefix: str, cluster: str) -> dict[str, dict[str, Any]]:
    """A listing of ``<prefix>/<cluster>/`` by snapshot UUID: its keys, total size, newest time."""
    grouped: dict[str, dict[str, Any]] = {}
    for obj in listing:
        uuid = uuid_from_key(prefix, cluster, obj["Key"])
        if uuid is None:
            continue
        group = grouped.setdefault(uuid, {"keys": [], "size": 0, "last_modified": obj["LastModified"]})
        group["keys"].append(obj["Key"])
        group["size"] += obj.get("Size", 0)
        group["last_modified"] = max(group["last_modified"], obj["LastModified"])
    return grouped


def snapshot_backup_item(uuid: str, objects: Mapping[str, Any], manifest: Mapping[str, Any] | None, cluster: str) -> BackupItem:
    """Retention's view of one snapshot folder: complete when it has a (valid) manifest, dated by
    the manifest's logical date, else by its newest object; ours unless the manifest names
    another cluster or snapshot."""
    created = datetime.fromisoformat(manifest["logical_date"]) if manifest else objects["last_modified"]
    return BackupItem(
        id=uuid,
        created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
        complete=bool(manifest),
        ours=not manifest or (manifest.get("cluster") == cluster and str(manifest.get("uuid")).lower() == uuid),
        meta={"keys": len(objects["keys"]), "size": objects["size"]},
        taken_at=parse_instant(manifest.get("created_at")) if manifest else None,
    )


def parse_manifest(body: bytes | str, *, source: str = "manifest") -> dict[str, Any]:
    """Read and check a manifest; one clear error naming the field when it is not ours or broken."""
    data = _json(body, source)
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise DevicedbResponseError(f"{source}: field 'format' is not {MANIFEST_FORMAT!r}")
    for name in ("cluster", "uuid", "logical_date", "created_at"):
        if not isinstance(data.get(name), str):
            raise DevicedbResponseError(f"{source}: field {name!r} is missing")
    check_uuid(data["uuid"], f"{source} uuid")
    for name in ("logical_date", "created_at"):
        try:
            datetime.fromisoformat(data[name])
        except ValueError as exc:
            raise DevicedbResponseError(f"{source}: field {name!r}: value {data[name]!r} is not a date") from exc
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise DevicedbResponseError(f"{source}: field 'nodes' is empty")
    for index, node in enumerate(nodes):
        for name, kind in (("node", str), ("host", str), ("key", str), ("size", int), ("sha256", str)):
            if not isinstance(node, dict) or not isinstance(node.get(name), kind):
                raise DevicedbResponseError(f"{source}: field 'nodes.{index}.{name}' is missing or wrong")
        if not names.SHA256_HEX_RE.match(node["sha256"]):
            raise DevicedbResponseError(f"{source}: field 'nodes.{index}.sha256': value {node['sha256']!r} is not a SHA-256")
    return data


def choose_snapshot(
    manifests: Sequence[Mapping[str, Any]], wanted: str
) -> Mapping[str, Any]:
    """The manifest the restore param names: a UUID, or a date ``YYYY-MM-DD`` (its newest snapshot)."""
    wanted = (wanted or "").strip()
    if names.UUID_RE.match(wanted):
        for manifest in manifests:
            if manifest["uuid"] == wanted.lower():
                return manifest
        raise LookupError(f"snapshot: no complete snapshot with uuid {wanted!r} (complete ones have a manifest)")
    try:
        day = datetime.strptime(wanted, "%Y-%m-%d").date()
    except ValueError as exc:
        raise ValueError(f"snapshot: value {wanted!r} is neither a snapshot UUID nor a date YYYY-MM-DD") from exc
    same_day = [m for m in manifests if datetime.fromisoformat(m["logical_date"]).date() == day]
    if not same_day:
        raise LookupError(f"snapshot: no complete snapshot with logical date {day.isoformat()}")
    return max(same_day, key=lambda m: (m["logical_date"], m["created_at"]))


def check_tar_members(listed: Iterable[str]) -> list[str]:
    """Refuse a node tar whose members are not plain file names (no folders, no '..', no '/')."""
    members = [n.strip() for n in listed if n.strip()]
    bad = [n for n in members if not names.TAR_MEMBER_RE.match(n.removeprefix("./")) or n.removeprefix("./") in (".", "..")]
    if bad:
        raise ValueError(f"tar members: {bad[:5]!r} are not plain LevelDB file names")
    if not members:
        raise ValueError("tar members: the tar is empty")
    return [n.removeprefix("./") for n in members]


@dataclass(frozen=True)
class TarCheck:
    members: list[str]
    size: int  # bytes of the archive up to and including its end-of-archive marker


def check_snapshot_tar(fileobj: IO[bytes]) -> TarCheck:
    """Check a node tar read from a seekable file: plain LevelDB members (a ``CURRENT`` and a
    ``MANIFEST-*`` among them), every member's data present, and the end-of-archive marker (two
    zero blocks) after the last one. The tar comes chunked without Content-Length, so a stream cut
    at a member boundary would otherwise pass for a whole tar."""
    fileobj.seek(0, 2)
    total = fileobj.tell()
    fileobj.seek(0)
    try:
        with tarfile.open(fileobj=fileobj, mode="r:") as tar:
            members = tar.getmembers()
            end = tar.offset  # where the header after the last member starts
    except tarfile.TarError as exc:
        raise ValueError(f"tar: not a readable tar, or cut short ({exc})") from exc
    if not members:
        raise ValueError("tar members: the tar is empty")
    not_files = [m.name for m in members if not m.isfile()]
    if not_files:
        raise ValueError(f"tar members: {not_files[:5]!r} are not regular files")
    names = check_tar_members(m.name for m in members)
    last = members[-1]
    if last.offset_data + last.size > total:
        raise ValueError(
            f"tar: ends inside member {last.name!r} ({total - last.offset_data} of {last.size} bytes): the stream was cut"
        )
    fileobj.seek(end)
    trailer = fileobj.read(2 * tarfile.BLOCKSIZE)
    if len(trailer) < 2 * tarfile.BLOCKSIZE or trailer.strip(b"\0"):
        raise ValueError(f"tar: no end-of-archive marker after member {last.name!r} at byte {end}: the stream was cut")
    if "CURRENT" not in names or not any(n.startswith("MANIFEST-") for n in names):
        raise ValueError(f"tar members: {names[:8]!r} are not a LevelDB store (no CURRENT and MANIFEST-*)")
    return TarCheck(members=names, size=end + 2 * tarfile.BLOCKSIZE)


def parse_sha256sum(output: str) -> str:
    """The digest from ``sha256sum FILE`` output."""
    word = output.strip().split(maxsplit=1)[0] if output.strip() else ""
    if not names.SHA256_HEX_RE.match(word):
        raise ValueError(f"sha256sum: unexpected output {output[:200]!r}")
    return word


def run_tag(run_id: str) -> str:
    """The restore run's tag in the aside/failed-restore folder names: its run id, made safe."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)[:100]


def aside_path(store_dir: str, tag: str) -> str:
    """Where the restore moves a node's live store: beside it, never deleted before verification."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", tag)[:120]
    return f"{store_dir.rstrip('/')}.pre-restore-{safe}"


def failed_restore_path(store_dir: str, tag: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", tag)[:120]
    return f"{store_dir.rstrip('/')}.failed-restore-{safe}"
