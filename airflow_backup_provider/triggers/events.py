"""The one shape of every trigger event of this provider, and the one check of it.

An event is ``{"status": "success" | "error" | "timeout", "message": str, **data}``: the shape
the amazon provider's waiter triggers already fire (``EbsSnapshotCompletedTrigger``; their
``success`` carries no ``message``, so a success may omit it), so one reader serves ours and
theirs. Every ``execute_complete`` calls :func:`read_event`.

An ``error`` that a retry cannot mend (a devicedb snapshot that failed on a node) carries
``final: true``: it fails the task without its retries, as the same verdict does when poked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout
from airflow.triggers.base import TriggerEvent

SUCCESS = "success"
ERROR = "error"
TIMEOUT = "timeout"
STATUSES = (SUCCESS, ERROR, TIMEOUT)
FINAL = "final"


class TriggerEventError(AirflowException):
    """A trigger reported an error, or sent an event of the wrong shape."""


class TriggerEventFailure(TriggerEventError, AirflowFailException):
    """A trigger reported an error marked ``final``: the task fails without retrying."""


def event(status: str, message: str, /, *, final: bool = False, **data: Any) -> TriggerEvent:
    """Build the event a trigger yields (``data`` must be JSON-serialisable)."""
    if status not in STATUSES:
        raise ValueError(f"trigger event status {status!r} is not one of {', '.join(STATUSES)}")
    reserved = {"status", "message", FINAL} & data.keys()
    if reserved:
        raise ValueError(f"trigger event data may not use the keys {sorted(reserved)}")
    if final and status != ERROR:
        raise ValueError(f"only an error event can be final, not a {status!r} one")
    return TriggerEvent({"status": status, "message": str(message), **({FINAL: True} if final else {}), **data})


def read_event(event: Mapping[str, Any] | None, *, what: str, requires: Iterable[str] = ()) -> dict[str, Any]:
    """
    Return a ``success`` event's payload; raise for anything else.

    ``what`` names the wait in the error ("riak_1 handoff gate"); ``requires`` lists the data keys
    a success must carry. ``timeout`` raises ``AirflowSensorTimeout`` (no retry, like a sensor's own
    timeout); ``error`` and a malformed event raise ``TriggerEventError`` (retried by the task's
    retries), a ``final`` error ``TriggerEventFailure`` (not retried).
    """
    if not isinstance(event, Mapping):
        raise TriggerEventError(f"{what}: no trigger event (event is {event!r})")
    status = event.get("status")
    message = event.get("message", "" if status == SUCCESS else None)
    if status not in STATUSES or not isinstance(message, str) or not isinstance(event.get(FINAL, False), bool):
        raise TriggerEventError(f"{what}: malformed trigger event {dict(event)!r}")
    if status == TIMEOUT:
        raise AirflowSensorTimeout(f"{what}: timed out: {message}")
    if status == ERROR:
        raise (TriggerEventFailure if event.get(FINAL) else TriggerEventError)(f"{what}: {message}")
    missing = [key for key in requires if key not in event]
    if missing:
        raise TriggerEventError(f"{what}: trigger event lacks {missing}: {dict(event)!r}")
    return dict(event)
