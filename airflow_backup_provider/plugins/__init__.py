"""The backup catalog plugin: a FastAPI app under the api-server (the page, its JSON, /metrics) and
a "Backups" entry in the UI's navigation. The provider registers it (get_provider_info's
``plugins``), so installing the package is enough."""

from __future__ import annotations

from airflow.sdk.plugins_manager import AirflowPlugin

from airflow_backup_provider.plugins.app import URL_PREFIX, create_app


class BackupCatalogPlugin(AirflowPlugin):
    name = "backup_catalog"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Backup catalog"}]
    external_views = [
        {
            "name": "Backups",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "backups",
            "category": "browse",
        }
    ]
