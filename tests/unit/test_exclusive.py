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
