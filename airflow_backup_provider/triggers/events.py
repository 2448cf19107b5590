"""The one shape of every trigger event of this provider, and the one check of it.

An event is ``{"status": "success" | "error" | "timeout", "message": str, **data}``: the shape
the amazon provider's waiter triggers already fire (``EbsSnapshotCompletedTrigger``; their
``success`` carries no ``message``, so a success may omit it), so one reader serves ours and
theirs. :func:`read_event` is the check every ``execute_complete`` is to make (the triggers and
sensors move onto it in issue 11).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
from airflow.triggers.base import TriggerEvent

SUCCESS = "success"
ERROR = "error"
TIMEOUT = "timeout"
STATUSES = (SUCCESS, ERROR, TIMEOUT)


class TriggerEventError(AirflowException):
    """A trigger reported an error, or sent an event of the wrong shape."""


def event(status: str, message: str, /, **data: Any) -> TriggerEvent:
    """Build the event a trigger yields (``data`` must be JSON-serialisable)."""
    if status not in STATUSES:
        raise ValueError(f"trigger event status {status!r} is not one of {', '.join(STATUSES)}")
    reserved = {"status", "message"} & data.keys()
    if reserved:
        raise ValueError(f"trigger event data may not use the keys {sorted(reserved)}")
    return TriggerEvent({"status": status, "message": str(message), **data})


def read_event(event: Mapping[str, Any] | None, *, what: str, requires: Iterable[str] = ()) -> dict[str, Any]:
    """
    Return a ``success`` event's payload; raise for anything else.

    ``what`` names the wait in the error ("riak_1 handoff gate"); ``requires`` lists the data keys
    a success must carry. ``timeout`` raises ``AirflowSensorTimeout`` (no retry, like a sensor's own
    timeout); ``error`` and a malformed event raise ``TriggerEventError`` (retried by the task's
    retries).
    """
    if not isinstance(event, Mapping):
        raise TriggerEventError(f"{what}: the trigger sent no event ({event!r})")
    status = event.get("status")
    message = event.get("message", "" if status == SUCCESS else None)
    if status not in STATUSES or not isinstance(message, str):
        raise TriggerEventError(f"{what}: malformed trigger event {dict(event)!r}")
    if status == TIMEOUT:
        raise AirflowSensorTimeout(f"{what}: timed out: {message}")
    if status == ERROR:
        raise TriggerEventError(f"{what}: {message}")
    missing = [key for key in requires if key not in event]
    if missing:
        raise TriggerEventError(f"{what}: trigger event lacks {missing}: {dict(event)!r}")
    return dict(event)
