"""docker-compose.yaml cannot run here (no Docker engine): check its services and settings."""

import yaml

from tests.harness import REPO


def compose():
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


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


def test_celery_postgres_redis_and_the_provider():
    services = compose()["services"]
    for name in ("airflow-scheduler", "airflow-worker", "airflow-triggerer", "airflow-dag-processor", "airflow-apiserver"):
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert any(v.endswith(":/opt/airflow/dags") for v in services[name]["volumes"])
        assert services[name]["build"] == "."
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install" in dockerfile and "/opt/airflow-backup-provider" in dockerfile
    assert "airflow providers get airflow-backup-provider" in str(services["airflow-init"]["command"])
