"""What the one-run-at-a-time gate (every generated DAG's first task) must guarantee, read from
the stack's task instances."""

from __future__ import annotations

import itertools

from airflow_backup_provider.builders.common import TURN_GATE_TASK_ID


def inside_windows(stack, dag_id: str) -> dict[str, tuple]:
    """Per run of `dag_id`: from the end of its gate to the start of its report (the backup itself)."""
    rows = stack.query(
        "select g.run_id, g.end_date, r.start_date from task_instance g join task_instance r "
        "on r.dag_id = g.dag_id and r.run_id = g.run_id and r.task_id = 'report' "
        "where g.dag_id = %s and g.task_id = %s",
        dag_id,
        TURN_GATE_TASK_ID,
    )
    return {run_id: (gate_end, report_start) for run_id, gate_end, report_start in rows}


def assert_runs_took_turns(windows: dict[str, tuple]) -> None:
    for (a, (a_in, a_out)), (b, (b_in, b_out)) in itertools.combinations(sorted(windows.items()), 2):
        assert a_out <= b_in or b_out <= a_in, f"runs {a} and {b} were inside the backup together: {windows}"


def gate_waits(stack, dag_id: str) -> int:
    """How many times a run of `dag_id` found another one inside and waited (a reschedule each)."""
    ((waits,),) = stack.query(
        "select count(*) from task_reschedule tr join task_instance ti on ti.id = tr.ti_id "
        "where ti.dag_id = %s and ti.task_id = %s",
        dag_id,
        TURN_GATE_TASK_ID,
    )
    return waits
