"""airflow-backup-provider: Airflow operators, sensors and DAGs that back up clusters and hosts."""

from __future__ import annotations

__version__ = "0.1.0"

# Every module below hooks/, operators/, sensors/, triggers/ must be listed here
# (tests/unit/test_provider_info.py keeps the lists in step with the code).
HOOK_MODULES: list[str] = [
    "airflow_backup_provider.hooks.bup",
    "airflow_backup_provider.hooks.cassandra",
    "airflow_backup_provider.hooks.devicedb",
    "airflow_backup_provider.hooks.drill",
    "airflow_backup_provider.hooks.ebs",
    "airflow_backup_provider.hooks.remote",
    "airflow_backup_provider.hooks.object_store",
]
OPERATOR_MODULES: list[str] = [
    "airflow_backup_provider.operators.base",
    "airflow_backup_provider.operators.bup",
    "airflow_backup_provider.operators.cassandra",
    "airflow_backup_provider.operators.devicedb",
    "airflow_backup_provider.operators.devicedb_restore",
    "airflow_backup_provider.operators.drill",
    "airflow_backup_provider.operators.ebs",
    "airflow_backup_provider.operators.ebs_restore",
    "airflow_backup_provider.operators.ebs_drill",
    "airflow_backup_provider.operators.freshness",
    "airflow_backup_provider.operators.remote_job",
    "airflow_backup_provider.operators.report",
    "airflow_backup_provider.operators.retention",
    "airflow_backup_provider.operators.riak",
    "airflow_backup_provider.operators.s3_sync",
    "airflow_backup_provider.operators.service",
]
SENSOR_MODULES: list[str] = [
    "airflow_backup_provider.sensors.devicedb",
    "airflow_backup_provider.sensors.ebs",
    "airflow_backup_provider.sensors.exclusive",
    "airflow_backup_provider.sensors.riak",
]
TRIGGER_MODULES: list[str] = [
    "airflow_backup_provider.triggers.devicedb",
    "airflow_backup_provider.triggers.ebs",
    "airflow_backup_provider.triggers.events",
    "airflow_backup_provider.triggers.remote_job",
    "airflow_backup_provider.triggers.riak",
]
NOTIFICATION_CLASSES = [
    "airflow_backup_provider.notifications.BackupAlertNotifier",
]
# The catalog's plugin (airflow_backup_provider.plugins.BackupCatalogPlugin) is registered through the
# `airflow.plugins` entry point (pyproject.toml), not a "plugins" section here: Airflow 3.3 loads a
# provider's plugins only with [core] lazy_load_providers off, and with both it skips the second one
# as "already registered", an import error in the UI.
PLUGIN_ENTRY_POINT = "backup_catalog"
INTEGRATION = "Backup"


def get_provider_info() -> dict:
    def section(modules: list[str]) -> list[dict]:
        return [{"integration-name": INTEGRATION, "python-modules": modules}] if modules else []

    return {
        "package-name": "airflow-backup-provider",
        "name": "Backup",
        "description": "Backups of Riak, Cassandra, devicedb clusters, EBS volumes and hosts (bup).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://airflow.apache.org/",
                "tags": ["software"],
            }
        ],
        "hooks": section(HOOK_MODULES),
        "operators": section(OPERATOR_MODULES),
        "sensors": section(SENSOR_MODULES),
        "triggers": [{"integration-name": INTEGRATION, "python-modules": TRIGGER_MODULES}] if TRIGGER_MODULES else [],
        "notifications": NOTIFICATION_CLASSES,
    }
