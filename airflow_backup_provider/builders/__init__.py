"""One module per kind, each with `build(entry) -> list[DAG]`; :mod:`airflow_backup_provider.kinds` lists them."""
