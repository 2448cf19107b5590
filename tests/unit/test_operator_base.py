"""operators/base.py: the one base of backup operators (run date, dry_run, outcome, hooks)."""

from __future__ import annotations

import importlib
import inspect
import uuid
from datetime import UTC, datetime, timedelta

import pendulum
import pytest
from airflow.sdk import DAG, BaseOperator, Param
from airflow.sdk.api.datamodels._generated import DagRun, TIRunContext
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
from pydantic import ValidationError

from airflow_backup_provider import OPERATOR_MODULES, dates
from airflow_backup_provider.hooks.remote import RemoteCommandHook
from airflow_backup_provider.operators import report
from airflow_backup_provider.operators.base import BackupOperator, BackupOperatorMixin

WHEN = datetime(2026, 11, 20, tzinfo=UTC)


class Probe(BackupOperator):
    template_fields = ("dry_run",)

    def __init__(self, *, dry_run=None, **kwargs):
        super().__init__(**kwargs)
        self.dry_run = dry_run

    def execute(self, context):  # pragma: no cover - the tests call the base's methods
        return None


def dag_run(logical_date, *, conf=None) -> DagRun:
    """The dag run as the API server hands it to the task runner."""
    return DagRun(
        dag_id="probe", run_id="r1", logical_date=logical_date, data_interval_start=logical_date,
        data_interval_end=logical_date, run_after=WHEN, start_date=WHEN, end_date=None, run_type="manual",
        state="running", consumed_asset_events=[], partition_key=None, conf=conf,
    )


def real_context(logical_date=WHEN, *, conf=None, dry_run=None):
    """The context the task runner builds (RuntimeTaskInstance.get_template_context), and the task."""
    with DAG("probe", schedule=None, params={"dry_run": Param(False, type="boolean")}):
        task = Probe(task_id="probe", dry_run=dry_run)
    ti = RuntimeTaskInstance.model_construct(
        id=uuid.uuid4(), task_id="probe", dag_id="probe", run_id="r1", try_number=1, dag_version_id=uuid.uuid4(),
        map_index=-1, task=task, start_date=WHEN, max_tries=0,
        _ti_context_from_server=TIRunContext(dag_run=dag_run(logical_date, conf=conf), max_tries=0),
    )
    return task, ti.get_template_context()


def test_the_run_date_of_a_real_context_is_a_plain_aware_utc_datetime():
    task, context = real_context(pendulum.datetime(2026, 11, 20, 1, tz="Europe/Berlin"))
    assert isinstance(context["logical_date"], pendulum.DateTime)  # what Airflow passes
    value = task.run_date(context)
    assert value == datetime(2026, 11, 20, tzinfo=UTC)
    assert type(value) is datetime and value.tzinfo is UTC
    assert (value - timedelta(days=1)).tzinfo is UTC  # pendulum with a stdlib tz would lose it
    assert value == dates.run_date(context)  # the one rule


def test_a_manual_run_without_a_logical_date_backs_up_its_run_after():
    task, context = real_context(None)
    assert context.get("logical_date") is None
    assert task.run_date(context) == WHEN


def test_a_naive_date_is_refused_on_its_way_in():
    # the API's dag run refuses a naive logical date; as_utc refuses one anywhere else
    with pytest.raises(ValidationError, match="timezone"):
        dag_run(datetime(2026, 11, 20))
    with pytest.raises(ValueError, match=r"field 'logical_date': value datetime.datetime\(2026, 11, 20, 0, 0\) must be a timezone-aware"):
        dates.as_utc(datetime(2026, 11, 20), "logical_date")


@pytest.mark.parametrize(
    ("argument", "conf", "expected"),
    [
        (None, None, False),  # the param's default
        (None, {"dry_run": True}, True),  # no argument: the run's param
        (None, {"dry_run": False}, False),
        (True, {"dry_run": False}, True),  # the argument wins
        (False, {"dry_run": True}, False),
        ("True", None, True),  # a rendered template is text
        ("False", {"dry_run": True}, False),  # and "False" is false
        ("{{ params.dry_run }}", {"dry_run": True}, True),
        ("{{ params.dry_run }}", {"dry_run": False}, False),
    ],
)
def test_dry_run_is_read_one_way(argument, conf, expected):
    task, context = real_context(conf=conf, dry_run=argument)
    task.render_template_fields(context)
    assert task.is_dry_run(context) is expected


def test_dry_run_refuses_what_is_not_a_boolean():
    task, context = real_context(dry_run="maybe")
    with pytest.raises(AirflowFailException, match="field 'dry_run': value 'maybe' is not a boolean"):
        task.is_dry_run(context)
    # a context without params (a hand-built one) is no dry run
    assert Probe(task_id="p").is_dry_run({}) is False


def test_the_outcome_goes_to_the_report():
    pushed = {}

    class Ti:
        def xcom_push(self, key, value):
            pushed[key] = value

    outcome = Probe(task_id="p").record_outcome({"ti": Ti()}, status="done", node="n1", detail="d")
    assert pushed[report.OUTCOME_KEY] == outcome == {"status": "done", "node": "n1", "produced": [], "detail": "d"}


def test_hooks_are_built_from_the_operators_conn_ids():
    task = Probe(task_id="p")
    task.ssh_conn_id, task.sudo_user, task.aws_conn_id, task.region_name = "ssh_x", "backup", "aws_x", "eu-west-1"
    remote = task.remote_hook("10.0.0.1", 2222)
    assert isinstance(remote, RemoteCommandHook)
    assert (remote.ssh_conn_id, remote.host, remote.port, remote.sudo_user) == ("ssh_x", "10.0.0.1", 2222, "backup")

    class AwsProbe:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    assert task.aws_hook(AwsProbe, x=1).kwargs == {"aws_conn_id": "aws_x", "region_name": "eu-west-1", "x": 1}
    task.region_name = None
    assert task.aws_hook(AwsProbe).kwargs == {"aws_conn_id": "aws_x"}


def test_every_backup_operator_builds_on_the_base():
    others = []  # report.py's closing tasks report on the others: not backup operators
    for name in OPERATOR_MODULES:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name or not issubclass(cls, BaseOperator) or name.endswith(".report"):
                continue
            if not issubclass(cls, BackupOperatorMixin):
                others.append(f"{name}.{cls.__name__}")
    assert others == []


class Mapped(BackupOperator):
    """A subclass that, like most of ours, passes Airflow's arguments through **kwargs."""

    def __init__(self, *, node=None, **kwargs):
        super().__init__(**kwargs)
        self.node = node

    def execute(self, context):  # pragma: no cover - only its mapping is checked
        return None


def test_a_mapped_backup_operator_keeps_airflows_defaults():
    # Airflow reads `.partial()`'s defaults from every __init__ in the class tree; one it wrapped
    # for the base would bring BaseOperator's `inlets=None`, and every mapped task would then fail
    # building its context (`for inlet in None`) before running
    with DAG("mapped", schedule=None):
        task = Mapped.partial(task_id="m").expand(node=[{"host": "a"}, {"host": "b"}])
    assert task.inlets == [] and task.outlets == []
    assert task.partial_kwargs["on_failure_callback"] == []
