"""The upload of one node's tar: a chunked tar (no Content-Length) is checked whole before upload."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_backup_provider.hooks.devicedb import DevicedbHook
from airflow_backup_provider.hooks.object_store import ObjectStoreHook, UploadResult
from airflow_backup_provider.operators import devicedb as ops
from airflow_backup_provider.operators import report
from tests.devicedb_fixtures import node_spec
from tests.unit.test_devicedb_store import SMALL_STORE, go_tar

UUID = "b54a61d9-b64c-45e0-94b7-80c9e36b86fa"


def upload(tmp_path, monkeypatch, tar: bytes):
    """Run the upload task against a node that sends `tar` chunked, as devicedb does."""

    @contextlib.contextmanager
    def chunked_tar(self, uuid):
        chunks = [tar[i : i + 1000] for i in range(0, len(tar), 1000)]
        yield SimpleNamespace(headers={"Transfer-Encoding": "chunked"}, iter_content=lambda chunk_size=1: iter(chunks))

    uploads = []

    def upload_parts(self, bucket, key, chunks, **kwargs):
        import hashlib

        data = b"".join(chunks)
        uploads.append(key)
        return UploadResult(bucket, key, len(data), hashlib.sha256(data).hexdigest(), 1)

    monkeypatch.setattr(DevicedbHook, "open_snapshot_tar", chunked_tar)
    monkeypatch.setattr(ObjectStoreHook, "upload_parts", upload_parts)
    monkeypatch.setattr(report, "record_outcome", lambda *a, **k: None)
    spec = node_spec("n1", "10.0.0.1", http_port=8080)
    operator = ops.DevicedbUploadNodeOperator(
        task_id="upload_n1", node=spec, cluster="c", nodes=[spec], bucket="b", prefix="p", verify_upload=False,
        spool_dir=str(tmp_path),
    )
    monkeypatch.setattr(operator, "snapshot_of_run", lambda context: {"uuid": UUID})
    return operator, uploads


def test_a_whole_chunked_tar_is_uploaded(tmp_path, monkeypatch):
    tar = go_tar(SMALL_STORE)
    operator, uploads = upload(tmp_path, monkeypatch, tar)
    assert operator.execute({})["size"] == len(tar) and uploads == [f"p/c/{UUID}/n1.tar"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cut", ["boundary", "member", "marker"])
def test_a_chunked_tar_cut_short_is_never_uploaded(tmp_path, monkeypatch, cut):
    tar = go_tar(SMALL_STORE)
    end = {"boundary": len(tar) - 1024 - 1024, "member": 900, "marker": len(tar) - 512}[cut]
    operator, uploads = upload(tmp_path, monkeypatch, tar[:end])
    with pytest.raises(AirflowException, match="n1: the tar of .* is not whole, nothing uploaded"):
        operator.execute({})
    assert uploads == [] and list(tmp_path.iterdir()) == []
