"""Riak health gates: wait until ``riak-admin transfers`` says the cluster may lose the next node.

* ``gate="vnodes"``: no node down, no primary partition missing;
* ``gate="handoff"``: no partition waiting to be handed off;
* ``gate="all"``: both (the check before the first node is stopped).

Reschedule mode gives the worker slot back between pokes; deferrable mode hands the whole wait
to the triggerer (:class:`RiakTransfersTrigger`, SSHHookAsync). Either way the log says what the
gate waits for, e.g. ``'riak@10.0.0.3' waiting to handoff 6 partitions``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.exceptions import AirflowException

from airflow_backup_provider import dates
from airflow_backup_provider.hooks.remote import RemoteCommandHook
from airflow_backup_provider.stores import riak
from airflow_backup_provider.triggers.events import read_event
from airflow_backup_provider.triggers.riak import RiakTransfersTrigger


class RiakHealthSensor(BaseSensorOperator):
    """
    Wait until the Riak cluster, seen from ``host``, passes ``gate``.

    :param host: SSH address of the node to ask (the node just started).
    :param node: the Erlang name of that node, for the log.
    :param gate: ``vnodes``, ``handoff`` or ``all``.
    :param deferrable: wait in the triggerer instead of poking from a worker.
    :param poke_interval: seconds between looks (30 by default: polling very often slows handoff).
    :param timeout: seconds the gate may stay closed before the task fails (the file's
        ``gate_timeout``).
    """

    template_fields: Sequence[str] = ("host", "node")
    ui_color = "#d6ecff"

    def __init__(
        self,
        *,
        host: str,
        gate: str,
        node: str | None = None,
        port: int = 22,
        ssh_conn_id: str = "backup_ssh",
        sudo_user: str | None = None,
        command_timeout: float = 60.0,
        max_transport_failures: int = 5,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.host = host
        self.gate = riak.check_gate(gate)
        self.node = node or host
        self.port = port
        self.ssh_conn_id = ssh_conn_id
        self.sudo_user = sudo_user
        self.command_timeout = command_timeout
        self.max_transport_failures = max_transport_failures
        self.deferrable = deferrable

    def problems(self) -> list[str]:
        with RemoteCommandHook(
            ssh_conn_id=self.ssh_conn_id, host=self.host, port=self.port, sudo_user=self.sudo_user
        ) as hook:
            result = hook.run(riak.transfers_argv(), timeout=self.command_timeout)
        return riak.gate_problems(self.gate, result.stdout, result.exit_code, result.stderr)

    def poke(self, context: Any) -> bool:
        problems = self.problems()
        for problem in problems:
            self.log.info("%s gate for %s: %s", self.gate, self.node, problem)
        if not problems:
            self.log.info("%s gate for %s is open", self.gate, self.node)
        return not problems

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # no look from the worker first: even one SSH round trip here costs more worker time than
        # the whole deferral, and the trigger's first poll comes at once
        self.log.info("%s gate for %s: waiting in the triggerer (poll every %ss, at most %ss)",
                      self.gate, self.node, self.poke_interval, self.timeout)
        self.defer(
            trigger=RiakTransfersTrigger(
                host=self.host,
                gate=self.gate,
                deadline=time.time() + self.timeout,
                ssh_conn_id=self.ssh_conn_id,
                port=self.port,
                sudo_user=self.sudo_user,
                node=self.node,
                poll_interval=self.poke_interval,
                command_timeout=self.command_timeout,
                max_transport_failures=self.max_transport_failures,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + 4 * self.poke_interval + 120),
        )
        return None

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> None:
        done = read_event(event, what=f"{self.gate} gate for {self.node}")
        self.log.info("%s gate for %s is open after %s poll(s)", self.gate, self.node, done.get("polls"))


class RiakSnapshotsCompletedSensor(BaseSensorOperator):
    """
    Wait until every snapshot this run made of the cluster (found by its tags, so retries and
    re-runs are counted once) is ``completed``; fail when one is in ``error``.

    Deferrable: the wait runs in the triggerer (boto's ``snapshot_completed`` waiter).
    """

    ui_color = "#fff3c4"

    def __init__(
        self,
        *,
        cluster: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.cluster = cluster
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.deferrable = deferrable

    def hook(self):
        from airflow_backup_provider.hooks.ebs import EbsHook

        return EbsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def states(self, context: Any) -> dict[str, str]:
        from airflow_backup_provider.operators.riak import run_snapshot_filter

        found = self.hook().find_snapshots(run_snapshot_filter(self.cluster, dates.run_date(context)))
        return {s.id: s.state for s in found}

    def poke(self, context: Any) -> bool:
        states = self.states(context)
        failed = sorted(i for i, state in states.items() if state == "error")
        if failed:
            raise AirflowException(f"EBS snapshots of cluster {self.cluster} failed: {', '.join(failed)}")
        pending = sorted(i for i, state in states.items() if state != "completed")
        if pending:
            self.log.info("waiting for %d of %d snapshot(s): %s", len(pending), len(states), ", ".join(pending))
        else:
            self.log.info("all %d snapshot(s) of this run are completed", len(states))
        return not pending

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        from airflow_backup_provider.triggers.ebs import EbsSnapshotCompletedTrigger

        ids = sorted(self.states(context))
        self.defer(
            trigger=EbsSnapshotCompletedTrigger(
                snapshot_ids=ids,
                waiter_delay=max(1, int(self.poke_interval)),
                waiter_max_attempts=max(1, int(self.timeout // max(1, self.poke_interval)) + 1),
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
            ),
            method_name="execute_complete",
        )
        return None

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> None:
        done = read_event(event, what=f"EBS snapshots of cluster {self.cluster}")
        self.log.info("snapshots completed: %s", ", ".join(done.get("snapshot_ids") or []))
