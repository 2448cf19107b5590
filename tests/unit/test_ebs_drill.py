"""The ebs/riak drill's pure parts and its DAG's shape: attachment points, scratch tags, the check argv,
the clusters file's refusals, the DAG built only with a drill instance, cleanup all_done, no shared turn."""

from __future__ import annotations

import pytest

from airflow_backup_provider.builders import ebs, riak
from airflow_backup_provider.config.loading import parse_clusters
from airflow_backup_provider.operators.ebs_drill import check_argv, mounts_first
from airflow_backup_provider.stores.ebs import RestoreRefused, drill_volume_tags, free_drill_devices

VOLUME = "vol-0a1b2c3d4e5f60718"
DRILLER = "i-0d0d0d0d0d0d0d0d0"


def ebs_entry(**fields):
    return {"entries": [{"kind": "ebs", "name": "app", "volume_ids": [VOLUME], **fields}]}


def test_free_attachment_points_skip_used_ones_and_their_xen_names():
    assert free_drill_devices(["/dev/sda1", "/dev/sdp", "/dev/xvdo"], 2) == ["/dev/sdn", "/dev/sdm"]
    with pytest.raises(RestoreRefused, match="drill_instance_id"):
        free_drill_devices([], 11)


def test_a_scratch_volume_keeps_only_our_tags_and_the_run():
    tags = drill_volume_tags({"backup:volume": VOLUME, "team": "platform", "Name": "app-data"}, drill_run="d/r")
    assert tags == {"backup:volume": VOLUME, "backup:drill-run": "d/r", "Name": f"drill of {VOLUME}"}


def test_the_check_argv_fills_each_word_and_says_when_to_mount():
    argv = check_argv(["test", "-e", "{mount_point}/x; rm -rf /"], mount_point="/m", device="/dev/nvme1n1")
    assert argv == ["test", "-e", "/m/x; rm -rf /"]  # one word, quoted as one by the command line
    assert not mounts_first(["fsck", "-n", "{device}"])
    assert mounts_first(["ls", "{mount_point}"]) and mounts_first(["true"])


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"drill_check": ["cat", "{secret}"]}, "field 'drill_check'"),
        ({"drill_check": []}, "field 'drill_check'"),
        ({"drill_instance_id": DRILLER}, "field 'drill_host'"),
        ({"drill_instance_id": "vol-1"}, "field 'drill_instance_id'"),
        ({"drill_availability_zone": "east"}, "field 'drill_availability_zone'"),
    ],
)
def test_the_clusters_file_refuses_bad_drill_settings_naming_the_field(fields, words):
    (error,) = parse_clusters(ebs_entry(**fields)).errors
    assert words in str(error), error


def test_the_drill_dag_is_built_only_with_a_drill_instance_and_takes_no_turn():
    (plain,) = parse_clusters(ebs_entry()).entries
    assert [d.dag_id for d in ebs.build(plain)] == ["ebs_app", "ebs_app_restore"]
    (model,) = parse_clusters(ebs_entry(drill_instance_id=DRILLER, drill_host="10.0.0.9")).entries
    dags = {d.dag_id: d for d in ebs.build(model)}
    drill = dags["ebs_app_drill"]
    assert drill.schedule == "@weekly" and "drill" in drill.tags
    assert drill.task_dict["cleanup_scratch"].trigger_rule == "all_done"
    assert drill.task_dict["wait_for_other_runs"].shares_turn_with == []
    assert drill.task_dict["drill"].drill_host == "10.0.0.9"
    assert set(drill.task_dict) >= {"plan", "create", "wait_available", "attach", "wait_in_use", "drill", "cleanup_scratch", "report"}
    ring = {"entries": [{
        "kind": "riak", "name": "ring", "drill_instance_id": DRILLER, "drill_host": "10.0.0.9",
        "nodes": [{"host": "10.0.0.1", "instance_id": "i-0bbbbbbbbbbbbbbbb"}],
    }]}
    (cluster,) = parse_clusters(ring).entries
    assert "riak_ring_drill" in {d.dag_id for d in riak.build(cluster)}
