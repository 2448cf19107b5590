"""SFTP-to-S3 upload throughput of a Cassandra node's files, against raw `ssh node cat file > /dev/null`.

Both measured in the same run, on the same files of one sandbox node (real sshd; moto S3):

    baseline: for every file, `ssh node cat FILE > /dev/null` (OpenSSH client, one after another)
    plain:    for every file, `ssh node cat FILE` piped into boto3's upload_fileobj (no hashing, no
              compression, no encryption) to the same moto server, one file after another with
              boto3's defaults (8 MiB parts, bodies signed over HTTP): a plain client against the
              same receiver. Not the receiver's limit: moto takes ours (4 files at a time) faster
    ours:     CassandraNodeHook + ObjectStoreHook as the upload task runs them: SFTP read-ahead,
              SHA-256, zstd, multipart upload with SSE, `upload_threads` files at a time

The receiver is in the same state for every measurement: moto is reset (emptied) and the bucket
created again before each upload run (a moto server slows down as it fills).
Prints the throughputs and ours / baseline (goal >= 0.7), and ours / plain beside it.

    .venv/bin/python bench/cassandra_upload.py [--files 8] [--mb 32] [--threads 4] [--level 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


BUCKET = "bench-cassandra"
GCM_ONLY = ["aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    """SSTable-like Data.db files: Cassandra compresses SSTables (LZ4), so mostly incompressible
    bytes with some repeated structure, like real Data.db files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        path = folder / f"nb-{index + 1}-big-Data.db"
        with open(path, "wb") as handle:
            written = 0
            while written < size:
                block = os.urandom(48 * 1024) + (b"partition-key:%08d|" % index) * 1024
                handle.write(block[: size - written])
                written += len(block[: size - written])
        files.append(path)
    return files


def ssh_cat_argv(sandbox, node, path: Path) -> list[str]:
    known_hosts = sandbox.root / "bench_known_hosts"
    known_hosts.write_text(f"{node.address} {sandbox.host_key_line}\n")
    user = os.environ.get("USER") or "root"
    return [
        "ssh", "-q", "-i", str(sandbox.client_key), "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"{user}@{node.address}", "cat", str(path),
    ]


def raw_ssh_cat(sandbox, node, files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        subprocess.run(ssh_cat_argv(sandbox, node, path), stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def fresh_bucket(sandbox) -> None:
    """An empty receiver: moto's own reset, then the bucket again."""
    urllib.request.urlopen(urllib.request.Request(f"{sandbox.moto_url}/moto-api/reset", method="POST"), timeout=60).close()
    sandbox.boto3_client("s3").create_bucket(Bucket=BUCKET)


def ssh_cat_plain_upload(sandbox, node, files: list[Path]) -> float:
    client = sandbox.boto3_client("s3")
    start = time.perf_counter()
    for path in files:
        with subprocess.Popen(ssh_cat_argv(sandbox, node, path), stdout=subprocess.PIPE) as proc:
            client.upload_fileobj(proc.stdout, BUCKET, f"plain/{path.name}")
        if proc.returncode:
            raise SystemExit(f"ssh cat {path} failed ({proc.returncode})")
    return time.perf_counter() - start


def ours(node, files: list[Path], threads: int, level: int, part_mb: int, round_id: str) -> float:
    from airflow_backup_provider.hooks.cassandra import CassandraNodeHook
    from airflow_backup_provider.hooks.object_store import ObjectStoreHook

    s3 = ObjectStoreHook(aws_conn_id="aws_default", compression_level=level, part_size=part_mb * 1024 * 1024)
    items = [(str(p), p.stat().st_size, f"bench/{round_id}/{p.name}.zst") for p in files]
    start = time.perf_counter()
    with CassandraNodeHook(ssh_conn_id="backup_ssh", host=node.address) as remote:
        results = remote.parallel(
            items, lambda item: remote.upload_file(s3, BUCKET, item[0], item[2], item[1]), threads
        )
    elapsed = time.perf_counter() - start
    assert all(r.size == size for r, (_, size, _) in zip(results, items, strict=True))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mb", type=int, default=32)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--part-mb", type=int, default=16, help="S3 part size (the hook's default)")
    parser.add_argument(
        "--cipher",
        choices=("default", "gcm"),
        default="gcm",
        help="gcm: the connection's disabled_algorithms leave paramiko AES-GCM (one pass instead of "
        "AES-CTR + HMAC), as docs/kinds/cassandra.md recommends; the ssh baseline picks its own",
    )
    args = parser.parse_args()
    print(f"uptime before: {uptime()}", flush=True)

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    from tests.sandbox import Sandbox

    with Sandbox(Path(tempfile.mkdtemp(prefix="bench-cassandra-")), node_count=1, with_smtp=False) as sandbox:
        os.environ.update(sandbox.connections())
        if args.cipher == "gcm":
            conn = json.loads(os.environ["AIRFLOW_CONN_BACKUP_SSH"])
            conn["extra"]["disabled_algorithms"] = {"ciphers": GCM_ONLY}
            os.environ["AIRFLOW_CONN_BACKUP_SSH"] = json.dumps(conn)
        node = sandbox.nodes[0]
        files = make_files(node.root / "cassandra" / "data" / "shop" / ("orders-" + "0" * 32), args.files, args.mb * 1024 * 1024)
        total = sum(p.stat().st_size for p in files)
        raw_ssh_cat(sandbox, node, files[:1])  # warm the page cache and sshd
        fresh_bucket(sandbox)
        ours(node, files[:1], 1, args.level, args.part_mb, "warmup")  # and moto (loads its S3 backend)
        # Rounds alternate the baselines and ours, so that load from elsewhere on the machine hits
        # all alike; the median of the per-round ratios is the result.
        ratios, plain_ratios = [], []
        for round_no in range(1, args.rounds + 1):
            raw = raw_ssh_cat(sandbox, node, files)
            fresh_bucket(sandbox)
            plain = ssh_cat_plain_upload(sandbox, node, files)
            fresh_bucket(sandbox)
            mine = ours(node, files, args.threads, args.level, args.part_mb, f"r{round_no}")
            raw_rate, plain_rate, our_rate = total / raw / 1e6, total / plain / 1e6, total / mine / 1e6
            ratios.append(our_rate / raw_rate)
            plain_ratios.append(our_rate / plain_rate)
            print(
                f"round {round_no}: raw ssh cat > /dev/null {raw_rate:.1f} MB/s; ssh cat | plain upload "
                f"{plain_rate:.1f} MB/s; SFTP -> SHA-256 -> zstd -> S3 {our_rate:.1f} MB/s; "
                f"ratio ours/raw {our_rate / raw_rate:.2f}, ours/plain {our_rate / plain_rate:.2f}",
                flush=True,
            )
        print(
            f"files: {args.files} x {args.mb} MiB = {total / 1e6:.0f} MB; threads={args.threads}, "
            f"zstd level={args.level}, part={args.part_mb} MiB, cipher={args.cipher}"
        )
        print(f"ratio (ours / raw), median of {args.rounds} rounds: {statistics.median(ratios):.2f}  (goal >= 0.7)")
        print(
            f"ratio (ours / ssh cat | plain upload to the same receiver), median: {statistics.median(plain_ratios):.2f}"
        )
        print(f"uptime after: {uptime()}")

if __name__ == "__main__":
    main()
