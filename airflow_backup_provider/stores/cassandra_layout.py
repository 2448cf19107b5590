"""Cassandra's names and layout (pure): keyspace/table/host/tag/day checks, snapshot tags, the S3 keys."""

# Layout on a node:
#
#     <data_dir>/<keyspace>/<table>-<32 hex id>/nb-1-big-Data.db ...
#                                              /snapshots/<tag>/nb-1-big-Data.db, manifest.json, schema.cql
#                                              /backups/nb-1-big-Data.db ...
#
# Layout in S3 (one folder per day, one per host):
#
#     <prefix>/<cluster>/<YYYYMMDD>/<host>/<keyspace>/<table dir>/<file>.zst
#     <prefix>/<cluster>/<YYYYMMDD>/<host>/backup-meta/<tag>/manifest.json | schema.cql | status.txt

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_backup_provider import names
from airflow_backup_provider.names import cluster_prefix

# The names themselves are checked by airflow_backup_provider.names (the clusters file's checks).
_TABLE_DIR_RE = re.compile(rf"^(?P<table>{names.CASSANDRA_NAME})-(?P<id>[0-9a-f]{{32}})\Z")


# Cassandra 3.0+ lets the table dir go without the id when the table was created without one
_TABLE_DIR_NO_ID_RE = re.compile(rf"^(?P<table>{names.CASSANDRA_NAME})\Z")


# SSTable component files and anything Cassandra writes beside them (TOC.txt, *.crc32, *.db,
# secondary index subfolders start with a dot).
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.+-]{0,254}\Z")


SNAPSHOTS_DIR = "snapshots"


BACKUPS_DIR = "backups"


META_DIR = "backup-meta"  # has a '-': can never be a keyspace name


TAG_PREFIX = "abp"


SNAPSHOT_META_FILES = frozenset({"manifest.json", "schema.cql"})


COMPRESSED_SUFFIX = ".zst"


class CassandraNameError(names.InvalidName):
    """A keyspace, table, host, tag or path that must never reach a command line or an S3 key."""


def _named(check, value: Any, field_name: str) -> str:
    try:
        return check(value, field_name)
    except names.InvalidName as exc:
        raise CassandraNameError(str(exc)) from None


def validate_keyspace(value: str, field_name: str = "keyspace") -> str:
    return _named(names.check_keyspace, value, field_name)


def validate_table(value: str, field_name: str = "table") -> str:
    """`table` or `keyspace.table`."""
    return _named(names.check_table_ref, value, field_name)


def validate_host(value: str, field_name: str = "host") -> str:
    return _named(names.check_host, value, field_name)


def validate_tag(value: str, field_name: str = "tag") -> str:
    return _named(names.check_snapshot_tag, value, field_name)


def validate_day(value: str, field_name: str = "date") -> str:
    """`YYYYMMDD` or `YYYY-MM-DD`, returned as `YYYYMMDD`."""
    text = value.replace("-", "") if isinstance(value, str) else ""
    if not names.DAY_FOLDER_RE.match(text):
        raise CassandraNameError(f"{field_name}: value {value!r} is not a date like 2026-11-20 or 20261120")
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError as exc:
        raise CassandraNameError(f"{field_name}: value {value!r} is not a valid date") from exc
    return text


def validate_abs_path(value: str, field_name: str = "path") -> str:
    return posixpath.normpath(_named(names.check_abs_path, value, field_name))


def split_table_dir(name: str) -> tuple[str, str | None]:
    """`users-0123...ef` -> ("users", "0123...ef"); raises on anything else."""
    match = _TABLE_DIR_RE.match(name) or _TABLE_DIR_NO_ID_RE.match(name)
    if not match:
        raise CassandraNameError(f"table directory: value {name!r} is not '<table>-<32 hex id>'")
    return match.group("table"), match.groupdict().get("id")


def snapshot_tag(backup_time: datetime, run_id: str) -> str:
    """One tag per run: from the logical date (so it sorts) and a digest of the run id (so two
    runs never share it, and a retried task finds its own run's snapshot again)."""
    stamp = backup_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{TAG_PREFIX}-{stamp}-{digest}"


def is_our_tag(tag: str) -> bool:
    return tag.startswith(f"{TAG_PREFIX}-")


def day_of(backup_time: datetime) -> str:
    return backup_time.astimezone(UTC).strftime("%Y%m%d")


def day_start(day: str) -> datetime:
    """`20261120` -> its first instant, UTC: the date retention judges a day folder by."""
    return datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)


def day_prefix(prefix: str, cluster: str, day: str) -> str:
    return f"{cluster_prefix(prefix, cluster)}{validate_day(day)}/"


def host_prefix(prefix: str, cluster: str, day: str, host: str) -> str:
    return f"{day_prefix(prefix, cluster, day)}{validate_host(host)}/"


def data_key(prefix: str, cluster: str, day: str, host: str, path: str, variant: str | None = None) -> str:
    """`<prefix>/<cluster>/<day>/<host>/<keyspace>/<table dir>/<file>.zst` (variant: a second
    object for the same path within a day, kept beside the first so neither is overwritten)."""
    name = f"{path}.{variant}" if variant else path
    return f"{host_prefix(prefix, cluster, day, host)}{name}{COMPRESSED_SUFFIX}"


def meta_key(prefix: str, cluster: str, day: str, host: str, tag: str, name: str) -> str:
    return f"{host_prefix(prefix, cluster, day, host)}{META_DIR}/{validate_tag(tag)}/{name}"


def manifest_key(prefix: str, cluster: str, day: str, host: str, tag: str) -> str:
    return meta_key(prefix, cluster, day, host, tag, "manifest.json")


_MANIFEST_KEY_RE = re.compile(
    rf"^(?P<day>\d{{8}})/(?P<host>[^/]+)/{META_DIR}/(?P<tag>[^/]+)/manifest\.json$"
)


@dataclass(frozen=True)
class ManifestRef:
    key: str
    day: str
    host: str
    tag: str


def parse_manifest_keys(keys: Iterable[str], prefix: str, cluster: str) -> list[ManifestRef]:
    """The manifests among `keys` (a listing under the cluster prefix); other keys are ignored."""
    base = cluster_prefix(prefix, cluster)
    refs = []
    for key in keys:
        if not key.startswith(base):
            continue
        match = _MANIFEST_KEY_RE.match(key[len(base) :])
        if match:
            refs.append(ManifestRef(key=key, **match.groupdict()))
    return sorted(refs, key=lambda r: (r.day, r.host, r.tag))


def parse_day_folders(common_prefixes: Iterable[str], prefix: str, cluster: str) -> list[str]:
    base = cluster_prefix(prefix, cluster)
    days = []
    for item in common_prefixes:
        rest = item[len(base) :].strip("/") if item.startswith(base) else ""
        if names.DAY_FOLDER_RE.match(rest):
            days.append(rest)
    return sorted(days)


def table_folder_of(path: str) -> str:
    """`shop/orders-<id>/.idx/nb-1-big-Data.db` -> `shop/orders-<id>`."""
    return "/".join(path.split("/")[:2])
