"""The CeleryExecutor stack (tests/e2e/celery_stack.py), started once for the tests of this
package and stopped after the last of them (not at the end of the session: an idle stack would
take CPU from the rest of the suite), with every cluster they run on in one clusters file."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e.celery_stack import CeleryStack
from tests.e2e.deployment.clusters import EBS_BACKFILL, RIAK_CLUSTERS, stack_clusters


@pytest.fixture(scope="package")
def celery_stack(sandbox):
    stack = CeleryStack(
        sandbox,
        stack_clusters(sandbox),
        extra_env={
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # only the tests make runs: no scheduled run of "today" mixes in
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__PARALLELISM": "16",
            # test time only: a lost worker's task is failed 20 s after its last heartbeat (the
            # supervisor's come every few seconds), not airflow.env's 60 s
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        },
    )
    try:
        stack.start()  # stops what it started if it fails
        stack.wait_parsed(*(f"riak_{name}" for name in RIAK_CLUSTERS), f"ebs_{EBS_BACKFILL}")
        yield stack
    finally:
        stack.stop()  # raises when a process of the stack is left running
        if not os.environ.get("ABP_KEEP_STACK"):  # keep the logs and the database folder to debug
            shutil.rmtree(stack.root, ignore_errors=True)
