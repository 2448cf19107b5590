"""bup entries: file backups of a host to a repository on a backup server, its restore, its
check and the sync of the repository to S3 (DAGs `bup_<name>`, `_restore`, `_fsck`, `_s3_sync`)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from airflow_backup_provider import names
from airflow_backup_provider.config.common import (
    AbsPath,
    Duration,
    EntryBase,
    Host,
    Identifier,
    Name,
    OwnFolder,
    ServerSideEncryption,
    StrictModel,
    check_schedule,
    require_unique,
)
from airflow_backup_provider.stores.paths import check_outside

# Arguments that carry a secret: the clusters file holds none (they would show in the UI, the
# logs and the process list).
_PASSWORD_ARG_RE = re.compile(
    r"(?i)^--?[a-z_-]*(password|passwd|passwort|pwd|pass|secret|token)=."  # --password=, --db-pass=, -pwd=
    r"|^[a-z][a-z0-9+.-]*://[^/@:\s]+:[^/@\s]+@"  # scheme://user:secret@host
    r"|^[A-Z_][A-Z0-9_]*(PASSWORD|PASSWD|PWD|PASS|SECRET|TOKEN)[A-Z0-9_]*=."  # env PGPASSWORD=... cmd
)
# a flag whose value is the next argument
_PASSWORD_FLAG_RE = re.compile(r"(?i)^--?[a-z_-]*(password|passwd|pwd|pass|secret|token)\Z")
# MySQL's clients take the password glued to -p (-pSECRET); -p alone prompts
_MYSQL_TOOLS = frozenset({"mysql", "mysqldump", "mysqlpump", "mysqlsh", "mariadb", "mariadb-dump", "mydumper"})


def _check_plain_arg(value: str) -> str:
    if "\x00" in value or "\n" in value:
        raise ValueError("must not contain NUL or newline characters")
    return value


PlainArg = Annotated[str, AfterValidator(_check_plain_arg)]


class BupDump(StrictModel):
    """One pre-backup dump: `argv` runs on the host and its standard output becomes one file."""

    name: Name = Field(description="names the dump in logs and the report")
    argv: list[PlainArg] = Field(
        min_length=1, description="the dump command as an argument list, e.g. [sqlite3, /db/app.db, .dump]"
    )
    output: str = Field(description="file name in staging_dir that receives the command's stdout")
    env_from_connection: dict[str, str] = Field(
        default_factory=dict,
        description="environment for the command, taken from Airflow connections at run time: "
        "{MYSQL_PWD: 'mysql_backup.password'} (fields: login, password, host, port, schema, extra.KEY)",
    )
    timeout: Duration = Field(timedelta(hours=2), description="how long the dump may stay silent")

    @field_validator("argv")
    @classmethod
    def _no_password(cls, value: list[str]) -> list[str]:
        mysql = PurePosixPath(value[0]).name in _MYSQL_TOOLS
        for position, arg in enumerate(value):
            glued = mysql and len(arg) > 2 and arg.startswith("-p") and not arg.startswith("--")
            valued_flag = (
                _PASSWORD_FLAG_RE.match(arg) and position + 1 < len(value) and not value[position + 1].startswith("-")
            )
            if _PASSWORD_ARG_RE.search(arg) or glued or valued_flag:
                position += 1 if valued_flag else 0
                raise ValueError(
                    f"argument #{position} carries a password (not repeated here): the clusters file holds none; "
                    "use env_from_connection (e.g. MYSQL_PWD, PGPASSWORD) instead"
                )
        return value

    @field_validator("output")
    @classmethod
    def _output(cls, value: str) -> str:
        return names.check_file_name(value)

    @field_validator("env_from_connection")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if not names.ENV_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if not names.CONN_FIELD_RE.match(source):
                raise ValueError(
                    f"{name}: {source!r} must be 'CONN_ID.FIELD' (login, password, host, port, schema, extra.KEY)"
                )
        return value


class BupServer(StrictModel):
    """The backup server holding the repository; bup reaches it over SSH from the host."""

    host: Host
    repo_dir: OwnFolder = Field(description="the repository directory on the server (one per entry)")
    user: Identifier | None = Field(None, description="SSH user for `bup -r user@host:path` and server tasks")
    port: int = Field(22, ge=1, le=65535)
    ssh_conn_id: Identifier | None = Field(
        None, description="Airflow connection for prune/fsck on the server (default: the entry's)"
    )


class BupPruneOlder(StrictModel):
    """`bup prune-older` keep periods, used when prune_mode is `prune-older`."""

    keep_all_for: str | None = None
    keep_dailies_for: str | None = None
    keep_monthlies_for: str | None = None
    keep_yearlies_for: str | None = None

    @field_validator("keep_all_for", "keep_dailies_for", "keep_monthlies_for", "keep_yearlies_for")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        return value if value is None else names.check_bup_period(value)

    @model_validator(mode="after")
    def _one(self) -> BupPruneOlder:
        if not any((self.keep_all_for, self.keep_dailies_for, self.keep_monthlies_for, self.keep_yearlies_for)):
            raise ValueError("needs at least one keep_*_for period")
        return self


class BupS3Sync(ServerSideEncryption):
    """The weekly rsync-like copy of the repository directory to S3."""

    bucket: Identifier
    prefix: str = Field("bup", description="key prefix; the entry's repository goes under PREFIX/NAME/")
    schedule: str | None = Field(
        "0 3 * * 6", description="cron or preset for bup_<name>_s3_sync (default Saturdays 03:00), or null"
    )
    on_backup: bool = Field(False, description="also run after every successful backup (its Asset)")
    delete: bool = Field(False, description="delete objects whose file is gone from the repository")
    compare: Literal["size_mtime", "checksum"] = "size_mtime"
    concurrency: int = Field(16, ge=1, le=256)
    queue: Identifier | None = Field(
        None, description="Celery queue of a worker on the backup server (the sync reads the repository)"
    )
    drill_sample: int | None = Field(
        20, ge=1, le=1_000_000, description="objects of the S3 copy the drill downloads and checks (null: all)"
    )

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return names.check_s3_prefix(value.strip("/"))

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value, example="@weekly")


class BupHost(EntryBase):
    kind: Literal["bup"] = "bup"
    host: Host = Field(description="the machine whose files are backed up ('localhost' with ssh_conn_id local)")
    port: int = Field(22, ge=1, le=65535)
    paths: list[AbsPath] = Field(min_length=1, description="folders and files to back up")
    excludes: list[AbsPath] = Field(default_factory=list, description="bup index --exclude")
    exclude_rx: list[PlainArg] = Field(default_factory=list, description="bup index --exclude-rx (Python regex)")
    one_file_system: bool = Field(False, description="bup index -x: stay on each path's filesystem")
    bup_dir: OwnFolder | None = Field(None, description="the host's local bup dir (index); default /var/cache/bup/NAME")
    branch: Name | None = Field(None, description="bup save -n: the backup set name (default: the entry name)")
    staging_dir: OwnFolder | None = Field(None, description="where dumps are written; backed up with the paths")
    dumps: list[BupDump] = Field(default_factory=list)
    server: BupServer
    prune: bool = Field(False, description="prune old saves after each backup")
    prune_mode: Literal["retention", "prune-older"] = Field(
        "retention", description="retention: the entry's retention policy, applied with bup rm + gc"
    )
    prune_older: BupPruneOlder | None = None
    fsck: bool = Field(True, description="bup fsck (with par2 recovery blocks when installed) before the S3 sync")
    fsck_schedule: str | None = Field(
        "0 3 * * 6",
        description="without s3_sync: cron or preset of bup_<name>_fsck, the weekly check (default Saturdays "
        "03:00), or null",
    )
    s3_sync: BupS3Sync | None = None
    command_timeout: Duration = Field(timedelta(hours=6), description="how long index/save/restore may stay silent")

    @field_validator("fsck_schedule")
    @classmethod
    def _fsck_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value, example="@weekly")

    @field_validator("exclude_rx")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BupHost:
        if self.dumps and not self.staging_dir:
            raise ValueError("dumps need a staging_dir")
        require_unique("dumps", [d.name for d in self.dumps])
        require_unique("dumps output", [d.output for d in self.dumps])
        if self.prune and self.prune_mode == "prune-older" and self.prune_older is None:
            raise ValueError("prune_mode 'prune-older' needs prune_older keep periods")
        if self.prune and self.prune_mode == "retention" and self.retention.is_empty():
            raise ValueError("prune with prune_mode 'retention' needs a non-empty retention policy")
        # the drill restores on the backup server: never into the repository, nor the host's live paths there
        live = [("server.repo_dir, the repository", self.server.repo_dir)]
        if self.server.host == self.host:
            live += [("paths, a backed-up path", p) for p in self.saved_paths] + [("bup_dir", self.local_bup_dir)]
        check_outside("drill_folder", self.drill_folder, live)
        return self

    @property
    def backup_set(self) -> str:
        return self.branch or self.name

    @property
    def local_bup_dir(self) -> str:
        return self.bup_dir or f"/var/cache/bup/{self.name}"

    @property
    def saved_paths(self) -> list[str]:
        paths = list(self.paths)
        if self.dumps and self.staging_dir and not any(
            self.staging_dir == p or self.staging_dir.startswith(p.rstrip("/") + "/") for p in paths
        ):
            paths.append(self.staging_dir)
        return paths
