"""What a new user of `scripts/stack.sh` does, through the REST API the UI itself calls, on the
CeleryExecutor stack: log in with the printed login, list the DAGs (every generated one, with its
description and tags), read a DAG's trigger form, trigger it with form values and watch the run.
A value the form refuses is refused by the API as well, and nothing runs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import yaml

from tests.e2e.deployment.clusters import ROLL
from tests.sandbox.kinds import riak as kind

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

DAG_ID = f"riak_{ROLL}"


class Api:
    def __init__(self, stack):
        self.base = f"http://127.0.0.1:{stack.api_port}"
        self.token = self.call("POST", "/auth/token", {"username": "admin", "password": stack.password})[
            "access_token"]

    def call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(self.base + path, method=method, headers={"Content-Type": "application/json"},
                                         data=json.dumps(body).encode() if body is not None else None)
        if getattr(self, "token", None):
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"null")


def test_a_new_user_lists_triggers_and_watches_a_dag(sandbox, celery_stack):
    stack = celery_stack
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.api_port}/", timeout=30) as page:
        assert page.status == 200 and b"<html" in page.read().lower()  # the UI's own page
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{stack.api_port}/api/v2/dags", timeout=30)
    assert refused.value.code == 401  # no login, no DAGs
    api = Api(stack)

    listed = {d["dag_id"]: d for d in api.call("GET", "/api/v2/dags?limit=100")["dags"]}
    parsed = {d for (d,) in stack.query("select dag_id from dag")}
    assert set(listed) == parsed, (sorted(listed), sorted(parsed))
    entries = yaml.safe_load(stack.clusters_path.read_text())["entries"]
    # every entry's backup DAG, and its restore and drill DAGs where its kind has them
    owners = {d: next(e for e in entries if d in {f"{e['kind']}_{e['name']}{s}" for s in ("", "_restore", "_drill")})
              for d in listed}
    assert {f"{e['kind']}_{e['name']}" for e in entries} <= set(listed), sorted(listed)
    for dag_id, dag in listed.items():
        entry = owners[dag_id]
        assert dag["description"] and len(dag["description"]) <= 200, dag
        assert {t["name"] for t in dag["tags"]} >= {"backup", f"kind:{entry['kind']}", f"cluster:{entry['name']}"}, dag

    # the trigger form: its fields are the DAG's params
    params = api.call("GET", f"/api/v2/dags/{DAG_ID}/details")["params"]
    assert {"dry_run", "nodes"} <= set(params), params
    first, second = sandbox.nodes[0], sandbox.nodes[1]
    assert sorted(params["nodes"]["schema"]["items"]["enum"]) == sorted(
        [first.address, second.address, kind.node_name(first), kind.node_name(second)]), params["nodes"]

    # a node the form does not offer: refused, no run made
    with pytest.raises(urllib.error.HTTPError) as bad:
        api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                 {"dag_run_id": "bad_form", "logical_date": None, "conf": {"nodes": ["10.9.9.9"]}})
    assert bad.value.code == 400 and "nodes" in bad.value.read().decode(), bad.value
    assert not stack.query("select 1 from dag_run where dag_id = %s and run_id = 'bad_form'", DAG_ID)

    # the form's values run: only node 2 is backed up
    kind.reset_cluster(sandbox, count=2, primaries_missing_polls=1, handoff_polls=1, stop_seconds=0.3,
                       start_seconds=0.3, kv_not_up_lines=0)
    api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
             {"dag_run_id": "from_form", "logical_date": None, "conf": {"dry_run": False, "nodes": [second.address]}})
    stack.wait_for(lambda: api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/from_form")["state"] in ("success", "failed"),
                   300, "the run triggered from the form")
    run = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/from_form")
    assert run["state"] == "success", stack.task_states(DAG_ID, "from_form")
    states = {t["task_id"]: t["state"]
              for t in api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/from_form/taskInstances")["task_instances"]}
    assert states["node1_" + first.address.replace(".", "_") + ".stop"] == "skipped", states
    assert states["node2_" + second.address.replace(".", "_") + ".stop"] == "success", states
    assert [(e.node, e.event) for e in kind.read_timeline(sandbox)] == [
        (kind.node_name(second), "stop"), (kind.node_name(second), "start")]
