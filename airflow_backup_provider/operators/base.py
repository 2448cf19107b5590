"""The one base of backup operators: the run's date, ``dry_run``, the outcome, the hooks.

Every backup operator of every kind derives from :class:`BackupOperator` (or, when it already has
another base such as the amazon provider's ``AwsBaseOperator[EbsHook]``, mixes in
:class:`BackupOperatorMixin` before it), so that these four run-level questions have one answer:

- **the run's date** (:meth:`~BackupOperatorMixin.run_date`): the run's logical date; for a manual
  run without one, the time it was queued (``dag_run.run_after``); always a timezone-aware
  standard-library ``datetime`` in UTC (:func:`airflow_backup_provider.dates.run_date`). Stable
  across retries and clears. Retention, snapshot tags, folder names and manifests all use it.
- **dry_run** (:meth:`~BackupOperatorMixin.is_dry_run`): the operator's ``dry_run`` argument when
  given (``True``/``False`` or a rendered ``"{{ params.dry_run }}"``), else the run's ``dry_run``
  param; read with :func:`airflow_backup_provider.flags.as_bool` (a rendered ``"False"`` is false,
  anything that is not a boolean is refused).
- **the outcome** (:meth:`~BackupOperatorMixin.record_outcome`): what the report shows, through
  :func:`airflow_backup_provider.operators.report.record_outcome`.
- **the hooks**: :meth:`~BackupOperatorMixin.remote_hook` (a node over SSH, from the operator's
  ``ssh_conn_id`` and ``sudo_user``) and :meth:`~BackupOperatorMixin.aws_hook` (from its
  ``aws_conn_id`` and ``region_name``). AWS operators on ``AwsBaseOperator`` use its ``self.hook``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from airflow.sdk import BaseOperator

from airflow_backup_provider import dates
from airflow_backup_provider.flags import as_bool
from airflow_backup_provider.hooks.remote import RemoteCommandHook
from airflow_backup_provider.operators import report

RemoteHookT = TypeVar("RemoteHookT", bound=RemoteCommandHook)
HookT = TypeVar("HookT")


class BackupOperatorMixin:
    """The run-level pieces every backup operator shares (no ``__init__``: it mixes with any base).

    Reads the operator's own attributes: ``dry_run`` (None: the run's param), ``ssh_conn_id`` and
    ``sudo_user`` for :meth:`remote_hook`, ``aws_conn_id`` and ``region_name`` for :meth:`aws_hook`.
    The conn ids have no default here: the DAG's first task checks the connections its tasks name
    (:mod:`airflow_backup_provider.connections`), so a task that uses none must name none.
    """

    dry_run: Any = None
    sudo_user: str | None = None
    region_name: str | None = None
    ssh_conn_id: str | None  # set by the operators that reach nodes
    aws_conn_id: str | None  # set by the operators that reach AWS

    def run_date(self, context: Mapping[str, Any]) -> datetime:
        """The date this run backs up: aware UTC (see the module's docstring)."""
        return dates.run_date(context)

    def is_dry_run(self, context: Mapping[str, Any]) -> bool:
        """The operator's ``dry_run`` when given, else the run's ``dry_run`` param, as a bool."""
        value = self.dry_run
        if value is None:
            value = (context.get("params") or {}).get("dry_run")
        return as_bool(value, "dry_run")

    def record_outcome(
        self,
        context: Any,
        *,
        status: str,
        node: str | None = None,
        produced: Sequence[dict[str, Any]] = (),
        detail: str = "",
        rows: Sequence[dict[str, Any]] = (),
        warnings: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Tell the report what this task did (:func:`report.record_outcome`)."""
        return report.record_outcome(
            context, status=status, node=node, produced=produced, detail=detail, rows=rows, warnings=warnings
        )

    def remote_hook(
        self, host: str, port: int | None = 22, *, hook_class: type[RemoteHookT] = RemoteCommandHook, **extra: Any
    ) -> RemoteHookT:
        """The SSH hook for one node, from this operator's ``ssh_conn_id`` and ``sudo_user``."""
        return hook_class(ssh_conn_id=self.ssh_conn_id, host=host, port=port, sudo_user=self.sudo_user, **extra)

    def aws_hook(self, hook_class: type[HookT], **extra: Any) -> HookT:
        """An AWS hook from this operator's ``aws_conn_id`` (and ``region_name`` when set)."""
        if self.region_name is not None:
            extra.setdefault("region_name", self.region_name)
        return hook_class(aws_conn_id=self.aws_conn_id, **extra)


class BackupOperator(BackupOperatorMixin, BaseOperator):
    """The base of every backup operator that has no other base (see the module's docstring)."""

    # Airflow's operator metaclass wraps each class's __init__; without one of our own, this class
    # would carry BaseOperator's, whose `inlets=None` (and callbacks' None) defaults `.partial()`
    # then gives every mapped task: its context build fails on `for inlet in None`.
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)


__all__ = ["BackupOperator", "BackupOperatorMixin"]
