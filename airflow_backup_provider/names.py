"""Every name, host, path and identifier the project accepts: each pattern and its check, once.

Pure (no Airflow, no pydantic): the clusters-file models (``config/``), the tool knowledge
(``stores/``) and the trigger forms (``builders/``) all import from here, so a name that the
clusters file accepts is the name a command line, a URL or an S3 key accepts.

A pattern is kept twice over: its body (a plain regex string, for the trigger forms that add their
own anchors) and the compiled whole-value pattern. Whole-value patterns end in ``\\Z``: ``$`` also
matches before a trailing newline, which would let ``"host\\n"`` through.

Every ``check_*`` returns the value or raises :class:`InvalidName`. Without ``field`` the message
is the reason alone (pydantic names the field and the value); with ``field`` it is
``"<field>: value <repr> <reason>"``, one clear error for callers outside the models.
"""

from __future__ import annotations

import re
from typing import Any


class InvalidName(ValueError):
    """A name, host, path or id that must never reach a command line, a URL or an S3 key."""


def whole(body: str) -> re.Pattern[str]:
    """`body` as a pattern that must match the whole value (used with .match)."""
    return re.compile(rf"^(?:{body})\Z")


def _refuse(value: Any, field: str | None, reason: str) -> InvalidName:
    return InvalidName(f"{field}: value {value!r} {reason}" if field else reason)


def _matching(pattern: re.Pattern[str], value: Any, field: str | None, reason: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise _refuse(value, field, reason)
    return value


# ---- general -------------------------------------------------------------------------------------

# entry names, dump names, bup branches named in the clusters file
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
NAME_RE = whole(NAME)
# A hostname (RFC 1123 labels), an IPv4 address or a bracket-free IPv6 address. Nothing else
# (spaces, quotes, `;`, `$`, `/`) can ever reach a command line or a URL.
HOST_RE = re.compile(
    r"^(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
    r"|^[0-9A-Fa-f:]{2,39}\Z"
)
EMAIL_RE = whole(r"[^@\s,;<>]+@[^@\s,;<>]+")
# the characters of every path the project passes to a command (no space, no quote, no `$`)
PATH_CHARS = r"[A-Za-z0-9_./@+-]"
# a path bup saves or restores may hold spaces too (it reaches bup as one argv word, never a shell)
SAVED_PATH_CHARS = r"[A-Za-z0-9_./@+ -]"
# a restore folder of the Cassandra form: `{host}` becomes the node's host
TEMPLATED_PATH_CHARS = r"[A-Za-z0-9_./@+{}-]"
ABS_PATH_RE = whole(rf"/{PATH_CHARS}*")
# connection ids, buckets, regions, pools, users, S3 prefixes, tag keys
IDENTIFIER = r"[A-Za-z0-9_][A-Za-z0-9_.@:+-]{0,127}"
IDENTIFIER_RE = whole(IDENTIFIER)
# a KMS key id, alias/NAME, or the ARN of either
KMS_KEY_RE = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:)?(key/[A-Za-z0-9-]{1,128}|alias/[A-Za-z0-9/_-]{1,250})\Z"
    r"|^[A-Za-z0-9-]{1,128}\Z"
)
# an AWS region name: us-east-1, eu-central-2, us-gov-west-1, cn-north-1 ...
REGION_RE = whole(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
# a command on the nodes: a name on their PATH or an absolute path
COMMAND_RE = whole(rf"[A-Za-z0-9_.+-]+|/{PATH_CHARS}+")
# one word of a service command's argv
SERVICE_WORD_RE = whole(r"[A-Za-z0-9_./@%+=:,-]+")
ENV_NAME_RE = whole(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# a plain file name (no folder)
FILE_NAME_RE = whole(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")
# CONN_ID.FIELD: a field of an Airflow connection
CONN_FIELD_RE = whole(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.(login|password|host|port|schema|extra\.[A-Za-z0-9_-]+)")
# an S3 key prefix: segments separated by '/'
S3_PREFIX_RE = whole(r"[A-Za-z0-9_.=+-]+(?:/[A-Za-z0-9_.=+-]+)*")
SHA256_HEX_RE = whole(r"[0-9a-f]{64}")
GIT_SHA1_HEX_RE = whole(r"[0-9a-f]{40}")


def check_name(value: Any, field: str | None = None) -> str:
    return _matching(
        NAME_RE,
        value,
        field,
        "must start with a letter or digit and contain only letters, digits, '_', '-', '.' (at most 64)",
    )


def check_host(value: Any, field: str | None = None) -> str:
    return _matching(HOST_RE, value, field, "is not a hostname or IP address")


def check_email(value: Any, field: str | None = None) -> str:
    return _matching(EMAIL_RE, value, field, "is not an e-mail address")


def check_abs_path(value: Any, field: str | None = None) -> str:
    """An absolute path of safe characters without a '..' part (returned as given)."""
    if not isinstance(value, str) or not ABS_PATH_RE.match(value) or "/../" in f"{value}/":
        raise _refuse(value, field, "must be an absolute path of letters, digits and _ . / @ + - (no '..')")
    return value


def check_identifier(value: Any, field: str | None = None) -> str:
    return _matching(IDENTIFIER_RE, value, field, "must contain only letters, digits and _ . @ : + -")


def check_kms_key(value: Any, field: str | None = None) -> str:
    return _matching(KMS_KEY_RE, value, field, "must be a KMS key id, alias/NAME, or the ARN of a key or alias")


def check_region(value: Any, field: str | None = None) -> str:
    return _matching(REGION_RE, value, field, "is not an AWS region name (like us-east-1)")


def check_command(value: Any, field: str | None = None) -> str:
    if not isinstance(value, str) or not COMMAND_RE.match(value) or "/../" in f"{value}/":
        raise _refuse(value, field, "must be a command name or an absolute path (letters, digits, _ . / @ + -)")
    return value


def check_service_word(value: Any, field: str | None = None) -> str:
    return _matching(SERVICE_WORD_RE, value, field, "must contain only letters, digits and _ . / @ % + = : , -")


def check_file_name(value: Any, field: str | None = None) -> str:
    return _matching(FILE_NAME_RE, value, field, "must be a plain file name (letters, digits, _ . + -), not a path")


def check_s3_prefix(value: Any, field: str | None = None) -> str:
    if not isinstance(value, str) or not S3_PREFIX_RE.match(value) or ".." in value.split("/"):
        raise _refuse(value, field, "must be an S3 key prefix of letters, digits and _ . = + - separated by '/'")
    return value


def cluster_prefix(prefix: str, cluster: str) -> str:
    """The S3 folder of one entry's backups, ``<prefix>/<cluster>/``, for every kind that writes to S3."""
    return f"{prefix.strip('/')}/{cluster}/"


# ---- AWS -----------------------------------------------------------------------------------------

VOLUME_ID_RE = whole(r"vol-[0-9a-f]{8,17}")
INSTANCE_ID_RE = whole(r"i-[0-9a-f]{8,17}")
SNAPSHOT_ID = r"snap-[0-9a-f]{8,17}"
SNAPSHOT_ID_RE = whole(SNAPSHOT_ID)
# an attachment point as EC2 names it (/dev/sdf, /dev/xvdf, /dev/sda1)
DEVICE_RE = whole(r"/dev/(sd|xvd)[a-z]{1,2}[0-9]{0,2}")
ZONE = r"[a-z]{2}(-[a-z]+)+-[0-9][a-z]"
ZONE_RE = whole(ZONE)


def check_volume_id(value: Any, field: str | None = None) -> str:
    return _matching(VOLUME_ID_RE, value, field, "is not an EBS volume id like 'vol-0123456789abcdef0'")


def check_instance_id(value: Any, field: str | None = None) -> str:
    return _matching(INSTANCE_ID_RE, value, field, "is not an EC2 instance id like 'i-0123456789abcdef0'")


def check_snapshot_id(value: Any, field: str | None = None) -> str:
    return _matching(SNAPSHOT_ID_RE, value, field, "is not an EBS snapshot id like 'snap-0123456789abcdef0'")


def check_device(value: Any, field: str | None = None) -> str:
    return _matching(DEVICE_RE, value, field, "is not an EC2 device name like '/dev/sdf' or '/dev/xvdf'")


def check_zone(value: Any, field: str | None = None) -> str:
    return _matching(ZONE_RE, value, field, "is not an availability zone like 'us-east-1a'")


# ---- Riak ----------------------------------------------------------------------------------------

ERLANG_NODE_RE = whole(r"[A-Za-z0-9_.+-]+@[A-Za-z0-9_.:-]+")
RIAK_SERVICE_RE = whole(r"[a-z][a-z0-9_]*")


def check_erlang_node(value: Any, field: str | None = None) -> str:
    return _matching(ERLANG_NODE_RE, value, field, "is not an Erlang node name like 'riak@10.0.0.1'")


def check_riak_service(value: Any, field: str | None = None) -> str:
    return _matching(RIAK_SERVICE_RE, value, field, "is not a Riak service name like 'riak_kv'")


# ---- Cassandra -----------------------------------------------------------------------------------

# a keyspace or a table
CASSANDRA_NAME = r"[A-Za-z0-9_]{1,48}"
CASSANDRA_NAME_RE = whole(CASSANDRA_NAME)
# `table` or `keyspace.table`
TABLE_REF = rf"(?:{CASSANDRA_NAME}\.)?{CASSANDRA_NAME}"
TABLE_REF_RE = whole(TABLE_REF)
SNAPSHOT_TAG_RE = whole(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# a day folder YYYYMMDD
DAY_FOLDER_RE = whole(r"\d{8}")


def check_keyspace(value: Any, field: str | None = None) -> str:
    return _matching(CASSANDRA_NAME_RE, value, field, "is not a Cassandra keyspace name (1 to 48 letters, digits or '_')")


def check_table_ref(value: Any, field: str | None = None) -> str:
    return _matching(
        TABLE_REF_RE, value, field, "is not a Cassandra table name: 'table' or 'keyspace.table' (letters, digits, '_')"
    )


def check_snapshot_tag(value: Any, field: str | None = None) -> str:
    return _matching(SNAPSHOT_TAG_RE, value, field, "is not a snapshot tag (letters, digits, '_', '.', '-')")


# ---- devicedb ------------------------------------------------------------------------------------

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
UUID_RE = whole(UUID)
# a site, bucket or key in a URL path
URL_SEGMENT_RE = whole(r"[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}")
# a member of a node's snapshot tar (no folder, no '..')
TAR_MEMBER_RE = whole(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,254}")
DEVICEDB_NODE_ID = r"[0-9]{1,20}"
DEVICEDB_NODE_ID_RE = whole(DEVICEDB_NODE_ID)


def check_uuid(value: Any, field: str | None = "uuid") -> str:
    """A snapshot UUID (surrounding blanks ignored), returned in lowercase."""
    if not isinstance(value, str) or not UUID_RE.match(value.strip()):
        raise _refuse(value, field, "is not a snapshot UUID like b54a61d9-b64c-45e0-94b7-80c9e36b86fa")
    return value.strip().lower()


def check_url_segment(value: Any, field: str | None = None) -> str:
    return _matching(URL_SEGMENT_RE, value, field, "must contain only letters, digits and _ . @ : + -")


def check_devicedb_node_id(value: Any, field: str | None = "node id") -> str:
    if not DEVICEDB_NODE_ID_RE.match(str(value)):
        raise _refuse(value, field, "is not a decimal devicedb node id")
    return str(value)


# ---- bup -----------------------------------------------------------------------------------------

# branch (backup set) names: git ref rules, kept to a safe subset
BUP_BRANCH_RE = whole(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# a `bup prune-older` keep period
BUP_PERIOD_RE = whole(r"\d+(?:s|min|h|d|w|m|y)|forever")


def check_bup_branch(value: Any, field: str | None = "bup branch name") -> str:
    if (
        not isinstance(value, str)
        or not BUP_BRANCH_RE.match(value)
        or ".." in value
        or value.endswith((".lock", "."))
    ):
        raise _refuse(value, field, "must use letters, digits, '_', '-', '.' (no '..')")
    return value


def check_bup_period(value: Any, field: str | None = None) -> str:
    return _matching(BUP_PERIOD_RE, value, field, "must be a bup period like 7d, 12h, 4w, 6m, 1y, 30min or forever")
