"""Benchmark: the S3 sync hook vs `aws s3 sync` (awscli) and `rclone sync`, on one moto server.

    .venv/bin/python bench/s3_sync.py [--small 2000] [--large 4] [--large-mib 64] [--rounds 3]
    .venv/bin/python bench/s3_sync.py --small 0      # only the 4 x 64 MiB case

Every round, for each case, every tool syncs the same folder into an emptied moto (its reset, the
bucket created again: the receiver in the same state for every run), then syncs again with nothing
changed; the tools take turns in an order that rotates each round. Printed: every round's seconds and
ratio = ours / fastest other tool, then the medians (goal <= 1.0), and `uptime` before and after.
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
import statistics
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


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def ratio(times: dict[str, float]) -> float:
    return times["ours"] / min(times["awscli"], times["rclone"])


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
    parser.add_argument("--rounds", type=int, default=3, help="rounds; every tool runs once per round and case")
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
    print(f"uptime before: {uptime()}", flush=True)
    try:
        def fresh_bucket() -> None:
            """The receiver in the same state for every run: moto emptied (its reset), the bucket again
            (a moto server slows down as it fills)."""
            urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=60).close()
            ObjectStoreHook(aws_conn_id="bench_aws").get_conn().create_bucket(Bucket=BUCKET)

        def ours(folder: Path, prefix: str) -> None:
            ObjectStoreHook(aws_conn_id="bench_aws").sync_up(folder, BUCKET, prefix)

        def aws(folder: Path, prefix: str) -> None:
            subprocess.run(
                [str(VENV_BIN / "aws"), "--endpoint-url", url, "s3", "sync", str(folder), f"s3://{BUCKET}/{prefix}",
                 "--only-show-errors"], env=env, check=True,
            )

        def rclone_sync(folder: Path, prefix: str) -> None:
            subprocess.run([rclone, "sync", "-q", str(folder), f"moto:{BUCKET}/{prefix}"], env=env, check=True)

        tools = {"ours": ours, "awscli": aws, "rclone": rclone_sync}
        cases = []
        if args.small:
            small = work / "small"
            make_small(small, args.small)
            cases.append((f"{args.small} small files", small))
        if args.large:
            large = work / "large"
            make_large(large, args.large, args.large_mib)
            cases.append((f"{args.large} x {args.large_mib} MiB", large))
        fresh_bucket()
        ours(cases[0][1], "warmup")  # loads moto's S3 backend and our client once
        # per round, every tool syncs each case into an empty bucket (a first upload), then syncs it
        # again unchanged; the tools take turns in a rotating order, so that load from elsewhere on
        # the machine hits all alike. The median of the per-round ratios is the result.
        times: dict[str, list[dict[str, float]]] = {}
        names = list(tools)
        for round_no in range(args.rounds):
            order = names[round_no % len(names):] + names[: round_no % len(names)]
            for label, folder in cases:
                for name in order:
                    fresh_bucket()
                    prefix = f"{name}/{folder.name}"
                    started = time.perf_counter()
                    tools[name](folder, prefix)
                    first = time.perf_counter() - started
                    started = time.perf_counter()
                    tools[name](folder, prefix)
                    again = time.perf_counter() - started
                    for key, seconds in ((label, first), (f"re-sync, nothing changed ({label})", again)):
                        rounds = times.setdefault(key, [])
                        while len(rounds) <= round_no:
                            rounds.append({})
                        rounds[round_no][name] = seconds
            for key, rounds in times.items():
                t = rounds[round_no]
                print(
                    f"round {round_no + 1} ({' '.join(order)}): {key}: ours {t['ours']:.2f} s, awscli "
                    f"{t['awscli']:.2f} s, rclone {t['rclone']:.2f} s, ratio {ratio(t):.2f}", flush=True,
                )
    finally:
        os.killpg(moto.pid, signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)

    print(f"uptime after: {uptime()}")
    print(f"median of {args.rounds} rounds, seconds (ratio: median of the per-round ratios; goal <= 1.0)")
    print(f"{'case':<52} {'ours':>8} {'awscli':>8} {'rclone':>8}  ratio ours/fastest other")
    for key, rounds in times.items():
        med = {n: statistics.median(r[n] for r in rounds) for n in ("ours", "awscli", "rclone")}
        print(
            f"{key:<52} {med['ours']:8.2f} {med['awscli']:8.2f} {med['rclone']:8.2f}  "
            f"{statistics.median(ratio(r) for r in rounds):6.2f}"
        )

if __name__ == "__main__":
    main()
