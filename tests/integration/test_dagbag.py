"""The DAG files as the dag-processor sees them: no import errors, house rules on every DAG,
and a broken clusters-file entry that hides nothing and is named in an import error."""

import json
import os
import socket
import subprocess
import sys

import pytest

from airflow_backup_provider.kinds import KINDS
from tests.harness import CHECK_FILE, REPO, clusters_file, load_dagbag

DAGS_DIR = REPO / "dags"


def test_example_dags_folder_has_no_import_errors(airflow_db, monkeypatch):
    monkeypatch.setenv("BACKUP_CLUSTERS_FILE", str(DAGS_DIR / "clusters.yaml"))
    bag = load_dagbag(DAGS_DIR, safe_mode=True)  # the dag-processor's default heuristic finds both files
    assert bag.import_errors == {}
    assert bag.dags, "the example clusters file should produce DAGs"
    # The DagBag catches the warnings a DAG file raises while it parses (the error filters of
    # tests/airflow_env.py never see them): a deprecation at parse time must fail here.
    assert not bag.captured_warnings, bag.captured_warnings


def test_every_generated_dag_follows_the_house_rules(airflow_db, monkeypatch):
    monkeypatch.setenv("BACKUP_CLUSTERS_FILE", str(DAGS_DIR / "clusters.yaml"))
    bag = load_dagbag(DAGS_DIR / "backup_dags.py")
    for dag_id, dag in bag.dags.items():
        assert dag.max_active_runs == 1, dag_id
        kind = dag_id.split("_", 1)[0]
        assert f"kind:{kind}" in dag.tags and any(t.startswith("cluster:") for t in dag.tags), dag_id
        assert dag.doc_md and "Generated from the clusters file entry" in dag.doc_md, dag_id
        assert "dry_run" in dag.params, dag_id
        for name, param in dag.params.items():
            assert param.description, f"{dag_id}: param {name} has no description"
        assert "report" in dag.task_ids, dag_id
        assert dag.task_dict["report"].trigger_rule == "all_done", dag_id
        assert not dag.task_dict["report"].downstream_list, dag_id
        # one run at a time, backfill runs included: every other task comes after the turn gate
        gate = dag.task_dict["wait_for_other_runs"]
        assert not gate.upstream_list and gate.mode == "reschedule", dag_id
        assert [t.task_id for t in dag.tasks if not t.upstream_list] == ["wait_for_other_runs"], dag_id
        for task in dag.tasks:
            if task.task_id == "report":  # its failure is the verdict it has already mailed
                continue
            assert task.on_failure_callback, f"{dag_id}.{task.task_id} has no failure alert"


def test_parsing_touches_no_network(airflow_db, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access at DAG parse time: {args}")

    monkeypatch.setenv("BACKUP_CLUSTERS_FILE", str(DAGS_DIR / "clusters.yaml"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    bag = load_dagbag(DAGS_DIR / "backup_dags.py")
    assert bag.import_errors == {} and bag.dags


PARSE_CHILD = r"""
import json, sys
import airflow  # the dag-processor has Airflow imported before it parses a file
from airflow.dag_processing.dagbag import DagBag
events = []
def audit(event, args):
    if event == "open":
        events.append(["open", str(args[0])])
    elif event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto", "urllib.Request"):
        events.append([event, repr(args)[:200]])
sys.addaudithook(audit)
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
print(json.dumps({"events": events, "dags": len(bag.dags), "errors": len(bag.import_errors)}))
"""
# what importing libraries reads besides code: package metadata (importlib.metadata) and the stdlib zip
LIBRARY_READS = (".py", ".pyc", ".so", "METADATA", "entry_points.txt", "python311.zip")


def test_parsing_reads_no_file_but_the_clusters_file_and_touches_no_network(airflow_db, tmp_path):
    # in a child process: an audit hook cannot be removed again
    env = {
        **os.environ,
        "BACKUP_CLUSTERS_FILE": str(DAGS_DIR / "clusters.yaml"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    done = subprocess.run(
        [sys.executable, "-c", PARSE_CHILD, str(DAGS_DIR)], capture_output=True, text=True, env=env, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["dags"] and report["errors"] == 0, report
    network = [e for e in report["events"] if e[0] != "open"]
    assert network == []
    files = {path for _, path in (e for e in report["events"] if e[0] == "open") if not path.endswith(LIBRARY_READS)}
    assert files == {str(DAGS_DIR / "clusters.yaml")}, files


def registered_kinds() -> list[str]:
    return sorted(KINDS)


def test_one_broken_entry_hides_nothing_and_is_named(airflow_db, tmp_path):
    kinds = registered_kinds()
    if "ebs" not in kinds:
        pytest.fail("the ebs builder is needed for this test")
    content = {
        "defaults": {"alert_emails": ["oncall@example.com"]},
        "entries": [
            {"kind": "ebs", "name": "good-one", "volume_ids": ["vol-0123456789abcdef1"]},
            {"kind": "ebs", "name": "broken", "volume_ids": ["vol-0123456789abcdef2"], "retries": "lots"},
            {"kind": "ebs", "name": "good-two", "volume_tags": {"backup": "daily"}},
        ],
    }
    with clusters_file(tmp_path, content):
        bag = load_dagbag(DAGS_DIR / "backup_dags.py")
        assert bag.import_errors == {}
        assert {"ebs_good-one", "ebs_good-two"} <= set(bag.dags)
        assert not any("broken" in d for d in bag.dags)

        check = load_dagbag(CHECK_FILE)
        (message,) = check.import_errors.values()
        assert "'broken'" in message and "'retries'" in message and "'lots'" in message
        assert "good-one" not in message


HOSTILE_FILE = """\
defaults:
  alert_emails: [oncall@example.com]
  poke_interval: 99999999999d   # a bad default: counts against each entry that does not set it
entries:
  - {kind: ebs, name: good-one, volume_ids: [vol-0123456789abcdef1], poke_interval: 30s}
  - {kind: ebs, name: every, schedule: "@every", volume_ids: [vol-0123456789abcdef2], poke_interval: 30s}
  - {kind: ebs, name: minute-61, schedule: "61 * * * *", volume_ids: [vol-0123456789abcdef3], poke_interval: 30s}
  - {kind: ebs, name: huge-retry, retry_delay: 100000000000000000000, volume_ids: [vol-0123456789abcdef4], poke_interval: 30s}
  - {kind: ebs, name: huge-timeout, snapshot_timeout: 99999999999d, volume_ids: [vol-0123456789abcdef5], poke_interval: 30s}
  - {kind: ebs, name: twice, retries: 1, retries: 2, volume_ids: [vol-0123456789abcdef6], poke_interval: 30s}
  - {kind: ebs, name: uses-default, volume_ids: [vol-0123456789abcdef7]}
  - {kind: ebs, name: good-two, volume_tags: {backup: daily}, poke_interval: 30s}
"""


def test_bad_schedules_huge_durations_repeated_keys_and_bad_defaults_hide_nothing(airflow_db, tmp_path):
    if "ebs" not in registered_kinds():
        pytest.fail("the ebs builder is needed for this test")
    with clusters_file(tmp_path, HOSTILE_FILE):
        bag = load_dagbag(DAGS_DIR / "backup_dags.py")
        assert bag.import_errors == {}
        assert sorted(bag.dags) == ["ebs_good-one", "ebs_good-one_restore", "ebs_good-two", "ebs_good-two_restore"]

        check = load_dagbag(CHECK_FILE)
        (message,) = check.import_errors.values()
        lines = message.splitlines()

        def line_of(name: str) -> str:
            (line,) = [line for line in lines if f"'{name}' (kind 'ebs')" in line]
            return line

        assert "field 'schedule': value '@every' is not a schedule Airflow accepts" in line_of("every")
        assert "field 'schedule': value '61 * * * *' is not a schedule Airflow accepts" in line_of("minute-61")
        assert "field 'retry_delay': value 100000000000000000000 must be at most" in line_of("huge-retry")
        assert "field 'snapshot_timeout': value '99999999999d' must be at most" in line_of("huge-timeout")
        assert "key 'retries' is written twice in one mapping (lines 10 and 10)" in line_of("twice")
        assert "defaults: field 'poke_interval': value '99999999999d' must be at most" in line_of("uses-default")
        assert any(line.endswith("defaults: field 'poke_interval': value '99999999999d' must be at most 36525d (100 years)") for line in lines)
        assert "good-one" not in message and "good-two" not in message
