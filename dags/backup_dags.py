"""Airflow DAG file: one DAG (or a few) per entry of the backup clusters file."""

from airflow_backup_provider.factory import register_dags

register_dags(globals())
