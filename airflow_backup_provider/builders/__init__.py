"""One module per kind; each registers its builder with :func:`airflow_backup_provider.factory.register`."""
