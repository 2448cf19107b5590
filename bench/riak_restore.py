"""How long the rolling Riak restore keeps each node down, against the bare steps.

One backup run of `riak_bench` (to have snapshots), then one run of `riak_bench_restore` (dag.test,
real Airflow, the sandbox: real sshd nodes, simulated riak with the stop/start durations below and
simulated block devices, moto EC2 instances of 2 volumes each, the data volume mounted). Then, in
the same process, the bare steps timed directly on each node: `riak stop`, the swap of its data
volume done by hand with the same calls (umount, DetachVolume, the volume_available waiter,
AttachVolume, the volume_in_use waiter, lsblk, mount) onto a volume made beforehand from the same
snapshot (the DAG too makes its volumes before it stops the node), `riak start`, over an already
open SSH connection.

Prints, per node, the window from the moment `riak stop` began to the moment `riak start`
returned (the simulator's timeline) divided by the bare sum (goal: at most 1.5).

    .venv/bin/python bench/riak_restore.py [--stop-seconds 3] [--start-seconds 5] [--poke-interval 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.riak_downtime import prepare_environment  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop-seconds", type=float, default=3.0, help="how long the simulated `riak stop` takes")
    parser.add_argument("--start-seconds", type=float, default=5.0, help="how long the simulated `riak start` takes")
    parser.add_argument("--poke-interval", type=float, default=1.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="riak-restore-bench-"))
    prepare_environment(work)
    import yaml

    from airflow_backup_provider.hooks.ebs import EbsHook
    from airflow_backup_provider.hooks.remote import RemoteCommandHook
    from airflow_backup_provider.stores import blockdev
    from airflow_backup_provider.stores import riak as store
    from tests.harness import load_dagbag, migrate_db
    from tests.sandbox import Sandbox
    from tests.sandbox.kinds import riak as kind

    def settle(sandbox, instances) -> None:
        kind.reset_cluster(
            sandbox, primaries_missing_polls=1, handoff_polls=1, stop_seconds=args.stop_seconds,
            start_seconds=args.start_seconds, kv_not_up_lines=1, wait_interval=0.2,
        )
        for node, instance_id in zip(sandbox.nodes, instances, strict=True):
            kind.stand_for_instance(sandbox, node, instance_id, {kind.DATA_DEVICE: kind.DATA_MOUNT})

    try:
        with Sandbox(work / "sandbox", node_count=3) as sandbox:
            os.environ.update(sandbox.connections())
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
                    {"host": n.address, "node_name": kind.node_name(n), "instance_id": i,
                     "mounts": {kind.DATA_DEVICE: kind.DATA_MOUNT}}
                    for n, i in zip(sandbox.nodes, instances, strict=True)
                ],
            }
            (work / "clusters.yaml").write_text(yaml.safe_dump({"entries": [entry]}))
            migrate_db()
            bag = load_dagbag(work / "dags" / "backup_dags.py")
            settle(sandbox, instances)
            backup = bag.dags["riak_bench"].test(logical_date=datetime(2026, 11, 20, tzinfo=UTC))
            if str(backup.state) != "success":
                print(f"the backup run ended {backup.state}", file=sys.stderr)
                return 1
            settle(sandbox, instances)
            started = time.time()
            run = bag.dags["riak_bench_restore"].test(
                logical_date=datetime(2026, 12, 1, tzinfo=UTC), run_conf={"logical_date": "2026-11-20", "confirm": "bench"}
            )
            wall = time.time() - started
            if str(run.state) != "success":
                print(f"the restore run ended {run.state}", file=sys.stderr)
                return 1
            events = kind.read_timeline(sandbox, with_stopping=True)
            windows = kind.down_windows(events, since="stopping")
            max_down = kind.max_down_at_once(events)

            # the bare steps, on the same nodes, in the same run: new volumes made (not timed) from
            # the snapshots the restore used, then stop + swap + start timed
            settle(sandbox, instances)
            ebs = EbsHook(aws_conn_id="aws_default")
            bare: dict[str, dict[str, float]] = {}
            for node, instance_id in zip(sandbox.nodes, instances, strict=True):
                old = next(v for v in ebs.find_volumes(instance_id=instance_id) if v.device == kind.DATA_DEVICE)
                new = ebs.create_volume({"AvailabilityZone": old.zone, "SnapshotId": old.snapshot_id, "Size": old.size_gib})
                ebs.wait_for_volumes([new.id], "available", delay=1)
                with RemoteCommandHook(ssh_conn_id="backup_ssh", host=node.address) as hook:
                    hook.get_conn()
                    t0 = time.perf_counter()
                    hook.run(store.stop_argv()).check()
                    t1 = time.perf_counter()
                    hook.run(blockdev.umount_argv(kind.DATA_MOUNT)).check()
                    ebs.detach_volume(old.id, instance_id, kind.DATA_DEVICE)
                    ebs.wait_for_volumes([old.id], "available", delay=1)
                    ebs.attach_volume(new.id, instance_id, kind.DATA_DEVICE)
                    ebs.wait_for_volumes([new.id], "in-use", delay=1)
                    devices = blockdev.parse_lsblk(hook.run(blockdev.lsblk_argv()).check().stdout)
                    device = blockdev.device_of_volume(devices, new.id, kind.DATA_DEVICE)
                    hook.run(blockdev.mount_argv(device.path, kind.DATA_MOUNT)).check()
                    t2 = time.perf_counter()
                    hook.run(store.start_argv()).check()
                    t3 = time.perf_counter()
                bare[kind.node_name(node)] = {"stop": t1 - t0, "swap": t2 - t1, "start": t3 - t2}

        print(f"riak_bench_restore: 3 nodes, DAG run {wall:.1f}s (dag.test); simulated riak stop {args.stop_seconds:g}s, "
              f"riak start {args.start_seconds:g}s; poke every {args.poke_interval:g}s")
        print(f"max nodes down at once: {max_down}")
        print(f"{'node':<22} {'window':>8} {'stop':>7} {'swap':>7} {'start':>7} {'bare sum':>9} {'ratio':>6}")
        ratios = []
        for name, steps in bare.items():
            window = windows[name][0]
            total = sum(steps.values())
            ratios.append(window / total)
            print(f"{name:<22} {window:>7.2f}s {steps['stop']:>6.2f}s {steps['swap']:>6.2f}s "
                  f"{steps['start']:>6.2f}s {total:>8.2f}s {window / total:>6.2f}")
        print(f"downtime ratio (restore window / bare stop + swap + start): max {max(ratios):.2f}  (goal <= 1.5)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
