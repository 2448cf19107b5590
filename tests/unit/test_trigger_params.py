"""Hostile trigger params on every DAG of the example clusters file, the way Airflow passes them.

A trigger (UI form, REST API ``POST /dags/{id}/dagRuns``, ``airflow dags trigger``, a backfill)
goes through ``SerializedDAG.create_dagrun``: ``dag.params.deep_merge(conf).validate()`` on the
server's copy of the DAG, which refuses a value naming the param. The task runner validates the
same params again (``process_params``) and renders ``{{ params.x }}`` natively
(``render_template_as_native_obj=True``). What gets past both must be refused by the DAG's first
tasks, with one error naming the param and the value, before anything is changed.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from airflow.sdk.definitions.param import process_params
from airflow.sdk.exceptions import AirflowFailException

from airflow_backup_provider.flags import as_bool
from airflow_backup_provider.sensors.exclusive import UnknownParamError, check_conf_keys
from tests.harness import REPO, clusters_file, load_dagbag

MEGABYTE = "a" * 1_000_000


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    doc = yaml.safe_load((REPO / "dags" / "clusters.yaml").read_text())
    # a bup host without an S3 sync gets the weekly fsck DAG of its own
    web2 = {**next(e for e in doc["entries"] if e["kind"] == "bup"), "name": "web2", "fsck_schedule": "0 3 * * 6"}
    web2.pop("s3_sync")
    doc["entries"].append(web2)
    with clusters_file(Path(tmp_path_factory.mktemp("clusters")), doc):
        bag = load_dagbag()
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture(scope="module")
def served(bag):
    """The DAGs as the API server holds them (serialized, then read back)."""
    from airflow.serialization.serialized_objects import DagSerialization

    return {dag_id: DagSerialization.from_dict(DagSerialization.to_dict(dag)) for dag_id, dag in bag.dags.items()}


def trigger(served, dag_id: str, conf: dict) -> dict:
    """What the trigger endpoint does with a conf (SerializedDAG.create_dagrun)."""
    return served[dag_id].params.deep_merge(conf).validate()


def task_params(bag, dag_id: str, task_id: str, conf: dict) -> dict:
    """What the task runner gives the task as ``params`` (copies: a resolved Param keeps its value)."""
    dag = bag.dags[dag_id]
    task = dag.get_task(task_id)
    return process_params(
        SimpleNamespace(params=copy.deepcopy(dag.params)), SimpleNamespace(params=copy.deepcopy(task.params)),
        conf, suppress_exception=False,
    )


def refused(served, dag_id: str, conf: dict) -> str:
    from airflow.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError) as raised:
        trigger(served, dag_id, conf)
    return str(raised.value)


ALL_DAGS = {
    "riak_prod", "riak_prod_restore", "ebs_app-data", "ebs_app-data_restore", "cassandra_events", "cassandra_events_restore", "devicedb_edge",
    "devicedb_edge_restore", "bup_web1", "bup_web1_restore", "bup_web1_s3_sync", "bup_web2", "bup_web2_restore",
    "bup_web2_fsck", "cassandra_events_drill", "devicedb_edge_drill", "bup_web1_drill", "bup_web2_drill",
    "ebs_app-data_drill", "riak_prod_drill",
}


def test_every_kind_of_dag_is_under_test(bag):
    assert set(bag.dags) == ALL_DAGS


# ---- dry_run: only a real boolean passes; nothing ambiguous becomes a real run ------------------

NOT_BOOLEANS = ["true", "True", "false", "False", "0", "1", "yes", "no", "", 0, 1, None, [], [True], {}, {"value": True}]


@pytest.mark.parametrize("value", NOT_BOOLEANS, ids=repr)
def test_dry_run_takes_only_a_boolean_on_every_dag(served, value):
    for dag_id in ALL_DAGS:
        assert "param dry_run" in refused(served, dag_id, {"dry_run": value}), dag_id


def test_a_dry_run_stays_a_dry_run_through_native_rendering_in_every_task(bag, served):
    from airflow.sdk.definitions.context import render_template_as_native

    for dag_id, dag in bag.dags.items():
        for flag in (True, False):
            assert trigger(served, dag_id, {"dry_run": flag})["dry_run"] is flag
            params = task_params(bag, dag_id, dag.tasks[0].task_id, {"dry_run": flag})
            assert as_bool(params["dry_run"]) is flag
            for task in dag.tasks:
                value = getattr(task, "dry_run", None) if "dry_run" in task.template_fields else None
                if isinstance(value, str):  # "{{ params.dry_run }}"
                    template = task.get_template_env().from_string(value)
                    assert as_bool(render_template_as_native(template, {"params": params})) is flag, (dag_id, task)


# ---- a conf key that is no param: Airflow keeps it silently; the first task refuses it ----------

MISSPELT_DRY_RUN = ["dry-run", "Dry_run", "DRY_RUN", "dryrun", "dry_run ", "params"]


@pytest.mark.parametrize("key", MISSPELT_DRY_RUN)
def test_a_misspelt_dry_run_is_refused_by_the_first_task_of_every_dag(bag, served, key):
    conf = {key: {"dry_run": True} if key == "params" else True}
    for dag_id, dag in bag.dags.items():
        # Airflow lets it through: without the gate's check this is a real run
        assert trigger(served, dag_id, conf)["dry_run"] is False
        gate = dag.get_task("wait_for_other_runs")
        context = {"dag_run": SimpleNamespace(conf=conf), "params": task_params(bag, dag_id, gate.task_id, conf)}
        # refused before the connections are even looked at (none exists here)
        with pytest.raises(UnknownParamError) as raised:
            gate.execute(context)
        text = str(raised.value)
        assert f"trigger conf: {key!r}" in text and "nothing was run" in text, text
        if key != "params":
            assert "did you mean 'dry_run'?" in text, text


def test_a_misspelt_nodes_is_refused_naming_the_param_it_meant(bag):
    with pytest.raises(UnknownParamError, match=r"'Nodes' \(did you mean 'nodes'\?\)"):
        check_conf_keys({"Nodes": ["10.0.1.11"]}, bag.dags["riak_prod"].params)


def test_unknown_keys_are_quoted_bounded():
    with pytest.raises(UnknownParamError) as raised:
        check_conf_keys({MEGABYTE: 1, **{f"k{i}": i for i in range(10)}}, ["dry_run"])
    assert len(str(raised.value)) < 1000 and "and 6 more" in str(raised.value)


def test_the_declared_params_pass_the_gate(bag):
    for dag in bag.dags.values():
        check_conf_keys({name: dag.params[name] for name in dag.params}, dag.params)
        check_conf_keys({}, dag.params)
        check_conf_keys(None, dag.params)


# ---- riak nodes: exactly the names the clusters file gives ---------------------------------------

def test_riak_nodes_accept_exactly_the_clusters_file_names(bag, served):
    from airflow_backup_provider.operators.service import node_selected

    names = {"10.0.1.11", "10.0.1.12", "10.0.1.13", "riak@10.0.1.11", "riak@10.0.1.12", "riak@10.0.1.13"}
    assert set(served["riak_prod"].params.get_param("nodes").schema["items"]["enum"]) == names
    for name in names:
        assert trigger(served, "riak_prod", {"nodes": [name]})["nodes"] == [name]
    stop = bag.dags["riak_prod"].get_task("node1_10_0_1_11.stop")
    assert node_selected(["riak@10.0.1.11"], stop.node, stop.host) and not node_selected(["10.0.1.12"], stop.node, stop.host)
    assert trigger(served, "riak_prod", {"nodes": []})["nodes"] == []  # every node
    for value in (["RIAK@10.0.1.11"], ["10.0.1.11 "], ["10.0.1.11\n"], ["10.0.1.9"], ["10.0.1.11;reboot"], [None],
                  [["10.0.1.11"]], "10.0.1.11", "", None, {"node": "10.0.1.11"}, [MEGABYTE]):
        assert "param nodes" in refused(served, "riak_prod", {"nodes": value}), value


# ---- bup: paths, save, where, direction -----------------------------------------------------------

HOSTILE_PATHS = [
    "..", "relative/path", "/etc/../..", "/tmp/..", "/tmp/x;reboot", "/tmp/$(id)", "/tmp/`id`", "/tmp/x\n", "/tmp/a\nb",
    "/tmp/\x00x", "/" + MEGABYTE, "/tmp/\u2215etc", "/tmp/caf\u00e9", 20261120, None, True, ["/tmp"], {"a": 1},
]


@pytest.mark.parametrize("value", HOSTILE_PATHS, ids=lambda v: repr(v)[:40])
@pytest.mark.parametrize(
    ("dag_id", "param"),
    [("bup_web1_restore", "path"), ("bup_web1_restore", "target_dir"), ("bup_web1_s3_sync", "local_dir")],
)
def test_bup_path_params_refuse_hostile_values(served, dag_id, param, value):
    text = refused(served, dag_id, {param: value})
    assert f"param {param}" in text


@pytest.mark.parametrize("value", ["/", "//", "/.", "/./", "/./."])
@pytest.mark.parametrize(("dag_id", "param"), [("bup_web1_restore", "target_dir"), ("bup_web1_s3_sync", "local_dir")])
def test_bup_folders_refuse_the_root_in_the_form(served, dag_id, param, value):
    # local_dir: the sync DAG's fsck would run (and write par2 blocks) before the sync refused "/"
    assert f"param {param}" in refused(served, dag_id, {param: value})


def test_bup_path_params_accept_plain_paths(served):
    for value in ("/var/tmp/restore-1", "/srv/restore/web1.2026-11-20", "/srv/a@b+c_d", "/tmp/...", "/tmp/./x"):
        assert trigger(served, "bup_web1_restore", {"target_dir": value})["target_dir"] == value
        assert trigger(served, "bup_web1_s3_sync", {"local_dir": value})["local_dir"] == value
    assert trigger(served, "bup_web1_restore", {"target_dir": ""})["target_dir"] == ""  # a fresh folder per run
    for value in ("/", "/etc", "/var/www/site one"):
        assert trigger(served, "bup_web1_restore", {"path": value})["path"] == value
    assert trigger(served, "bup_web1_restore", {"path": "/a" * 2047})  # 4094 characters: a long real path


@pytest.mark.parametrize(
    "value",
    ["latest\n", "Latest", "LATEST", "\uff2c\uff21\uff34\uff25\uff33\uff34", "yesterday", "2026-13-45", "2026-11-32",
     "2026-1-5", "20261120", 20261120, "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0660", "2026-11-20; reboot",
     "2026-11-20\n", "2026-11-20-1010", "", None, ["latest"]],
    ids=repr,
)
def test_bup_save_refuses_what_is_no_save(served, value):
    assert "param save" in refused(served, "bup_web1_restore", {"save": value})


def test_bup_save_accepts_its_three_forms(served):
    for value in ("latest", "2026-11-20", "2026-11-20-101010", "2026-11-20-101010-1"):
        assert trigger(served, "bup_web1_restore", {"save": value})["save"] == value


def test_bup_choices_are_exact(served):
    for value in ("Host", "host ", "server\n", "", None, ["host"]):
        assert "param where" in refused(served, "bup_web1_restore", {"where": value})
    for value in ("Upload", "download ", "both", "", None, ["upload"]):
        assert "param direction" in refused(served, "bup_web1_s3_sync", {"direction": value})


def restore_operator(**overrides):
    from airflow_backup_provider.operators.bup import BupRestoreOperator

    args = {"task_id": "r", "branch": "web1", "path": "/etc", "save": "latest", "target_dir": "/var/tmp/r",
            "host": "h", "bup_dir": "/b", **overrides}
    return BupRestoreOperator(**args)


@pytest.mark.parametrize("field", ["path", "target_dir"])
def test_bup_restore_refuses_a_trailing_newline_itself(field):
    from airflow_backup_provider.operators.bup import BupError

    with pytest.raises(BupError, match=rf"param '{field}': value '/var/tmp/x\\n'"):
        restore_operator(**{field: "/var/tmp/x\n"})._validate()


@pytest.mark.parametrize("field", ["path", "target_dir"])
def test_bup_restore_refuses_a_huge_path_in_a_bounded_error(field):
    from airflow_backup_provider.operators.bup import BupError

    with pytest.raises(BupError, match=rf"param '{field}'.*longer than 4095") as raised:
        restore_operator(**{field: "/" + MEGABYTE})._validate()
    assert len(str(raised.value)) < 500


# ---- devicedb restore: snapshot and confirm -------------------------------------------------------

UUID = "b54a61d9-b64c-45e0-94b7-80c9e36b86fa"


def test_devicedb_snapshot_accepts_a_uuid_or_a_day(served):
    for value in ("", UUID, UUID.upper(), "2026-11-20"):
        assert trigger(served, "devicedb_edge_restore", {"snapshot": value})["snapshot"] == value


@pytest.mark.parametrize(
    "value",
    ["latest", "yesterday", "2026-13-45", "2026-1-5", "20261120", 20261120, UUID + "\n", UUID + "0", UUID[:-1],
     "/etc/../..", "$(reboot)", "`id`", "x;reboot", "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0660", MEGABYTE,
     None, [UUID], {"uuid": UUID}],
    ids=lambda v: repr(v)[:40],
)
def test_devicedb_snapshot_refuses_what_is_neither(served, value):
    assert "param snapshot" in refused(served, "devicedb_edge_restore", {"snapshot": value})


def test_devicedb_confirm_is_bounded_in_the_form(served):
    assert "param confirm" in refused(served, "devicedb_edge_restore", {"confirm": MEGABYTE})
    for value in (None, 1, ["edge"]):
        assert "param confirm" in refused(served, "devicedb_edge_restore", {"confirm": value})


@pytest.mark.parametrize("confirm", ["", "EDGE", "edge ", " edge", "edge\n", "\u0435dge", "edg"])
def test_devicedb_restore_runs_only_with_the_exact_cluster_name(bag, confirm):
    resolve = bag.dags["devicedb_edge_restore"].get_task("resolve_snapshot")
    params = task_params(bag, "devicedb_edge_restore", "resolve_snapshot", {"snapshot": UUID, "confirm": confirm})
    # refused before anything is read, let alone a node stopped
    with pytest.raises(AirflowFailException, match=re.escape(f"param 'confirm': value {confirm!r} must be the cluster name 'edge'")):
        resolve.execute({"params": params})


@pytest.mark.parametrize("value", ["maybe", "", 2])
def test_devicedb_trigger_reads_dry_run_as_a_flag(bag, value):
    """Read as a flag (flags.as_bool), not by truthiness: an unclear value is refused, not guessed."""
    import pendulum

    trigger_task = bag.dags["devicedb_edge"].get_task("trigger_snapshot")
    context = {"params": {"dry_run": value}, "logical_date": pendulum.datetime(2026, 11, 20, tz="UTC")}
    with pytest.raises(AirflowFailException, match="field 'dry_run'"):
        trigger_task.execute(context)


# ---- cassandra restore: date, tag, folder, hosts, keyspaces, tables --------------------------------

CASSANDRA_RESTORE = "cassandra_events_restore"


def test_cassandra_restore_form_accepts_what_a_restore_names(served, bag):
    hosts = bag.dags[CASSANDRA_RESTORE].params.get_param("hosts").schema["items"]["enum"]
    conf = {"date": "2026-11-20", "tag": "abp-20261120T010000-1a2b3c4d", "hosts": hosts[:1],
            "keyspaces": ["Shop_EU", "system_auth"], "tables": ["orders", "shop.orders"],
            "restore_folder": "/var/lib/cassandra/restore/{host}"}
    assert trigger(served, CASSANDRA_RESTORE, conf) == {**trigger(served, CASSANDRA_RESTORE, {}), **conf}
    assert trigger(served, CASSANDRA_RESTORE, {"date": "20261120"})["date"] == "20261120"


@pytest.mark.parametrize(
    "param, value",
    [
        # what native rendering turns into a falsy value: the plan would restore the latest day or run
        *(("date", v) for v in ("0", "None", "False", "[]", "()", "''", "{}", "2026-13-45", "yesterday", "+" * 5000 + "1")),
        *(("tag", v) for v in ("0", "None", "[]", "x;reboot", "abp-1\n", "+" * 5000 + "1", "abp-" + "a" * 200)),
        *(("restore_folder", v) for v in ("/tmp/x\n", "relative", "/", "/tmp/../etc", "/" + "a" * 5000, "+" * 5000 + "1")),
        ("hosts", ["no-such-host.example"]), ("hosts", "cassandra-1.example.internal"),
        ("keyspaces", ["shop\n"]), ("keyspaces", ["a;b"]), ("keyspaces", ["shop", "shop"]),
        ("tables", ["x.y.z"]), ("tables", ["orders\n"]), ("tables", [MEGABYTE]),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_cassandra_restore_form_refuses_what_would_restore_something_else(served, param, value):
    message = refused(served, CASSANDRA_RESTORE, {param: value})
    assert f"param {param}" in message or param in message


# ---- ebs and riak restores: the form, and confirm ------------------------------------------------

EBS_RESTORE, RIAK_RESTORE = "ebs_app-data_restore", "riak_prod_restore"


@pytest.mark.parametrize("dag_id", [EBS_RESTORE, RIAK_RESTORE])
def test_ebs_and_riak_restore_forms_refuse_what_is_no_date_region_or_zone(served, dag_id):
    assert trigger(served, dag_id, {"logical_date": "2026-11-20"})["logical_date"] == "2026-11-20"
    for value in ("2026-11-20\n", "2026-13-01", "yesterday", "$(reboot)", MEGABYTE):
        assert "param logical_date" in refused(served, dag_id, {"logical_date": value})
    assert trigger(served, dag_id, {"source_region": "us-west-2"})["source_region"] == "us-west-2"
    for value in ("us-west-2\n", "us west 2", "`id`"):
        assert "param source_region" in refused(served, dag_id, {"source_region": value})
    assert "param confirm" in refused(served, dag_id, {"confirm": MEGABYTE})


def test_the_ebs_restore_form_takes_snapshot_ids_volumes_zone_and_mode(served):
    conf = {"snapshot_ids": ["snap-0123456789abcdef0"], "volumes": ["vol-0123456789abcdef0"], "availability_zone": "us-east-1a"}
    assert trigger(served, EBS_RESTORE, conf)["mode"] == "create"
    assert "param snapshot_ids" in refused(served, EBS_RESTORE, {"snapshot_ids": ["snap-0123;reboot"]})
    assert "param volumes" in refused(served, EBS_RESTORE, {"volumes": ["vol-0123456789abcdef0\n"]})
    assert "param availability_zone" in refused(served, EBS_RESTORE, {"availability_zone": "us-east-1"})
    assert "param mode" in refused(served, EBS_RESTORE, {"mode": "delete"})
    assert "param mode" in refused(served, RIAK_RESTORE, {"mode": "everything"})


@pytest.mark.parametrize("dag_id,name", [(EBS_RESTORE, "app-data"), (RIAK_RESTORE, "prod")])
@pytest.mark.parametrize("confirm", ["", "PROD", "app-data ", "prod\n", "\u0440rod"])
def test_ebs_and_riak_restores_run_only_with_the_exact_entry_name(bag, dag_id, name, confirm):
    plan = bag.dags[dag_id].get_task("plan")
    params = task_params(bag, dag_id, "plan", {"confirm": confirm})
    # refused before any AWS call (no connection exists here)
    with pytest.raises(AirflowFailException, match=re.escape(f"param 'confirm': value {confirm!r} must be the entry name {name!r}")):
        plan.execute({"params": params})
