"""Airflow DAG file: backup_freshness, the hourly stale-backup alert over the backup clusters file."""

from airflow_backup_provider.builders.freshness import build_freshness_dag
from airflow_backup_provider.config import load_clusters_file

dag = build_freshness_dag(load_clusters_file())
