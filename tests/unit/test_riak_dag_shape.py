"""The riak_<name> DAG's wiring: which gates a node's stop waits for (safety invariant 2)."""

from __future__ import annotations

import pytest

from tests.harness import REPO, clusters_file, load_dagbag


@pytest.fixture(scope="module")
def dag(tmp_path_factory):
    with clusters_file(tmp_path_factory.mktemp("r"), (REPO / "dags" / "clusters.yaml").read_text()):
        bag = load_dagbag()
    assert not bag.import_errors, bag.import_errors
    return bag.dags["riak_prod"]


def test_every_stop_waits_for_preflight_and_every_earlier_node(dag):
    stops = [t for t in dag.tasks if t.task_id.endswith(".stop")]
    assert len(stops) == 3
    handoffs = [t.task_id for t in dag.tasks if t.task_id.endswith(".handoff_gate")]
    for index, stop in enumerate(stops):
        # a skipped group (not selected, or behind a failure) must never hide a failure before it
        assert stop.upstream_task_ids == {"preflight", *handoffs[:index]}, stop.task_id
        assert stop.trigger_rule == "none_failed"


def test_start_runs_whatever_failed_after_its_stop(dag):
    for start in (t for t in dag.tasks if t.task_id.endswith(".start")):
        prefix = start.task_id.rsplit(".", 1)[0]
        assert start.trigger_rule == "all_done"
        assert start.upstream_task_ids == {f"{prefix}.stop", f"{prefix}.snapshot"}
        assert start.only_after == f"{prefix}.stop"
