"""Let one run of a DAG at a time past its first task, whatever the run types.

``max_active_runs=1`` is not enough: Airflow 3 counts a backfill's runs apart from the DAG's own
(a backfill has its own ``max_active_runs``, 10 unless given), so a backfill of a Riak cluster
would otherwise stop nodes in several runs at once, next to the scheduled run.

The sensor is every generated DAG's first task. A run goes past it only when no other running
run of the DAG has it ``running`` (deciding right now) or ``success`` (inside its backup, its
last task not finished). Two runs that look at the same moment both see the other ``running``
and both wait for the next poke; of two runs that look one after the other, the later one sees
the earlier one. So at most one run is ever past it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_backup_provider.connections import check_connections

# The gate's states, in another run, that mean "that run is past it, or deciding right now".
HOLDING_STATES = frozenset({"running", "success"})
# The last task's states that mean the run is over (it runs `all_done`, so it always ends).
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def runs_holding_the_turn(
    task_states: Mapping[str, Mapping[str, Any]], *, gate_task_id: str, last_task_id: str, own_run_id: str | None
) -> list[str]:
    """Other runs past the gate (or deciding) whose last task has not finished.

    `task_states` is what the Task SDK's ``get_task_states`` returns: ``{run_id: {task_id: state}}``.
    """
    return sorted(
        run_id
        for run_id, states in task_states.items()
        if run_id != own_run_id
        and states.get(gate_task_id) in HOLDING_STATES
        and states.get(last_task_id) not in FINISHED_STATES
    )


class UnknownParamError(AirflowFailException):
    """A trigger conf key that names no param of the DAG (a retry cannot help: fail at once)."""


def check_conf_keys(conf: Mapping[str, Any] | None, params: Iterable[str]) -> None:
    """Refuse conf keys that are not params of the DAG, naming the key and the closest param.

    Airflow's trigger validation checks the values of the params a DAG declares and keeps any
    other key silently: ``{"dry-run": true}`` or ``{"Dry_run": true}`` would be a real run, and a
    misspelt ``nodes`` would back up every node.
    """
    known = sorted(params)
    unknown = sorted(str(key) for key in (conf or {}) if key not in known)
    if not unknown:
        return
    by_lower = {name.lower(): name for name in known}

    def described(key: str) -> str:
        quoted = repr(key[:80]) + ("…" if len(key) > 80 else "")
        close = difflib.get_close_matches(key.lower().replace("-", "_"), list(by_lower), n=1, cutoff=0.6)
        return quoted + (f" (did you mean {by_lower[close[0]]!r}?)" if close else "")

    listed = ", ".join(described(key) for key in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    raise UnknownParamError(
        f"trigger conf: {listed} {'is not a param' if len(unknown) == 1 else 'are not params'} of this DAG "
        f"(its params: {', '.join(known)}); nothing was run"
    )


class OneRunAtATimeSensor(BaseSensorOperator):
    """
    Wait until no other run of this DAG is past this task and still running.

    Runs in ``mode="reschedule"`` (a waiting run holds no worker slot between pokes), with
    ``exponential_backoff`` so that runs waiting together do not keep looking at the same moment.

    :param last_task_id: the DAG's last task (``all_done``); a run whose last task finished is over.
    :param connections: ``{conn id: argument naming it}`` the DAG's tasks use; as the first task
        of every DAG, the gate fails at once (no retry) on the first one that does not exist,
        before any node is touched.

    :param shares_turn_with: other DAGs of the same cluster whose runs past their own gate (same
        task ids) hold this DAG's turn too, e.g. a restore drill that touches the cluster's nodes
        and its backup DAG: each lists the other.

    It also fails at once on a trigger conf key that is no param of the DAG (:func:`check_conf_keys`).
    """

    ui_color = "#d8d8f0"

    def __init__(
        self,
        *,
        last_task_id: str = "report",
        connections: Mapping[str, str] | None = None,
        shares_turn_with: Iterable[str] = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("exponential_backoff", True)
        super().__init__(**kwargs)
        self.last_task_id = last_task_id
        self.connections = dict(connections or {})
        self.shares_turn_with = list(shares_turn_with)

    def execute(self, context: Any) -> Any:
        # the declared params: the context's also hold every conf key
        declared = {*(self.dag.params if self.has_dag() else ()), *(self.params or ())}
        check_conf_keys(getattr(context.get("dag_run"), "conf", None), declared)
        check_connections(self.connections)
        return super().execute(context)

    def poke(self, context: Any) -> bool:
        ti = context["ti"]
        for dag_id in [ti.dag_id, *self.shares_turn_with]:
            states = ti.get_task_states(dag_id=dag_id, task_ids=[self.task_id, self.last_task_id])
            # a run id is unique within its DAG only: this run is left out of its own DAG's runs
            own = context["dag_run"].run_id if dag_id == ti.dag_id else None
            candidates = runs_holding_the_turn(
                states, gate_task_id=self.task_id, last_task_id=self.last_task_id, own_run_id=own
            )
            # A run cleared while waiting in the queue, or ended by hand, is not running: it holds nothing.
            if candidates and ti.get_dr_count(dag_id=dag_id, run_ids=candidates, states=["running"]):
                self.log.info("waiting for the run(s) in progress of %s: %s", dag_id, ", ".join(candidates))
                return False
        shared = f" (nor of {', '.join(self.shares_turn_with)})" if self.shares_turn_with else ""
        self.log.info("no other run of %s%s is in progress: this run goes on", ti.dag_id, shared)
        return True
