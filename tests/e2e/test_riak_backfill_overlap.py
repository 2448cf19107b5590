"""Runs of one Riak cluster never overlap, with the real scheduler, whatever their types.

Airflow counts a backfill's runs apart from the DAG's `max_active_runs`: a backfill of 2 days
with `--max-active-runs 2` starts its 2 runs together, and a manual trigger runs beside them.
The first task of every generated DAG (`wait_for_other_runs`) lets one of them at a time into
the roll: the simulator's timeline never shows two nodes down, and no two runs are inside
their backup at the same time.
"""

from __future__ import annotations

import itertools
import time

import pytest

from tests.e2e.stack import airflow_stack
from tests.sandbox.kinds import riak as kind

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

NAME = "overlap"
DAG_ID = f"riak_{NAME}"
GATE = "wait_for_other_runs"


def inside_windows(stack) -> dict[str, tuple[str, str]]:
    """Per run: from the end of its gate to the start of its report (the roll itself)."""
    rows = stack.query(
        "select g.run_id, g.end_date, r.start_date from task_instance g join task_instance r "
        "on r.dag_id = g.dag_id and r.run_id = g.run_id and r.task_id = 'report' "
        "where g.dag_id = ? and g.task_id = ?",
        DAG_ID,
        GATE,
    )
    return {run_id: (str(gate_end), str(report_start)) for run_id, gate_end, report_start in rows}


def test_backfill_and_manual_runs_take_turns(sandbox, tmp_path):
    instances = kind.make_instances(sandbox, 2)
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=1, handoff_polls=1, stop_seconds=0.5,
                       start_seconds=1.5, kv_not_up_lines=0)
    nodes = sandbox.nodes[:2]
    clusters = {
        "entries": [
            {
                "kind": "riak",
                "name": NAME,
                "schedule": "@daily",
                "start_date": "2026-01-01",
                "alert_emails": [],
                "retries": 0,
                "deferrable": False,
                "poke_interval": "1s",
                "gate_timeout": "120s",
                "retention": {"keep_last": 10},
                "nodes": [
                    {"host": n.address, "node_name": kind.node_name(n), "instance_id": i}
                    for n, i in zip(nodes, instances, strict=True)
                ],
            }
        ]
    }
    started = time.monotonic()
    with airflow_stack(tmp_path, sandbox, clusters, DAG_ID) as stack:
        stack.wait_for(lambda: stack.query("select 1 from serialized_dag where dag_id = ?", DAG_ID), 90,
                       f"{DAG_ID} parsed")
        # two backfill runs allowed at once, and a manual run besides
        stack.backfill("--max-active-runs", "2", "--from-date", "2026-11-21", "--to-date", "2026-11-22")
        stack.airflow("dags", "trigger", DAG_ID, "--run-id", "manual_run")

        def ended() -> bool:
            rows = stack.query("select state from dag_run where dag_id = ?", DAG_ID)
            return len(rows) == 3 and all(s in ("success", "failed") for (s,) in rows)

        stack.wait_for(ended, timeout=900, what="3 runs of the cluster")
        runs = dict(stack.query("select run_id, state from dag_run where dag_id = ?", DAG_ID))
        assert set(runs.values()) == {"success"}, runs
        # the backfill really ran its runs together: they waited at the gate for each other
        (waits,) = stack.query(
            "select count(*) from task_reschedule tr join task_instance ti on ti.id = tr.ti_id "
            "where ti.dag_id = ? and ti.task_id = ?",
            DAG_ID,
            GATE,
        )[0]
        assert waits >= 1, "no run waited at the gate: the test did not make runs overlap"

    windows = inside_windows(stack)
    assert len(windows) == 3, windows
    for (a, (a_in, a_out)), (b, (b_in, b_out)) in itertools.combinations(sorted(windows.items()), 2):
        assert a_out <= b_in or b_out <= a_in, f"runs {a} and {b} were inside the roll together: {windows}"
    timeline = kind.read_timeline(sandbox)
    assert sum(e.event == "stop" for e in timeline) == 6, timeline  # 3 runs x 2 nodes
    assert kind.max_down_at_once(timeline) == 1
    assert all(kind.node_state(n)["running"] for n in nodes)
    print(f"\nriak overlap e2e: 3 runs, {waits} gate waits, {time.monotonic() - started:.0f}s")
