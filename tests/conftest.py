"""Test session fixtures: the migrated metadata DB and the sandbox.

The environment (private AIRFLOW_HOME, deprecations as errors) is set by tests/airflow_env.py,
loaded as a plugin before anything imports Airflow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.airflow_env import AIRFLOW_HOME as _HOME
from tests.harness import migrate_db
from tests.sandbox import Sandbox


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB for this test session."""
    migrate_db()
    return _HOME


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Sandbox:
    """Three sshd nodes, a moto server, an SMTP server; connections exported as AIRFLOW_CONN_*."""
    box = Sandbox(tmp_path_factory.mktemp("sandbox"), node_count=3).start()
    saved = {k: os.environ.get(k) for k in box.connections()}
    os.environ.update(box.connections())
    try:
        yield box
    finally:
        box.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def mails(sandbox: Sandbox) -> list:
    """The mails the sandbox SMTP server received during this test."""
    sandbox.reset_mails()
    return sandbox.mails


@pytest.fixture
def smtp_down(sandbox: Sandbox, mails: list):
    """The sandbox SMTP server stopped for this test (connections refused), started again after."""
    with sandbox.smtp_stopped():
        yield mails


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
