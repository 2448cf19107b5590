"""The Cassandra restore drill's throughput, against a plain download of the same objects.

Both measured in the same run, on the same objects of one moto S3 server:

    plain: boto3's download_file of every object of the backup into a local folder (s3transfer,
           `threads` objects at a time): no decompression, no hashing, no layout check
    ours:  CassandraDrillOperator's check of one node's backup as the drill task runs it: every
           object streamed, zstd-decompressed, SHA-256 hashed and written into the scratch folder
           in the restore's layout (`threads` objects at a time), then the folder listed (`find`)
           and compared with the manifest

Throughput is the stored (compressed) bytes read per second, the same numerator for both.
Rounds alternate the two; the median of the per-round ratios ours / plain is the result (goal >= 0.8).

    .venv/bin/python bench/drill.py [--files 12] [--mb 16] [--threads 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BUCKET = "bench-drill"
HOST = "10.0.0.1"
TABLE = "shop/orders-" + "0" * 32


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def upload_backup(folder: Path, count: int, size: int):
    """SSTable-like files (mostly incompressible, as Cassandra's LZ4 leaves them) uploaded as the
    backup does (zstd, SHA-256), and the node's manifest listing them."""
    from airflow_backup_provider.hooks.object_store import ObjectStoreHook
    from airflow_backup_provider.stores import cassandra_layout as layout
    from airflow_backup_provider.stores.cassandra_manifest import Manifest, ManifestEntry

    s3 = ObjectStoreHook(aws_conn_id="aws_default")
    entries = []
    for index in range(count):
        path = folder / f"nb-{index + 1}-big-Data.db"
        with open(path, "wb") as handle:
            written = 0
            while written < size:
                block = (os.urandom(48 * 1024) + (b"partition-key:%08d|" % index) * 1024)[: size - written]
                handle.write(block)
                written += len(block)
        rel = f"{TABLE}/{path.name}"
        key = layout.data_key("bench", "c", "20261120", HOST, rel)
        result = s3.upload_stream(BUCKET, key, lambda p=path: open(p, "rb"))
        entries.append(ManifestEntry(path=rel, key=key, size=result.size, sha256=result.sha256,
                                     compressed_size=result.compressed_size, uploaded_in="bench"))
        path.unlink()
    manifest = Manifest(cluster="c", host=HOST, day="20261120", tag="bench", run_id="bench",
                        created_at=datetime.now(UTC).isoformat(), mode="full", files=tuple(entries), tables=(TABLE,))
    return s3, manifest


def plain_download(sandbox, manifest, target: Path, threads: int) -> float:
    client = sandbox.boto3_client("s3")
    target.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda e: client.download_file(BUCKET, e.key, str(target / e.key.replace("/", "_"))), manifest.files))
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    return elapsed


def ours(s3, manifest, scratch: Path, threads: int) -> float:
    from airflow_backup_provider.hooks.drill import ScratchHook
    from airflow_backup_provider.operators.drill import CassandraDrillOperator

    operator = CassandraDrillOperator(
        task_id="bench", cluster="c", bucket=BUCKET, prefix="bench", hosts=[HOST], drill_folder=str(scratch.parent), threads=threads
    )
    start = time.perf_counter()
    with ScratchHook(ssh_conn_id="local", scratch=str(scratch)) as hook:
        check = operator._drill_host(s3, hook, HOST, "bench/manifest.json", manifest)
        elapsed = time.perf_counter() - start
        hook.remove_scratch()
    assert check.problems == [], check.problems[:3]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--mb", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"uptime before: {uptime()}", flush=True)
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    from tests.sandbox import Sandbox

    work = Path(tempfile.mkdtemp(prefix="bench-drill-"))
    with Sandbox(work / "sandbox", node_count=1, with_smtp=False) as sandbox:
        os.environ.update(sandbox.connections())
        sandbox.boto3_client("s3").create_bucket(Bucket=BUCKET)
        (work / "source").mkdir()
        s3, manifest = upload_backup(work / "source", args.files, args.mb * 1024 * 1024)
        stored = sum(e.compressed_size for e in manifest.files)
        plain_download(sandbox, manifest, work / "warm", args.threads)  # warm moto and the page cache
        ratios = []
        for round_no in range(1, args.rounds + 1):
            plain = plain_download(sandbox, manifest, work / "plain", args.threads)
            mine = ours(s3, manifest, work / "drills" / f"r{round_no}", args.threads)
            plain_rate, our_rate = stored / plain / 1e6, stored / mine / 1e6
            ratios.append(our_rate / plain_rate)
            print(f"round {round_no}: plain download {plain_rate:.1f} MB/s; drill (zstd -d, SHA-256, layout) "
                  f"{our_rate:.1f} MB/s; ratio {our_rate / plain_rate:.2f}", flush=True)
        print(f"objects: {args.files} x {args.mb} MiB ({stored / 1e6:.0f} MB stored); threads={args.threads}")
        print(f"ratio (drill / plain download), median of {args.rounds} rounds: {statistics.median(ratios):.2f}  (goal >= 0.8)")
    shutil.rmtree(work, ignore_errors=True)
    print(f"uptime after: {uptime()}")


if __name__ == "__main__":
    main()
