"""Sensors of the devicedb DAGs: the cluster snapshot completes; restarted nodes answer; the restore is verified."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from airflow_backup_provider.config.devicedb import DevicedbNodeSpec
from airflow_backup_provider.hooks.devicedb import DevicedbError, hook_for_node
from airflow_backup_provider.operators.base import BackupOperatorMixin
from airflow_backup_provider.operators.devicedb_restore import RESOLVE_TASK_ID
from airflow_backup_provider.stores import devicedb as ddb
from airflow_backup_provider.triggers.devicedb import DevicedbSnapshotTrigger
from airflow_backup_provider.triggers.events import read_event


class _DevicedbNodesSensor(BaseSensorOperator):
    ui_color = "#d8f0e0"

    def __init__(
        self,
        *,
        nodes: Sequence[DevicedbNodeSpec],
        http_timeout: float = 30.0,
        ssh_tunnel: bool = False,
        ssh_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.nodes = list(nodes)
        self.http_timeout = http_timeout
        self.ssh_tunnel = ssh_tunnel
        self.ssh_conn_id = ssh_conn_id

    def hook(self, spec: DevicedbNodeSpec):
        return hook_for_node(spec, timeout=self.http_timeout, ssh_tunnel=self.ssh_tunnel, ssh_conn_id=self.ssh_conn_id)


class DevicedbSnapshotSensor(_DevicedbNodesSensor):
    """
    Wait until every node reports the run's snapshot ``completed``.

    ``failed`` on any node fails the task at once (no retry: the snapshot is broken), and so does
    a node that answers 500 ``No snapshot directory configured`` (it will never take it); ``missing``
    or no answer is tolerated for ``missing_grace`` seconds after the trigger, then fails it.
    Deferrable: the triggerer polls (:class:`DevicedbSnapshotTrigger`, through the SSH tunnel too
    when ``ssh_tunnel`` is on) and the task fails the same ways.
    """

    def __init__(
        self,
        *,
        trigger_task_id: str = "trigger_snapshot",
        missing_grace: float = 300.0,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", "wait_for_snapshot")
        super().__init__(**kwargs)
        self.trigger_task_id = trigger_task_id
        self.missing_grace = missing_grace
        self.deferrable = deferrable
        self._snapshot: dict[str, Any] = {}

    def _load(self, context: Any) -> dict[str, Any]:
        snapshot = context["ti"].xcom_pull(task_ids=self.trigger_task_id)
        if not snapshot or not snapshot.get("uuid"):
            raise AirflowException(f"{self.trigger_task_id} recorded no snapshot UUID for this run")
        return snapshot

    def execute(self, context: Any) -> Any:
        self._snapshot = self._load(context)
        if self.deferrable:
            self.defer(
                trigger=DevicedbSnapshotTrigger(
                    nodes=self.nodes,
                    uuid=self._snapshot["uuid"],
                    triggered_at=self._snapshot["triggered_at"],
                    missing_grace=self.missing_grace,
                    poll_interval=self.poke_interval,
                    http_timeout=self.http_timeout,
                    ssh_tunnel=self.ssh_tunnel,
                    ssh_conn_id=self.ssh_conn_id,
                    deadline=time.time() + self.timeout,
                ),
                method_name="execute_complete",
                # the trigger's own deadline comes first: it says what the nodes answered last
                timeout=timedelta(seconds=self.timeout + 2 * self.poke_interval + 4 * self.http_timeout + 60),
            )
        return super().execute(context)

    def poke(self, context: Any) -> bool:
        uuid = self._snapshot["uuid"]
        statuses: dict[str, str] = {}
        errors: dict[str, str] = {}
        for spec in self.nodes:
            with self.hook(spec) as hook:
                try:
                    statuses[spec.label] = hook.snapshot_status(uuid).status
                except DevicedbError as exc:
                    statuses[spec.label] = ddb.status_error_kind(exc.http_status, exc.detail)
                    errors[spec.label] = str(exc)
        verdict = ddb.judge_snapshot(
            statuses,
            triggered_at=datetime.fromisoformat(self._snapshot["triggered_at"]),
            now=datetime.now(UTC),
            missing_grace=timedelta(seconds=self.missing_grace),
            errors=errors,
        )
        self.log.info("snapshot %s: %s; %s", uuid, verdict.reason, statuses)
        if verdict.state == ddb.FAILED:
            raise AirflowFailException(f"cluster snapshot {uuid}: {verdict.reason}; statuses {statuses}")
        return verdict.done

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> None:
        done = read_event(event, what="devicedb snapshot wait", requires=("uuid", "statuses"))
        self.log.info("%s", done["message"])


class DevicedbNodesUpSensor(_DevicedbNodesSensor):
    """Wait until every node answers the documented API again (after a restart)."""

    def __init__(self, *, probe_uuid_task_id: str = "resolve_snapshot", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe_uuid_task_id = probe_uuid_task_id

    def poke(self, context: Any) -> bool:
        manifest = context["ti"].xcom_pull(task_ids=self.probe_uuid_task_id) or {}
        uuid = manifest.get("uuid")
        if not uuid:
            raise AirflowException(f"{self.probe_uuid_task_id} recorded no snapshot")
        down = []
        for spec in self.nodes:
            with self.hook(spec) as hook:
                try:
                    hook.snapshot_status(uuid)
                except DevicedbError as exc:
                    down.append(f"{spec.label} ({exc})")
        if down:
            self.log.info("not answering yet: %s", "; ".join(down))
        return not down


class DevicedbVerifyRestoreSensor(BackupOperatorMixin, BaseSensorOperator):
    """
    The restored cluster is the snapshot: every node reports the same membership (and the one
    recorded at backup time), and the manifest's check key reads back through every node.

    Pokes until it passes or ``timeout`` ends (a restarted cluster needs a moment to serve reads);
    then fails naming what was still wrong.
    """

    ui_color = "#d8f0e0"

    def __init__(
        self,
        *,
        nodes: Sequence[DevicedbNodeSpec],
        membership_check: str = "best_effort",
        http_timeout: float = 30.0,
        ssh_tunnel: bool = False,
        ssh_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", "verify_restore")
        kwargs.setdefault("mode", "poke")
        super().__init__(**kwargs)
        self.nodes = list(nodes)
        self.membership_check = membership_check
        self.http_timeout = http_timeout
        self.ssh_tunnel = ssh_tunnel
        self.ssh_conn_id = ssh_conn_id
        self._problems: list[str] = []

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowFailException(
                f"restored cluster not verified within {self.timeout}s: {'; '.join(self._problems) or exc}"
            ) from exc

    def poke(self, context: Any) -> bool:
        manifest = context["ti"].xcom_pull(task_ids=RESOLVE_TASK_ID)
        problems: list[str] = []
        notes: list[str] = []
        memberships: dict[str, list[str]] = {}
        check = manifest.get("check")
        for spec in self.nodes:
            hook = hook_for_node(spec, timeout=self.http_timeout, ssh_tunnel=self.ssh_tunnel, ssh_conn_id=self.ssh_conn_id)
            with hook:
                if check:
                    try:
                        values = hook.get_key(check["site"], check["bucket"], check["key"])
                        if check["value"] not in values:
                            problems.append(
                                f"{spec.label}: check key {check['key']!r} reads {values!r}, the snapshot holds {check['value']!r}"
                            )
                    except DevicedbError as exc:
                        problems.append(f"{spec.label}: check key unreadable: {exc}")
                if self.membership_check != "off":
                    try:
                        memberships[spec.label] = hook.membership()
                    except DevicedbError as exc:
                        (problems if self.membership_check == "required" else notes).append(
                            f"{spec.label}: membership unavailable: {exc}"
                        )
        distinct = {tuple(m) for m in memberships.values()}
        if len(distinct) > 1:
            problems.append("nodes report different memberships: " + "; ".join(f"{k}={v}" for k, v in memberships.items()))
        recorded = manifest.get("membership")
        if recorded and distinct and len(distinct) == 1 and list(next(iter(distinct))) != sorted(recorded):
            raise AirflowFailException(
                f"restored membership {list(next(iter(distinct)))} is not the one recorded at backup time {sorted(recorded)}"
            )
        for note in notes:
            self.log.warning("%s (membership_check is best_effort)", note)
        self._problems = problems
        if problems:
            self.log.info("not verified yet: %s", "; ".join(problems))
            return False
        detail = "check key read back on every node" if check else "no check key recorded"
        if memberships and len(distinct) == 1:
            detail += f"; every node reports membership {list(next(iter(distinct)))}"
        elif self.membership_check != "off":
            detail += "; membership not compared (" + "; ".join(notes) + ")"
        self.record_outcome(context, status="done", node=None, detail=detail)
        self.log.info("restored cluster verified: %s", detail)
        return True
