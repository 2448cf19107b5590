"""What every entry of the clusters file shares: validated types, durations, schedules, the
retention policy, the common settings that `defaults` supplies, and the base of every entry."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from airflow_backup_provider import names

# What one error message may quote of a value: the UI's import errors and the logs stay readable,
# and quoting never walks a huge (or self-containing) value.
QUOTE_LIMIT = 200


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


Name = Annotated[str, AfterValidator(names.check_name)]
Host = Annotated[str, AfterValidator(names.check_host)]
Email = Annotated[str, AfterValidator(names.check_email)]
AbsPath = Annotated[str, AfterValidator(names.check_abs_path)]
Identifier = Annotated[str, AfterValidator(names.check_identifier)]
KmsKey = Annotated[str, AfterValidator(names.check_kms_key)]


def _check_not_root(value: str | None) -> str | None:
    if value is not None and value.strip("/") == "":
        raise ValueError("must be a folder of its own, not the root folder '/'")
    return value


# a folder the project writes to or syncs as a whole (the S3 sync of '/' walks the whole disk)
OwnFolder = Annotated[AbsPath, AfterValidator(_check_not_root)]


# ---- durations -----------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^\s*(\d{1,20})\s*(s|m|h|d|w)\s*\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Every duration fits this (the date arithmetic of the DAGs and of retention stays far from
# timedelta's limits); a field whose meaning gives a smaller maximum declares it (RetryDelay).
MAX_DURATION = timedelta(days=36525)  # 100 years
# Airflow caps every retry delay at [core] max_task_retry_delay (default 24 h): more means nothing.
MAX_RETRY_DELAY = timedelta(hours=24)


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(value: Any) -> timedelta:
    """`30s`, `5m`, `2h`, `7d`, `1w`, a number of seconds, or a timedelta; at most MAX_DURATION.

    Raises only ValueError (never OverflowError), so that a huge value stays a validation
    error of its entry.
    """
    if isinstance(value, bool):
        raise ValueError("is not a duration")
    if isinstance(value, timedelta):
        seconds: float = value.total_seconds()
    elif isinstance(value, int):
        seconds = value  # compared as an int: a huge one must not reach float()
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("is not a finite number of seconds")
        seconds = value
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]  # a Python int: never overflows
    else:
        raise ValueError("is not a duration like '30s', '5m', '2h', '7d' or a number of seconds")
    if seconds < 0:
        raise ValueError("must not be negative")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"must be at most {_format_duration(MAX_DURATION)} (100 years)")
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


class Duration(timedelta):
    """A timedelta that pydantic reads from `5m`-style strings, at most MAX_DURATION."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            parse_duration,
            # JSON shows "0:05:00"; model_dump() keeps the timedelta, so defaults pass into entries
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )


def _at_most(maximum: timedelta, why: str) -> AfterValidator:
    def check(value: timedelta) -> timedelta:
        if value > maximum:
            raise ValueError(f"must be at most {_format_duration(maximum)} ({why})")
        return value

    return AfterValidator(check)


RetryDelay = Annotated[Duration, _at_most(MAX_RETRY_DELAY, "Airflow's max_task_retry_delay")]
PokeInterval = Annotated[Duration, _at_most(timedelta(hours=24), "a sensor looks at least once a day")]


# ---- schedules -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _schedule_problem(value: str) -> str | None:
    """Why Airflow would refuse `value` as a DAG's schedule, or None.

    Builds the timetable with the function `DAG(schedule=...)` uses and validates it as the
    DagBag does; then asks croniter for the next time, as the scheduler does (a cron expression
    that never fires, like `0 0 30 2 *`, passes validate() but fails there).
    """
    import pendulum
    from airflow.sdk.definitions.dag import _create_timetable
    from airflow.sdk.exceptions import AirflowTimetableInvalid
    from croniter import CroniterBadDateError, croniter

    try:
        timetable = _create_timetable(value, pendulum.UTC)
        timetable.validate()
    except (AirflowTimetableInvalid, ValueError) as exc:  # croniter's errors are ValueErrors
        return clip(str(exc) or type(exc).__name__, 150)
    expression = getattr(timetable, "expression", None)  # cron timetables (presets resolved)
    try:
        if expression is not None:
            croniter(expression).get_next(datetime)
    except (CroniterBadDateError, OverflowError):
        return "it never fires"
    return None


def check_schedule(value: str | None, *, example: str) -> str | None:
    """A cron expression, a preset (`@daily`), or None (manual only), as Airflow parses it."""
    if value is None:
        return value
    problem = _schedule_problem(value)
    if problem is not None:
        raise ValueError(
            f"is not a schedule Airflow accepts ({problem}): use a cron expression, a preset like {example!r}, or null"
        )
    return value


# ---- models --------------------------------------------------------------------------------------


class NodeSpecRecord:
    """The JSON record of a node spec (a frozen dataclass the builders hand to operators): for an
    XCom or a trigger's kwargs, and the spec back from it."""

    def as_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        """The spec back from a record that carries its fields (other keys are left out)."""
        return cls(**{f.name: record[f.name] for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


class StrictModel(BaseModel):
    """Unknown keys are typos: refuse them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def require_unique(field: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{field}: {value!r} is listed twice")
        seen.add(value)


class RetentionPolicy(StrictModel):
    """restic `forget` semantics: rules ORed, newest item per calendar bucket."""

    keep_last: int | None = Field(None, ge=0, description="keep the newest N backups")
    keep_hourly: int | None = Field(None, ge=0)
    keep_daily: int | None = Field(None, ge=0)
    keep_weekly: int | None = Field(None, ge=0)
    keep_monthly: int | None = Field(None, ge=0)
    keep_yearly: int | None = Field(None, ge=0)
    keep_within: Duration | None = Field(
        None, description="keep every backup strictly newer than (the newest backup - this), as restic --keep-within"
    )

    def is_empty(self) -> bool:
        return all(getattr(self, f) is None for f in type(self).model_fields)


class ServerSideEncryption(StrictModel):
    """How the objects an entry writes to S3 are encrypted at rest (a mixin of the models that
    write to a bucket: the same two fields, the same meaning, for every kind)."""

    sse: Literal["AES256", "aws:kms"] = Field("AES256", description="S3 server-side encryption")
    kms_key_id: KmsKey | None = Field(None, description="KMS key for sse aws:kms (implies aws:kms)")


class CommonSettings(StrictModel):
    """Settings that `defaults` supplies and any entry may override."""

    owner: str = "backup"
    alert_emails: list[Email] = Field(default_factory=list)
    alert_on_retry: bool = False
    alert_from: Email = "airflow-backup@localhost"
    schedule: str | None = "@daily"
    catchup: bool = False
    start_date: datetime = datetime(2026, 1, 1)
    retries: int = Field(2, ge=0, le=20)
    retry_delay: RetryDelay = timedelta(minutes=5)
    ssh_conn_id: Identifier = "backup_ssh"
    aws_conn_id: Identifier = "aws_default"
    smtp_conn_id: Identifier = "smtp_default"
    retention: RetentionPolicy = RetentionPolicy(keep_last=7)
    gate_timeout: Duration = Field(timedelta(hours=1), description="how long a health gate may wait")
    poke_interval: PokeInterval = Field(timedelta(seconds=30), description="how often sensors look")
    other_runs_timeout: Duration = Field(
        timedelta(days=1), description="how long a run may wait for another run of its DAG (a backfill's) to end"
    )
    deferrable: bool = Field(True, description="sensors hand their wait to the triggerer")
    sudo_user: Identifier | None = Field(None, description="run node commands as this user via sudo")
    # restore drills (DAG `<kind>_<name>_drill`): prove the newest backup restorable somewhere harmless
    drill_schedule: str | None = Field("@weekly", description="cron or preset of the restore drill, or null (no drill)")
    drill_host: Host | None = Field(
        None, description="where a drill downloads and checks (over ssh_conn_id); null: the Airflow worker itself"
    )
    drill_folder: OwnFolder = Field(
        "/tmp/airflow-backup-drills",
        description="the only folder a drill writes to on the drill host (a sub-folder per run, always removed)",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value, example="@daily")

    @field_validator("drill_schedule")
    @classmethod
    def _drill_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value, example="@weekly")

    @field_validator("start_date")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=256)
def schedule_period(schedule: str | None) -> timedelta | None:
    """The time between two runs of a (valid) schedule, from two consecutive fire times of its cron
    expression as Airflow builds it; None for a manual-only or non-cron schedule."""
    if schedule is None:
        return None
    import pendulum
    from airflow.sdk.definitions.dag import _create_timetable
    from croniter import croniter

    expression = getattr(_create_timetable(schedule, pendulum.UTC), "expression", None)
    if expression is None:
        return None
    times = croniter(expression, datetime(2026, 1, 1, tzinfo=UTC))
    first = times.get_next(datetime)
    # the longest gap of a week of fire times: "0 2 * * 1-5" is stale after a weekend, not a day
    gaps = [-(first - (first := times.get_next(datetime))) for _ in range(8)]
    return max(gaps)


class Defaults(CommonSettings):
    pass


class EntryBase(CommonSettings):
    """One entry of the clusters file. Each kind's model narrows `kind` to its own Literal (the
    discriminator of the entries' union, see :mod:`airflow_backup_provider.kinds`)."""

    kind: str
    name: Name
    description: str = ""
    max_age: Duration | None = Field(
        None, description="the backup catalog calls the last good backup stale after this (default: twice the schedule's period)"
    )

    def dag_id(self, suffix: str = "") -> str:
        return f"{self.kind}_{self.name}{suffix}"

    def effective_max_age(self) -> timedelta | None:
        """`max_age`, else twice the schedule's period; None for a manual-only entry (never stale)."""
        if self.max_age is not None:
            return self.max_age
        period = schedule_period(self.schedule)
        return None if period is None else 2 * period


class Node(StrictModel):
    """A machine reached over SSH (`host`), optionally named differently inside the data store."""

    host: Host
    port: int = Field(22, ge=1, le=65535)
