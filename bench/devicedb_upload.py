"""What streaming a devicedb node tar to S3 costs, against a plain upload of the same bytes.

Streamed: ``GET /snapshot/{uuid}.tar`` from an HTTP server (DevicedbHook) straight into a
multipart upload with per-part SHA-256 (ObjectStoreHook.upload_parts), then the read-back
verification (verify_object): what ``upload_<node>`` does. Baseline: the same bytes, already in
memory, uploaded by boto3's own ``upload_fileobj`` (s3transfer, no checksums, no read-back).
Both against one moto server in this run; prints the medians and the ratio streamed/baseline.

    .venv/bin/python bench/devicedb_upload.py [--mib 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

UUID = "b54a61d9-b64c-45e0-94b7-80c9e36b86fa"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_tar(payload: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            view = memoryview(payload)
            for start in range(0, len(view), 1 << 20):
                self.wfile.write(view[start : start + (1 << 20)])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
            {"conn_type": "aws", "login": "testing", "password": "testing", "extra": {"region_name": "us-east-1", "endpoint_url": url}}
        )
        import boto3

        from airflow_backup_provider.hooks.devicedb import DevicedbHook
        from airflow_backup_provider.hooks.object_store import MIB, ObjectStoreHook

        client = boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        client.create_bucket(Bucket="bench")
        payload = os.urandom(args.mib * MIB)
        server = serve_tar(payload)
        node_port = server.server_address[1]
        s3 = ObjectStoreHook(aws_conn_id="aws_default")

        def streamed(i: int) -> None:
            with DevicedbHook("127.0.0.1", node_port, timeout=30) as hook, hook.open_snapshot_tar(UUID) as response:
                result = s3.upload_parts("bench", f"s/{i}.tar", response.iter_content(chunk_size=MIB), part_size=16 * MIB)
            s3.verify_object("bench", f"s/{i}.tar", size=result.size, sha256=result.sha256)

        def baseline(i: int) -> None:
            client.upload_fileobj(io.BytesIO(payload), "bench", f"b/{i}.tar")

        times: dict[str, list[float]] = {"baseline": [], "streamed": []}
        for i in range(args.repeat):
            for name, run in (("baseline", baseline), ("streamed", streamed)):
                started = time.perf_counter()
                run(i)
                times[name].append(time.perf_counter() - started)
        server.shutdown()
    finally:
        moto.terminate()
        moto.wait(10)
    base, stream = statistics.median(times["baseline"]), statistics.median(times["streamed"])
    print(f"tar of {args.mib} MiB, median of {args.repeat}:")
    print(f"  baseline boto3 upload_fileobj from memory:                  {base:7.2f}s ({args.mib / base:6.1f} MiB/s)")
    print(f"  streamed HTTP -> multipart with SHA-256, then read-back:    {stream:7.2f}s ({args.mib / stream:6.1f} MiB/s)")
    print(f"  ratio streamed / baseline: {stream / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
