"""Airflow DAG file that holds no DAG: it fails to import, naming every broken clusters-file
entry, so that the error shows in the UI while backup_dags.py still loads the valid entries."""

from airflow_backup_provider.factory import check_entries

check_entries()
