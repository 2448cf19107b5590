"""Test session setup: a private AIRFLOW_HOME (migrated once), the sandbox, deprecations as errors.

The environment is set at import time, before anything imports Airflow, because Airflow reads
its configuration once on import.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tests.airflow_env import AIRFLOW_HOME as _HOME  # noqa: E402  (sets the environment)

import pytest  # noqa: E402

from tests.harness import migrate_db  # noqa: E402
from tests.sandbox import Sandbox  # noqa: E402


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
