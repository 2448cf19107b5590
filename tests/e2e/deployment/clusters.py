"""The clusters of the Celery-stack tests (one clusters file, one stack for all of them)."""

from __future__ import annotations

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
