"""The CeleryExecutor stack (tests/e2e/celery_stack.py), started once per test session for the
tests that use it, with every cluster those tests run on in one clusters file."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e.celery_stack import CeleryStack
from tests.sandbox.kinds import riak as kind

# DAG ids of the clusters below (riak_<name>)
ROLL, OVERLAP, KILL = "celery_roll", "celery_overlap", "celery_kill"


def stack_clusters(sandbox) -> dict:
    """Three Riak clusters on the same two sandbox nodes (the tests take turns on them): a roll
    whose gates defer, a daily one to backfill beside a manual run, one that alerts on failure."""
    instances = kind.make_instances(sandbox, 2)
    nodes = [
        {"host": n.address, "node_name": kind.node_name(n), "instance_id": i}
        for n, i in zip(sandbox.nodes[:2], instances, strict=True)
    ]
    common = {
        "kind": "riak",
        "nodes": nodes,
        "retries": 0,
        "deferrable": True,
        "poke_interval": "1s",
        "gate_timeout": "180s",
        "retention": {"keep_last": 10},
    }
    return {
        "entries": [
            {**common, "name": ROLL, "schedule": None, "alert_emails": []},
            {**common, "name": OVERLAP, "schedule": "@daily", "start_date": "2026-01-01", "alert_emails": []},
            {**common, "name": KILL, "schedule": None, "alert_emails": ["oncall@example.com"]},
        ]
    }


@pytest.fixture(scope="session")
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
    stack.start()
    try:
        stack.wait_parsed(*(f"riak_{name}" for name in (ROLL, OVERLAP, KILL)))
        yield stack
    finally:
        stack.stop()  # raises when a process of the stack is left running
        if not os.environ.get("ABP_KEEP_STACK"):  # keep the logs and the database folder to debug
            shutil.rmtree(stack.root, ignore_errors=True)
