"""The Airflow connections a DAG uses: that they exist, with one clear error naming the missing one.

Checked twice: by the first task of every DAG (``wait_for_other_runs``), so that a run with a
misspelt connection id fails at once, before a node is touched; and by every AWS hook
(:class:`RequiresAwsConnection`), because the amazon provider only logs a warning for a missing
connection and goes on with the default credentials, which ends in botocore's
``NoCredentialsError`` (or worse, another account's credentials) far from the cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

# The operator arguments that name a connection, in every kind.
CONN_ID_ARGUMENTS = ("ssh_conn_id", "aws_conn_id", "smtp_conn_id")
# ssh_conn_id "local" runs the commands on the worker: no connection behind it.
NOT_CONNECTIONS = frozenset({"local"})


class MissingConnectionError(AirflowFailException):
    """A connection id the clusters file names does not exist (a retry cannot help: fail at once)."""


def require_connection(conn_id: str, *, argument: str) -> Any:
    """The connection `conn_id` (Airflow's own lookup: env, secrets backends, the metadata DB)."""
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise MissingConnectionError(
            f"{argument}: Airflow connection {conn_id!r} does not exist; create it (UI: Admin > Connections, "
            f"or AIRFLOW_CONN_{conn_id.upper()}) or change {argument} in the clusters file"
        ) from None


def check_connections(needed: Mapping[str, str]) -> None:
    """Fail on the first of `needed` ({conn id: argument that names it}) that does not exist."""
    for conn_id, argument in sorted(needed.items()):
        require_connection(conn_id, argument=argument)


def connections_used(tasks: Iterable[Any], *, extra: Mapping[str, str] = ()) -> dict[str, str]:
    """{conn id: argument} of every connection the tasks name (mapped tasks: their partial arguments).

    Read from the tasks rather than from the entry: an entry's defaults name connections its kind
    never uses (an EBS policy has an ``ssh_conn_id`` too), and only the used ones must exist.
    """
    found: dict[str, str] = dict(extra)
    for task in tasks:
        partial = getattr(task, "partial_kwargs", None) or {}
        for argument in CONN_ID_ARGUMENTS:
            value = partial.get(argument) if argument in partial else getattr(task, argument, None)
            if isinstance(value, str) and value and value not in NOT_CONNECTIONS and "{{" not in value:
                found.setdefault(value, argument)
    return found


class RequiresAwsConnection:
    """Mixin for AwsBaseHook subclasses: a named connection that does not exist is an error here.

    ``aws_conn_id=None`` still means "boto3's default credential chain", as in the amazon provider.
    """

    aws_conn_id: str | None

    @cached_property
    def conn_config(self) -> Any:
        if self.aws_conn_id:
            require_connection(self.aws_conn_id, argument="aws_conn_id")
        return super().conn_config  # type: ignore[misc]
