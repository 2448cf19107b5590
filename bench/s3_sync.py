"""Benchmark: the S3 sync hook vs `aws s3 sync` (awscli) and `rclone sync`, on one moto server.

    .venv/bin/python bench/s3_sync.py [--small 2000] [--large 4] [--large-mib 64]

For each case every tool syncs the same folder to its own fresh prefix; then each syncs again with
nothing changed. Printed: seconds per tool and ratio = ours / fastest other tool (goal <= 1.0).
Each tool runs with its default settings (ours: 16 concurrent requests; awscli: 10; rclone:
4 transfers, 8 checkers). Ours runs in-process, as it does inside an Airflow worker; the other two
are processes (their start-up time is part of what a cron job would pay, so it is counted).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BUCKET = "bench-sync"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto server did not start")


def make_small(root: Path, count: int) -> None:
    root.mkdir(parents=True)
    for i in range(count):
        sub = root / f"d{i % 20:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(os.urandom(1024 + (i * 37) % 7168))


def make_large(root: Path, count: int, mib: int) -> None:
    root.mkdir(parents=True)
    for i in range(count):
        with open(root / f"pack-{i}.pack", "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1024 * 1024))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=4)
    parser.add_argument("--large-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and case; the best one counts")
    args = parser.parse_args()

    moto, url = start_moto()
    work = Path(tempfile.mkdtemp(prefix="bench-s3sync-"))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "RCLONE_CONFIG_MOTO_TYPE": "s3", "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
        "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": "testing", "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": "testing",
        "RCLONE_CONFIG_MOTO_ENDPOINT": url, "RCLONE_CONFIG_MOTO_REGION": "us-east-1",
        "RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE": "true",
    }
    # the endpoint is plain HTTP; rclone's AWS SDK refuses a custom CA bundle with its transport
    env.pop("AWS_CA_BUNDLE", None)
    os.environ["AIRFLOW_CONN_BENCH_AWS"] = json.dumps(
        {"conn_type": "aws", "login": "testing", "password": "testing",
         "extra": {"region_name": "us-east-1", "endpoint_url": url}}
    )
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    import logging

    from airflow_backup_provider.hooks.object_store import ObjectStoreHook

    logging.disable(logging.INFO)
    rclone = shutil.which("rclone")
    if not rclone:
        raise SystemExit("rclone is not installed (apt-get install -y rclone)")
    try:
        ObjectStoreHook(aws_conn_id="bench_aws").get_conn().create_bucket(Bucket=BUCKET)

        def ours(folder: Path, prefix: str) -> None:
            ObjectStoreHook(aws_conn_id="bench_aws").sync_up(folder, BUCKET, prefix)

        def aws(folder: Path, prefix: str) -> None:
            subprocess.run(
                [str(VENV_BIN / "aws"), "--endpoint-url", url, "s3", "sync", str(folder), f"s3://{BUCKET}/{prefix}",
                 "--only-show-errors"], env=env, check=True,
            )

        def rclone_sync(folder: Path, prefix: str) -> None:
            subprocess.run([rclone, "sync", str(folder), f"moto:{BUCKET}/{prefix}"], env=env, check=True)

        tools = {"ours": ours, "awscli": aws, "rclone": rclone_sync}
        small, large = work / "small", work / "large"
        make_small(small, args.small)
        make_large(large, args.large, args.large_mib)
        rows = []
        # every repetition syncs into fresh prefixes (a first upload), then re-syncs them unchanged
        first: dict[str, dict[str, float]] = {}
        again: dict[str, dict[str, float]] = {}
        for rep in range(args.repeat):
            for label, folder in ((f"{args.small} small files", small), (f"{args.large} x {args.large_mib} MiB", large)):
                for name, tool in tools.items():
                    prefix = f"{name}/{folder.name}/{rep}"
                    started = time.perf_counter()
                    tool(folder, prefix)
                    elapsed = time.perf_counter() - started
                    first.setdefault(label, {})[name] = min(elapsed, first.get(label, {}).get(name, elapsed))
                    started = time.perf_counter()
                    tool(folder, prefix)
                    elapsed = time.perf_counter() - started
                    key = f"re-sync, nothing changed ({label})"
                    again.setdefault(key, {})[name] = min(elapsed, again.get(key, {}).get(name, elapsed))
        rows = [*first.items(), *again.items()]
    finally:
        os.killpg(moto.pid, signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)

    print(f"best of {args.repeat} runs, seconds")
    print(f"{'case':<52} {'ours':>8} {'awscli':>8} {'rclone':>8}  ratio ours/fastest other")
    for label, times in rows:
        best = min(times["awscli"], times["rclone"])
        print(f"{label:<52} {times['ours']:8.2f} {times['awscli']:8.2f} {times['rclone']:8.2f}  {times['ours'] / best:6.2f}")


if __name__ == "__main__":
    main()
