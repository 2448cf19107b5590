"""Loaded as a pytest plugin (`-p tests.airflow_env`) before anything imports Airflow.

pytest resolves the warning categories of `filterwarnings` (Airflow's own classes) while it
configures itself, which imports Airflow; Airflow reads its configuration once on import. So the
private AIRFLOW_HOME and the rest of the environment must be set before that, here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="abp-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
# dag.test() needs the DAG file inside the dags folder (and walks that folder): tests/dags holds
# a link to the real dags/backup_dags.py and the test-only DAG files.
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "tests" / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ.setdefault("BACKUP_CLUSTERS_FILE", str(REPO / "dags" / "clusters.yaml"))


DEPRECATIONS_AS_ERRORS = (
    "error::airflow.exceptions.RemovedInAirflow4Warning",
    "error::airflow.exceptions.AirflowProviderDeprecationWarning",
    "error::airflow.sdk.exceptions.RemovedInAirflow4Warning",
    "error::airflow.utils.deprecation_tools.DeprecatedImportWarning",
)


def pytest_collection_modifyitems(session, config, items):
    import pytest

    for item in items:
        for spec in DEPRECATIONS_AS_ERRORS:
            item.add_marker(pytest.mark.filterwarnings(spec))
