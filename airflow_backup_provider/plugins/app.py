"""The catalog's FastAPI app, mounted by the api-server under :data:`URL_PREFIX`.

Plugin endpoints are not protected by Airflow on its own: every route here authenticates with
Airflow's own dependency (the api-server's JWT, as a bearer token or the UI's cookie: 401/403
without one) and shows only the entries whose backup DAG the user may read, as the auth manager
decides. ``/metrics`` too, unless ``[backup_catalog] metrics_public`` opens it to a scraper.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, status
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from airflow_backup_provider.catalog import Entry, render_metrics, summary

URL_PREFIX = "/backups"
CONF_SECTION = "backup_catalog"


def visible_entries(user: Any, entries: list[Entry]) -> list[Entry]:
    """The entries whose backup DAG `user` may read. An entry whose DAG Airflow does not know (it
    never imported) is shown to a user who may read every DAG."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    readable = manager.get_authorized_dag_ids(user=user, method="GET")
    unknown = [e for e in entries if e.dag_id not in readable]
    if unknown and manager.is_authorized_dag(method="GET", user=user):
        known = _known_dag_ids([e.dag_id for e in unknown])
        readable = readable | {e.dag_id for e in unknown if e.dag_id not in known}
    return [e for e in entries if e.dag_id in readable]


def _known_dag_ids(dag_ids: list[str]) -> set[str]:
    from airflow.models import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return set(session.scalars(select(DagModel.dag_id).where(DagModel.dag_id.in_(dag_ids))))


# a page of rows, as Airflow's own lists: the default and the most a request may ask
PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000


def _rows(user: Any, *, page: slice | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], datetime]:
    """(every visible row, the rows of `page` with their charts, now); without `page`, no charts."""
    from airflow.utils.session import create_session

    from airflow_backup_provider.plugins.catalog_data import catalog_entries, catalog_rows

    now = datetime.now(UTC)
    entries = visible_entries(user, catalog_entries())
    charted = {e.dag_id for e in entries[page]} if page else set()
    with create_session() as session:
        rows = catalog_rows(session, entries, now=now, history_of=charted)
    return rows, rows[page] if page else [], now


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, Query(ge=0)]


async def _user(request: Request) -> Any:
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user, oauth2_scheme

    return await get_user(request, await oauth2_scheme(request), await bearer_scheme(request))


async def _metrics_user(request: Request) -> Any:
    from airflow.configuration import conf

    if conf.getboolean(CONF_SECTION, "metrics_public", fallback=False):
        return None
    return await _user(request)


User = Annotated[Any, Depends(_user)]
MetricsUser = Annotated[Any, Depends(_metrics_user)]


def create_app() -> FastAPI:
    app = FastAPI(title="Backup catalog", description="Every backup of every cluster, from Airflow's metadata.")

    @app.get("/", response_class=HTMLResponse)
    def page(user: User, limit: Limit = PAGE_SIZE, offset: Offset = 0) -> HTMLResponse:
        from airflow_backup_provider.plugins.page import render_page

        rows, shown, now = _rows(user, page=slice(offset, offset + limit))
        return HTMLResponse(render_page(shown, summary(rows), now, offset=offset, limit=limit))

    @app.get("/api/catalog")
    def catalog_json(user: User, limit: Limit = PAGE_SIZE, offset: Offset = 0) -> Response:
        rows, shown, now = _rows(user, page=slice(offset, offset + limit))
        document = {"generated_at": now.isoformat(), "summary": summary(rows), "total_entries": len(rows),
                    "offset": offset, "limit": limit, "clusters": shown}
        # plain JSON already: FastAPI's own encoder would walk every chart point again
        return Response(json.dumps(document), media_type="application/json")

    @app.get("/api/summary")
    def catalog_summary(user: User) -> dict[str, Any]:
        from airflow_backup_provider.plugins.catalog_data import summary_document

        rows, _, now = _rows(user)
        return summary_document(rows, now)

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics(user: MetricsUser) -> PlainTextResponse:
        if user is None:  # open to a scraper: every entry
            from airflow.utils.session import create_session

            from airflow_backup_provider.plugins.catalog_data import catalog_entries, catalog_rows

            with create_session() as session:
                rows = catalog_rows(session, catalog_entries())
        else:
            rows, _, _ = _rows(user)
        return PlainTextResponse(render_metrics(rows), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.exception_handler(FileNotFoundError)
    def no_clusters_file(request: Request, exc: FileNotFoundError) -> PlainTextResponse:
        return PlainTextResponse(f"the clusters file is missing: {exc}", status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    return app

