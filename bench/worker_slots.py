"""The worker-slot share of deferrable gates, measured on the CeleryExecutor stack.

One run of a Riak rolling backup (2 sandbox nodes) on the stack of tests/e2e/celery_stack.py
(PostgreSQL, Redis, api-server, scheduler, dag-processor, triggerer, two Celery workers), with
deferrable health gates that wait `--gate-polls` pokes of `--poke-interval` seconds each for the
vnodes, then as many for the handoffs, of every node. The defaults are a production gate, not
scaled down: poke 30 s, 4 polls = 2 minutes of missing primaries, then 2 minutes of handoffs, per
node (a run of about 9 minutes). `--poke-interval 10 --gate-polls 6` scales it down in time.

    worker-slot share = time the gate tasks ran on a worker / the gates' wall time

From the task-instance history in the metadata DB: Airflow's `log` table gets a row for every
state change of a task instance through the execution API: `running` when a worker starts an
execution of it, then `deferred` (it handed its wait to the triggerer), `success`, `failed` ...
when that execution ends. The time on a worker of a gate is the sum, over its executions (the
first, which defers, and the one that resumes after the trigger fired), of `running` -> the next
state; its wall time is its task instance's end_date - start_date (start_date is its first start:
a deferral keeps it). Goal: under 5%.

The same share is also printed from the workers' side, stricter: each Celery message's own
"succeeded in <s>" in the workers' logs (which adds the task process's start and its parse of the
DAG file, before the execution API hears of it).

    .venv/bin/python bench/worker_slots.py [--poke-interval 30] [--gate-polls 4]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

EXECUTING = re.compile(r"\[([0-9a-f-]{36})\] Executing workload in Celery: .*?task_id='([^']+)'")
SUCCEEDED = re.compile(r"\[([0-9a-f-]{36})\] succeeded in ([0-9.]+)s")
GATE_SUFFIXES = (".vnodes_gate", ".handoff_gate")


def slot_seconds(logs: Path) -> dict[str, list[float]]:
    """task_id -> the seconds each of its Celery messages held a worker slot."""
    task_of: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for worker_log in logs.glob("w*.log"):
        text = worker_log.read_text(errors="replace")
        task_of.update({m.group(1): m.group(2) for m in EXECUTING.finditer(text)})
        seconds.update({m.group(1): float(m.group(2)) for m in SUCCEEDED.finditer(text)})
    held: dict[str, list[float]] = {}
    for message, task_id in task_of.items():
        if message in seconds:
            held.setdefault(task_id, []).append(seconds[message])
    return held


def executions_on_workers(stack, dag_id: str, run_id: str) -> dict[str, list[float]]:
    """task_id -> the seconds of each of its executions on a worker, from the task-instance
    history (`log`: a `running` row, then the row of the state that execution ended in)."""
    rows = stack.query(
        "select task_id, event, extract(epoch from dttm) from log where dag_id = %s and run_id = %s "
        "and task_id is not null and event in ('running', 'deferred', 'success', 'failed', 'up_for_retry', "
        "'up_for_reschedule', 'skipped') order by dttm, id",
        dag_id, run_id,
    )
    started: dict[str, float] = {}
    held: dict[str, list[float]] = {}
    for task_id, event, at in rows:
        if event == "running":
            started[task_id] = float(at)
        elif task_id in started:
            held.setdefault(task_id, []).append(float(at) - started.pop(task_id))
    return held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--poke-interval", type=int, default=30, help="seconds between a gate's polls")
    parser.add_argument("--gate-polls", type=int, default=4,
                        help="polls each gate waits (primaries missing, then handoffs waiting)")
    args = parser.parse_args(argv)

    dag_id, run_id = "riak_slots", "slots"
    work = Path(tempfile.mkdtemp(prefix="abp-bench-slots-"))
    work.chmod(0o755)
    try:
        return measure(args, work, dag_id, run_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args, work: Path, dag_id: str, run_id: str) -> int:
    from tests.e2e.celery_stack import CeleryStack
    from tests.sandbox import Sandbox
    from tests.sandbox.kinds import riak as kind

    with Sandbox(work / "sandbox", node_count=2) as sandbox:
        instances = kind.make_instances(sandbox, 2)
        entry = {
            "kind": "riak", "name": "slots", "schedule": None, "alert_emails": [], "retries": 0,
            "deferrable": True, "poke_interval": f"{args.poke_interval}s",
            "gate_timeout": f"{int(args.poke_interval * args.gate_polls * 4 + 300)}s",
            "retention": {"keep_last": 10},
            "nodes": [{"host": n.address, "node_name": kind.node_name(n), "instance_id": i}
                      for n, i in zip(sandbox.nodes, instances, strict=True)],
        }
        # each poke of a gate is one `riak-admin transfers`; the simulator counts them for the
        # whole cluster, so a gate waits about `gate_polls` pokes
        kind.reset_cluster(sandbox, count=2, primaries_missing_polls=args.gate_polls, handoff_polls=args.gate_polls,
                           stop_seconds=0.5, start_seconds=1, kv_not_up_lines=0)
        with CeleryStack(sandbox, {"entries": [entry]}, root=work / "stack", extra_env={
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }) as stack:
            stack.wait_parsed(dag_id)
            started = time.monotonic()
            stack.airflow("dags", "trigger", dag_id, "--run-id", run_id)
            timeout = args.poke_interval * args.gate_polls * 8 + 900
            state = stack.wait_run_ended(dag_id, run_id, timeout=timeout)
            elapsed = time.monotonic() - started
            rows = stack.query(
                "select task_id, extract(epoch from end_date - start_date), hostname from task_instance "
                "where dag_id = %s and run_id = %s", dag_id, run_id)
            held = executions_on_workers(stack, dag_id, run_id)
            messages = slot_seconds(stack.logs)
            deferred = {t for t, _, _ in rows if list((stack.logs / f"dag_id={dag_id}" / f"run_id={run_id}"
                                                       / f"task_id={t}").glob("attempt=*.log.trigger.*.log"))}
    if state != "success":
        print(f"worker_slots: the run ended {state}", file=sys.stderr)
        return 1
    gates = sorted(t for t, _, _ in rows if t.endswith(GATE_SUFFIXES))
    wall = {t: float(s) for t, s, _ in rows}
    print(f"riak_slots: 2 nodes, poke {args.poke_interval:g}s, {args.gate_polls} polls per gate; "
          f"run {elapsed:.0f}s; workers used: {sorted({h for _, _, h in rows})}")
    print(f"{'gate':<34} {'deferred':>8} {'runs':>4} {'on worker s':>11} {'celery s':>8} {'wall s':>7} {'share':>6}")
    total_held = total_messages = total_wall = 0.0
    for gate in gates:
        seconds, celery = held.get(gate, []), messages.get(gate, [])
        total_held += sum(seconds)
        total_messages += sum(celery)
        total_wall += wall[gate]
        print(f"{gate:<34} {str(gate in deferred):>8} {len(seconds):>4} {sum(seconds):>11.2f} {sum(celery):>8.2f} "
              f"{wall[gate]:>7.1f} {sum(seconds) / wall[gate]:>6.1%}")
    share = total_held / total_wall
    print(f"worker-slot share of the deferrable gates (task-instance history): {total_held:.1f}s / "
          f"{total_wall:.1f}s = {share:.1%} (goal < 5%)")
    print(f"the same from the workers' Celery messages (process start and DAG parse included): "
          f"{total_messages:.1f}s / {total_wall:.1f}s = {total_messages / total_wall:.1%}")
    # a gate that deferred ran (at least) twice on a worker: its first execution and its resume
    short = sum(max(0, 2 - len(held.get(g, []))) for g in gates if g in deferred)
    unmatched = sum(max(0, 2 - len(messages.get(g, []))) for g in gates if g in deferred)
    if unmatched:
        print(f"warning: {unmatched} gate message(s) without a matched worker log line: the Celery share is a lower bound")
    if short or not all(g in deferred for g in gates):
        print(f"worker_slots: a gate did not defer, or {short} of its executions are missing from the history",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
