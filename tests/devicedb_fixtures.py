"""Fixtures for the devicedb tests: the simulated cluster on the session sandbox, a bucket."""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_backup_provider.config.devicedb import DevicedbNodeSpec
from tests.sandbox.devicedb import DevicedbSim


@pytest.fixture(scope="session")
def devicedb_sim(sandbox) -> DevicedbSim:
    """A 3-node simulated devicedb cluster on the sandbox nodes (stopped with the sandbox)."""
    sim = DevicedbSim(sandbox, snapshot_delay=0.5)
    sandbox.add_cleanup(sim.stop)
    sim.reset()
    return sim


@pytest.fixture
def devicedb(devicedb_sim: DevicedbSim) -> DevicedbSim:
    """The cluster, fresh for this test: wiped, knobs cleared, all nodes running."""
    devicedb_sim.reset()
    yield devicedb_sim
    devicedb_sim.clear_knobs()


@pytest.fixture
def bucket(sandbox) -> str:
    name = f"ddb-{uuid.uuid4().hex[:12]}"
    sandbox.boto3_client("s3").create_bucket(Bucket=name)
    return name


def s3_objects(sandbox, bucket: str, prefix: str = "") -> dict[str, int]:
    s3 = sandbox.boto3_client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents") or []:
            found[obj["Key"]] = obj["Size"]
    return found


def s3_json(sandbox, bucket: str, key: str):
    return json.loads(sandbox.boto3_client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def node_spec(label: str, host: str, **fields) -> DevicedbNodeSpec:
    """A devicedb node spec as the builder makes one, with the fields a test does not care about
    at the entry's defaults."""
    defaults = {"ssh_port": 22, "http_port": 8080, "http_host": None, "store_dir": "/var/lib/devicedb/store",
                "snapshot_dir": None, "transfer_dir": None}
    return DevicedbNodeSpec(label=label, host=host, **{**defaults, **fields})
