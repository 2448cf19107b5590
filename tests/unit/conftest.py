"""Fixtures shared by the unit tests: `aws`, in-process moto for EC2 and S3 with the default connection."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}}))
    with mock_aws():
        yield SimpleNamespace(ec2=boto3.client("ec2", region_name="us-east-1"), s3=boto3.client("s3", region_name="us-east-1"))
