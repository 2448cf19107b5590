"""wait_for_other_runs: which other runs hold the turn, and what the sensor asks the Task SDK."""

from __future__ import annotations

from types import SimpleNamespace

from airflow_backup_provider.sensors.exclusive import OneRunAtATimeSensor, runs_holding_the_turn

GATE, LAST = "wait_for_other_runs", "report"


def holding(states: dict, me: str = "me") -> list[str]:
    return runs_holding_the_turn(states, gate_task_id=GATE, last_task_id=LAST, own_run_id=me)


def test_deciding_or_inside_holds_the_turn_finished_or_waiting_does_not():
    states = {
        "me": {GATE: "running"},
        "deciding": {GATE: "running"},
        "inside": {GATE: "success", LAST: None},
        "reporting": {GATE: "success", LAST: "running"},
        "waiting": {GATE: "up_for_reschedule"},
        "queued": {GATE: "queued"},
        "done": {GATE: "success", LAST: "success"},
        "failed": {GATE: "success", LAST: "failed"},
        "gate_failed": {GATE: "failed", LAST: "failed"},
    }
    assert holding(states) == ["deciding", "inside", "reporting"]
    assert holding({"me": {GATE: "running"}}) == []


class FakeTi:
    dag_id = "riak_x"

    def __init__(self, states: dict, running: set[str]):
        self.states, self.running, self.asked = states, running, []

    def get_task_states(self, dag_id, task_ids):
        self.asked.append(("states", dag_id, tuple(task_ids)))
        return self.states

    def get_dr_count(self, dag_id, run_ids, states):
        self.asked.append(("count", tuple(run_ids), tuple(states)))
        return len(set(run_ids) & self.running)


def poke(ti: FakeTi) -> bool:
    sensor = OneRunAtATimeSensor(task_id=GATE)
    return sensor.poke({"ti": ti, "dag_run": SimpleNamespace(run_id="me")})


def test_the_sensor_waits_only_for_a_holder_that_is_still_running():
    inside = {"me": {GATE: "running"}, "other": {GATE: "success", LAST: None}}
    assert poke(FakeTi(inside, running={"me", "other"})) is False
    # a run cleared while it waits in the queue (or ended by hand) holds nothing
    assert poke(FakeTi(inside, running={"me"})) is True
    alone = FakeTi({"me": {GATE: "running"}, "old": {GATE: "success", LAST: "success"}}, running={"me"})
    assert poke(alone) is True
    assert alone.asked == [("states", "riak_x", (GATE, LAST))]  # no run count needed


def test_defaults_are_reschedule_with_jittered_backoff():
    sensor = OneRunAtATimeSensor(task_id=GATE)
    assert sensor.mode == "reschedule" and sensor.exponential_backoff


class TwoDagTi(FakeTi):
    """Task states per DAG: a backup DAG and its drill, which share the cluster's turn."""

    def get_task_states(self, dag_id, task_ids):
        self.asked.append(("states", dag_id, tuple(task_ids)))
        return self.states.get(dag_id, {})


def test_a_shared_turn_waits_for_the_other_dags_run_and_only_while_it_runs():
    sensor = OneRunAtATimeSensor(task_id=GATE, shares_turn_with=["riak_x_drill"])
    # the drill's run has the same run id as this one: another DAG's run is never "me"
    drill_inside = {"riak_x": {"me": {GATE: "running"}}, "riak_x_drill": {"me": {GATE: "success", LAST: None}}}
    ti = TwoDagTi(drill_inside, running={"me"})
    assert sensor.poke({"ti": ti, "dag_run": SimpleNamespace(run_id="me")}) is False
    assert [a[1] for a in ti.asked if a[0] == "states"] == ["riak_x", "riak_x_drill"]
    drill_done = {"riak_x": {"me": {GATE: "running"}}, "riak_x_drill": {"d1": {GATE: "success", LAST: "success"}}}
    assert sensor.poke({"ti": TwoDagTi(drill_done, running={"me"}), "dag_run": SimpleNamespace(run_id="me")}) is True
    # without the shared turn the drill's runs are not looked at
    alone = TwoDagTi(drill_inside, running={"me"})
    assert poke(alone) is True and [a[1] for a in alone.asked] == ["riak_x"]


def test_drills_take_the_backups_turn_only_when_they_touch_the_clusters_machines():
    from airflow_backup_provider.builders.cassandra import build as build_cassandra
    from airflow_backup_provider.config import parse_clusters

    base = {"kind": "cassandra", "name": "c", "nodes": [{"host": "10.0.0.1"}, {"host": "10.0.0.2"}], "bucket": "b"}

    def gates(**extra):
        (entry,) = parse_clusters({"entries": [{**base, **extra}]}).entries
        return {d.dag_id: d.task_dict["wait_for_other_runs"].shares_turn_with for d in build_cassandra(entry)}

    # the worker (default) or another machine: S3 only, no shared turn
    assert gates() == {"cassandra_c": [], "cassandra_c_restore": [], "cassandra_c_drill": []}
    assert gates(drill_host="10.9.9.9")["cassandra_c"] == []
    assert gates(drill_host="10.0.0.2") == {
        "cassandra_c": ["cassandra_c_drill"], "cassandra_c_restore": [], "cassandra_c_drill": ["cassandra_c"],
    }
