"""Benchmark: the bup save operator vs bare `bup index` + `bup save` on the same data.

    .venv/bin/python bench/bup_overhead.py [--mib 256] [--repeat 2]

Both save the same folder on a sandbox node into their own, already initialized repository on
another node (`bup save -r` over SSH). Bare: the two bup commands run directly on the node.
Operator: BupSaveOperator.execute over SSH, as the DAG runs it (connect; look for an existing save
of the logical date on the server while the host indexes; save; du for the report, beside it). Printed: best-of-N seconds and the ratio operator / bare (goal <= 1.1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


class _Ti:
    def xcom_push(self, key, value):  # the report's outcome record; not needed here
        pass


def make_data(root: Path, mib: int) -> None:
    root.mkdir(parents=True)
    for i in range(64):
        (root / "small" / f"{i % 8}").mkdir(parents=True, exist_ok=True)
        (root / "small" / f"{i % 8}" / f"f{i}.txt").write_bytes(os.urandom(8192))
    per_file = 16
    for i in range(max(1, mib // per_file)):
        with open(root / f"blob{i:03d}.bin", "wb") as f:
            f.write(os.urandom(per_file * 1024 * 1024))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

    from tests.sandbox import Sandbox
    from tests.sandbox.kinds.bup import install_bup_ssh, login

    root = Path(tempfile.mkdtemp(prefix="bench-bup-"))
    box = Sandbox(root, node_count=2, with_moto=False, with_smtp=False).start()
    try:
        os.environ.update(box.connections())
        install_bup_ssh(box)
        import logging

        logging.disable(logging.INFO)
        from airflow_backup_provider.operators.bup import BupSaveOperator
        from airflow_backup_provider.stores.bup import BupCommands, Remote

        host, server = box.nodes
        data = host.root / "data"
        make_data(data, args.mib)
        env = {**host.env(), "TZ": "UTC"}
        best = {"bare": float("inf"), "operator": float("inf")}
        day = datetime(2026, 11, 20, tzinfo=UTC)
        for rep in range(args.repeat):
            for kind in ("bare", "operator") if rep % 2 == 0 else ("operator", "bare"):
                name = f"{kind}{rep}"
                remote = Remote(host=server.address, path=str(server.root / "repos" / name), user=login())
                commands = BupCommands(bup_dir=str(host.root / "bup" / name), remote=remote)
                (server.root / "repos").mkdir(exist_ok=True)
                Path(commands.bup_dir).mkdir(parents=True)
                subprocess.run(commands.init(), env=env, check=True, capture_output=True)
                when = day + timedelta(days=rep)
                started = time.perf_counter()
                if kind == "bare":
                    subprocess.run(["bup", "-d", commands.bup_dir, "index", str(data)], env=env, check=True, capture_output=True)
                    subprocess.run(
                        ["bup", "-d", commands.bup_dir, "save", "-r", remote.spec(), "-n", "bench",
                         f"--date={int(when.timestamp())}", str(data)],
                        env=env, check=True, capture_output=True,
                    )
                else:
                    op = BupSaveOperator(
                        task_id="save", branch="bench", paths=[str(data)], host=host.address,
                        bup_dir=commands.bup_dir, remote=remote, ssh_conn_id="backup_ssh",
                        server={"host": server.address, "bup_dir": remote.path, "ssh_conn_id": "backup_ssh"},
                    )
                    result = op.execute({"params": {"dry_run": False}, "logical_date": when, "ti": _Ti()})
                    assert not result["skipped"], result
                best[kind] = min(best[kind], time.perf_counter() - started)
    finally:
        box.stop()
    print(f"data: {args.mib} MiB on {host.address}, repository on {server.address}; best of {args.repeat}")
    print(f"bare bup index + bup save : {best['bare']:7.2f} s")
    print(f"BupSaveOperator           : {best['operator']:7.2f} s")
    print(f"ratio operator / bare     : {best['operator'] / best['bare']:7.3f}  (goal <= 1.1)")


if __name__ == "__main__":
    main()
