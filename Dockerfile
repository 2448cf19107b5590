# The Airflow image with this provider installed from the repository (used by docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client bup par2 \
 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root pyproject.toml README.md /opt/airflow-backup-provider/
COPY --chown=airflow:root airflow_backup_provider /opt/airflow-backup-provider/airflow_backup_provider
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/airflow-backup-provider
