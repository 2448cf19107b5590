"""The clusters of the Celery-stack tests (one clusters file, one stack for all of them)."""

from __future__ import annotations

import yaml

from tests.sandbox.kinds import riak as kind

# names of the Riak clusters below (DAG ids riak_<name>)
ROLL, OVERLAP, KILL, RETRY, TRIGGERER = "celery_roll", "celery_overlap", "celery_kill", "celery_retry", "celery_triggerer"
RIAK_CLUSTERS = (ROLL, OVERLAP, KILL, RETRY, TRIGGERER)
EBS_BACKFILL = "celery_backfill"  # ebs_<name>


def stack_clusters(sandbox) -> dict:
    """Riak clusters on the same two sandbox nodes (the tests take turns on them): a roll whose
    gates defer, a daily one to backfill beside a manual run, one that alerts on failure, one
    whose tasks retry (and alert on a retry), one for the triggerer's restart; and a daily EBS
    rotation of one volume of its own, to backfill."""
    instances = kind.make_instances(sandbox, 2)
    nodes = [
        {"host": n.address, "node_name": kind.node_name(n), "instance_id": i}
        for n, i in zip(sandbox.nodes[:2], instances, strict=True)
    ]
    ebs_volume = sandbox.boto3_client("ec2").create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
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
            {**common, "name": RETRY, "schedule": None, "alert_emails": ["oncall@example.com"], "retries": 1,
             "retry_delay": "2s", "alert_on_retry": True},
            # one node: the restart happens at its first gate, its second gate defers into the new triggerer
            {**common, "name": TRIGGERER, "schedule": None, "alert_emails": [], "nodes": nodes[:1]},
            {
                "kind": "ebs", "name": EBS_BACKFILL, "volume_ids": [ebs_volume], "schedule": "@daily",
                "start_date": "2026-01-01", "retries": 0, "deferrable": False, "poke_interval": "1s",
                "alert_emails": [], "retention": {"keep_daily": 2, "keep_weekly": 2, "keep_monthly": 2},
            },
        ]
    }


def stack_entry(stack, name: str) -> dict:
    """The entry `name` of the stack's clusters file."""
    entries = yaml.safe_load(stack.clusters_path.read_text())["entries"]
    return next(e for e in entries if e["name"] == name)
