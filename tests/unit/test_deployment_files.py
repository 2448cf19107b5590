"""docker-compose.yaml cannot run here (no Docker engine): check its services and settings, and that
it shares its Airflow settings (airflow.env) with the process stack the e2e tests run."""

import yaml

from tests.harness import REPO


def compose():
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def shared_settings() -> dict[str, str]:
    from tests.e2e.celery_stack import SETTINGS_FILE, shared_settings

    assert SETTINGS_FILE == REPO / "airflow.env"
    return shared_settings()


def effective_env(service: dict) -> dict[str, str]:
    """What a container sees: its env_file entries in order (the optional .env left out), then
    `environment`, which wins."""
    env: dict[str, str] = {}
    for item in service.get("env_file", []):
        item = item if isinstance(item, dict) else {"path": item}
        if item.get("required", True):
            from tests.e2e.celery_stack import shared_settings as read

            env.update(read(REPO / item["path"]))
    env.update({k: str(v) for k, v in (service.get("environment") or {}).items()})
    return env


AIRFLOW_SERVICES = ("airflow-scheduler", "airflow-worker", "airflow-triggerer", "airflow-dag-processor",
                    "airflow-apiserver", "airflow-init")


def test_services_of_the_official_3x_shape():
    services = compose()["services"]
    assert {"postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "airflow-worker", "airflow-init"} <= set(services)
    commands = {name: services[name].get("command") for name in services}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"] == "celery worker"
    # two workers, as in the process stack (tests/e2e/celery_stack.WORKERS)
    from tests.e2e.celery_stack import WORKERS

    assert services["airflow-worker"]["deploy"]["replicas"] == len(WORKERS) == 2


def test_celery_postgres_redis_and_the_provider():
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        env = effective_env(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert any(v.endswith(":/opt/airflow/dags") for v in services[name]["volumes"])
        assert services[name]["build"] == "."
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install" in dockerfile and "/opt/airflow-backup-provider" in dockerfile
    assert "airflow providers get airflow-backup-provider" in str(services["airflow-init"]["command"])


def test_compose_and_the_process_stack_share_one_settings_file():
    settings = shared_settings()
    assert settings["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        env = effective_env(services[name])
        # every shared setting reaches the container unchanged: nothing in compose overrides it
        assert {k: env[k] for k in settings} == settings, name
        paths = [item["path"] if isinstance(item, dict) else item for item in services[name]["env_file"]]
        assert paths[0] == "airflow.env", paths


def test_the_process_stack_takes_the_shared_settings_and_the_same_drivers(tmp_path):
    from tests.e2e.celery_stack import CeleryStack

    class NoSandbox:
        def connections(self):
            return {}

    stack = CeleryStack(NoSandbox(), {"entries": []}, root=tmp_path / "stack")
    settings = shared_settings()
    overridden = {k for k in settings if stack.env[k] != settings[k]}
    assert overridden == set(), overridden
    compose_env = effective_env(compose()["services"]["airflow-scheduler"])
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CELERY__BROKER_URL"):
        assert stack.env[key].split("://")[0] == compose_env[key].split("://")[0], key
    assert stack.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")


def test_every_generated_dag_has_a_short_description_for_the_dag_list():
    from airflow_backup_provider.config import parse_clusters
    from airflow_backup_provider.factory import build_entry

    entries = parse_clusters(yaml.safe_load((REPO / "dags" / "clusters.yaml").read_text())).entries
    dags = [dag for entry in entries for dag in build_entry(entry)]
    assert {dag.dag_id.split("_")[0] for dag in dags} == {"ebs", "riak", "cassandra", "bup", "devicedb"}
    for dag in dags:
        assert dag.description and len(dag.description) <= 200, (dag.dag_id, dag.description)
        assert len(dag.description.split()) >= 4, (dag.dag_id, dag.description)
    by_id = {dag.dag_id: dag.description for dag in dags}
    assert by_id["riak_prod"] == "Riak KV cluster of the user profiles."  # the entry's own description
    assert by_id["cassandra_events_restore"].startswith("Restores")  # a restore says what it does
