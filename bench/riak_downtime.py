"""How long the rolling Riak backup keeps each node down, and how little the gates hold workers.

One run of the `riak_bench` DAG (dag.test, real Airflow, the sandbox: real sshd nodes, simulated
riak with the stop/start durations below, moto EC2 instances of 2 volumes each), then, in the
same process, the bare steps timed directly on each node: `riak stop`, the CreateSnapshots call,
`riak start` (over an already open SSH connection, so the bare sum is as small as it gets).

Prints, per node, the stop-to-start window from the simulator's timeline (from the moment
`riak stop` began to the moment `riak start` returned) divided by the sum of
the bare steps (goal: at most 1.5), and, for the deferrable gates, the share of the gates' wall
time during which a gate task ran on a worker (execute / execute_complete) rather than waiting in
the trigger (goal: under 5%).

    .venv/bin/python bench/riak_downtime.py [--stop-seconds 3] [--start-seconds 5]
                                            [--poke-interval 3] [--gate-polls 4]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def prepare_environment(work: Path) -> None:
    home, dags = work / "airflow-home", work / "dags"
    home.mkdir(parents=True)
    dags.mkdir(parents=True)
    (dags / "backup_dags.py").symlink_to(REPO / "dags" / "backup_dags.py")
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "BACKUP_CLUSTERS_FILE": str(work / "clusters.yaml"),
        }
    )


def instrument_gates(spans: dict[str, list[tuple[str, float, float]]]) -> None:
    """Record when each gate task runs on the worker (execute, execute_complete)."""
    from airflow_backup_provider.sensors.riak import RiakHealthSensor

    def timed(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            started = time.time()
            try:
                return method(self, *args, **kwargs)
            finally:
                spans.setdefault(self.task_id, []).append((method.__name__, started, time.time()))

        return wrapper

    RiakHealthSensor.execute = timed(RiakHealthSensor.execute)
    RiakHealthSensor.execute_complete = timed(RiakHealthSensor.execute_complete)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop-seconds", type=float, default=3.0, help="how long the simulated `riak stop` takes")
    parser.add_argument("--start-seconds", type=float, default=5.0, help="how long the simulated `riak start` takes")
    parser.add_argument("--poke-interval", type=float, default=3.0)
    parser.add_argument("--gate-polls", type=int, default=4, help="polls with primaries missing, then with handoffs waiting")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="riak-bench-"))
    prepare_environment(work)
    import yaml

    from airflow_backup_provider.hooks.ebs import EbsHook
    from airflow_backup_provider.hooks.remote import RemoteCommandHook
    from airflow_backup_provider.stores import riak as store
    from tests.harness import load_dagbag, migrate_db
    from tests.sandbox import Sandbox
    from tests.sandbox.kinds import riak as kind

    try:
        with Sandbox(work / "sandbox", node_count=3) as sandbox:
            os.environ.update(sandbox.connections())
            kind.reset_cluster(
                sandbox,
                primaries_missing_polls=args.gate_polls,
                handoff_polls=args.gate_polls,
                stop_seconds=args.stop_seconds,
                start_seconds=args.start_seconds,
                kv_not_up_lines=2,
                wait_interval=0.5,
            )
            instances = kind.make_instances(sandbox, 3)
            entry = {
                "kind": "riak",
                "name": "bench",
                "schedule": None,
                "retries": 0,
                "deferrable": True,
                "poke_interval": f"{args.poke_interval:g}s",
                "gate_timeout": "10m",
                "nodes": [
                    {"host": n.address, "node_name": kind.node_name(n), "instance_id": i}
                    for n, i in zip(sandbox.nodes, instances, strict=True)
                ],
            }
            (work / "clusters.yaml").write_text(yaml.safe_dump({"entries": [entry]}))
            migrate_db()
            spans: dict[str, list[tuple[str, float, float]]] = {}
            instrument_gates(spans)
            dag = load_dagbag(work / "dags" / "backup_dags.py").dags["riak_bench"]
            started = time.time()
            run = dag.test(logical_date=datetime(2026, 11, 20, tzinfo=UTC))
            wall = time.time() - started
            if str(run.state) != "success":
                print(f"the DAG run ended {run.state}", file=sys.stderr)
                return 1
            events = kind.read_timeline(sandbox, with_stopping=True)
            # from the moment `riak stop` began (stricter than from the moment the node was down)
            windows = kind.down_windows(events, since="stopping")

            # the bare steps, on the same nodes, in the same run
            bare: dict[str, dict[str, float]] = {}
            ebs = EbsHook(aws_conn_id="aws_default")
            for node, instance_id in zip(sandbox.nodes, instances, strict=True):
                with RemoteCommandHook(ssh_conn_id="backup_ssh", host=node.address) as hook:
                    hook.get_conn()
                    t0 = time.perf_counter()
                    hook.run(store.stop_argv()).check()
                    t1 = time.perf_counter()
                    ebs.create_snapshots_for_instance(instance_id, {"bench": "bare"}, "bench: bare CreateSnapshots")
                    t2 = time.perf_counter()
                    hook.run(store.start_argv()).check()
                    t3 = time.perf_counter()
                bare[kind.node_name(node)] = {"stop": t1 - t0, "snapshot": t2 - t1, "start": t3 - t2}

        print(f"riak_bench: 3 nodes, DAG run {wall:.1f}s (dag.test); simulated riak stop {args.stop_seconds:g}s, "
              f"riak start {args.start_seconds:g}s; gates poll every {args.poke_interval:g}s")
        print(f"max nodes down at once: {kind.max_down_at_once(events)}")
        print(f"{'node':<22} {'window':>8} {'stop':>7} {'snapshot':>9} {'start':>7} {'bare sum':>9} {'ratio':>6}")
        ratios = []
        for name, steps in bare.items():
            window = windows[name][0]
            total = sum(steps.values())
            ratios.append(window / total)
            print(f"{name:<22} {window:>7.2f}s {steps['stop']:>6.2f}s {steps['snapshot']:>8.2f}s "
                  f"{steps['start']:>6.2f}s {total:>8.2f}s {window / total:>6.2f}")
        print(f"downtime ratio (window / bare steps): max {max(ratios):.2f}  (goal <= 1.5)")

        gate_wall = slot = 0.0
        for _task_id, calls in spans.items():
            gate_wall += max(end for _, _, end in calls) - min(start for _, start, _ in calls)
            slot += sum(end - start for _, start, end in calls)
        print(f"deferrable gates: {len(spans)} gate tasks, {gate_wall:.1f}s of gate wall time, "
              f"{slot:.3f}s on a worker: share {100 * slot / gate_wall:.2f}%  (goal < 5%)")
        print("  (time inside execute/execute_complete; a real worker also spends its task start-up twice "
              "per deferred gate, which dag.test does not show)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
