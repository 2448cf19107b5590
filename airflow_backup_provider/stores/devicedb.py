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

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

PROCESSING = "processing"
COMPLETED = "completed"
MISSING = "missing"
FAILED = "failed"
SNAPSHOT_STATUSES = (PROCESSING, COMPLETED, MISSING, FAILED)
# Not a devicedb status: what the poller records when a node did not answer at all.
UNREACHABLE = "unreachable"

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
TAR_MEMBER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,254}$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}$")


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


def check_uuid(value: Any, field_name: str = "uuid") -> str:
    """A snapshot UUID, or one clear error naming the field and the value (never reaches a URL/shell)."""
    if not isinstance(value, str) or not _UUID_RE.match(value.strip()):
        raise ValueError(f"{field_name}: value {value!r} is not a snapshot UUID like b54a61d9-b64c-45e0-94b7-80c9e36b86fa")
    return value.strip().lower()


def check_segment(value: Any, field_name: str) -> str:
    """A site, bucket or key used in a URL path: letters, digits and _ . @ : + -."""
    if not isinstance(value, str) or not _SEGMENT_RE.match(value):
        raise ValueError(f"{field_name}: value {value!r} must contain only letters, digits and _ . @ : + -")
    return value


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


def parse_membership(body: bytes | str) -> list[str]:
    """Node ids from the cluster overview that ``devicedb cluster overview`` prints (GET /cluster).

    Raises :class:`DevicedbResponseError` when the shape is not recognised, so the caller can
    decide whether an unknown shape is fatal (``membership_check: required``).
    """
    data = _json(body, "cluster overview")
    nodes = data.get("Nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list):
        raise DevicedbResponseError(f"cluster overview: no Nodes list in {str(data)[:200]!r}")
    ids: list[str] = []
    for node in nodes:
        address = node.get("Address") if isinstance(node, dict) else None
        node_id = None
        if isinstance(address, dict):
            node_id = address.get("NodeID", address.get("nodeID", address.get("id")))
        if node_id is None and isinstance(node, dict):
            node_id = node.get("NodeID", node.get("id"))
        if node_id is None:
            raise DevicedbResponseError(f"cluster overview: a node without an id: {str(node)[:200]!r}")
        ids.append(str(node_id))
    return sorted(ids)


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
    unknown = sorted(n for n, s in statuses.items() if s not in SNAPSHOT_STATUSES and s != UNREACHABLE)
    if unknown:
        return Verdict(FAILED, f"unknown status on {', '.join(unknown)}: " + ", ".join(statuses[n] for n in unknown), statuses)
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


def cluster_prefix(prefix: str, cluster: str) -> str:
    return f"{prefix.strip('/')}/{cluster}/"


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
    return first.lower() if _UUID_RE.match(first) else None


def check_key_value(cluster: str, logical_date: datetime, nonce: str) -> str:
    """The value written to the check key before a snapshot: unique per backup."""
    return f"{cluster}|{logical_date.isoformat()}|{nonce}"


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
        if not re.fullmatch(r"[0-9a-f]{64}", node["sha256"]):
            raise DevicedbResponseError(f"{source}: field 'nodes.{index}.sha256': value {node['sha256']!r} is not a SHA-256")
    return data


def choose_snapshot(
    manifests: Sequence[Mapping[str, Any]], wanted: str
) -> Mapping[str, Any]:
    """The manifest the restore param names: a UUID, or a date ``YYYY-MM-DD`` (its newest snapshot)."""
    wanted = (wanted or "").strip()
    if _UUID_RE.match(wanted):
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


def check_tar_members(names: Iterable[str]) -> list[str]:
    """Refuse a node tar whose members are not plain file names (no folders, no '..', no '/')."""
    names = [n.strip() for n in names if n.strip()]
    bad = [n for n in names if not TAR_MEMBER_RE.match(n.removeprefix("./")) or n.removeprefix("./") in (".", "..")]
    if bad:
        raise ValueError(f"tar members: {bad[:5]!r} are not plain LevelDB file names")
    if not names:
        raise ValueError("tar members: the tar is empty")
    return [n.removeprefix("./") for n in names]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_sha256sum(output: str) -> str:
    """The digest from ``sha256sum FILE`` output."""
    word = output.strip().split(maxsplit=1)[0] if output.strip() else ""
    if not re.fullmatch(r"[0-9a-f]{64}", word):
        raise ValueError(f"sha256sum: unexpected output {output[:200]!r}")
    return word


def aside_path(store_dir: str, tag: str) -> str:
    """Where the restore moves a node's live store: beside it, never deleted before verification."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", tag)[:120]
    return f"{store_dir.rstrip('/')}.pre-restore-{safe}"


def failed_restore_path(store_dir: str, tag: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", tag)[:120]
    return f"{store_dir.rstrip('/')}.failed-restore-{safe}"
