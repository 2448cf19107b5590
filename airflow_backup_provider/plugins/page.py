"""The "Backups" page: one HTML document with its CSS inline and a small SVG chart per cluster, drawn
here (no script, no font, nothing fetched from the internet: Airflow machines are often offline)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

CHART_WIDTH, CHART_HEIGHT = 240, 48

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;color:#1f2933;background:#fff}
h1{font-size:20px;margin:0 0 4px} p.summary{margin:0 0 12px;color:#52606d}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e4e7eb;padding:6px 8px;text-align:left;vertical-align:middle}
th{background:#f5f7fa;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px}
.status-ok{background:#e3f9e5;color:#207227} .status-stale{background:#fff3c4;color:#8d6708}
.status-failing{background:#ffe3e3;color:#a61b1b} .status-never{background:#e4e7eb;color:#3e4c59}
.verdict-failed{color:#a61b1b;font-weight:600} .verdict-passed{color:#207227}
svg.chart .size{fill:#9fb3c8} svg.chart .duration{fill:none;stroke:#d64545;stroke-width:1.5}
svg.chart .frame{fill:#fbfcfd;stroke:#e4e7eb} a{color:#2680c2}
.legend{font-size:11px;color:#7b8794}
"""


def human_bytes(value: float | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def _when(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


def chart_svg(history: Sequence[Sequence[Any]], now: datetime, days: int = 90) -> str:
    """Size as bars and duration as a line over the last `days`, each scaled to its own maximum.
    One path for all bars and one polyline: a page of hundreds of charts stays small."""
    end = now.timestamp()
    start = end - days * 86400
    points = [(at, size, duration) for at, size, duration in history if start <= at <= end]
    max_size = max([p[1] for p in points if p[1]] or [1])
    max_duration = max([p[2] for p in points if p[2]] or [1])
    bar = max(1.0, CHART_WIDTH / days - 0.5)
    bars, line = [], []
    for at, size, duration in points:
        x = (at - start) / (end - start) * CHART_WIDTH
        if size:
            height = max(1.0, size / max_size * (CHART_HEIGHT - 4))
            bars.append(f"M{x - bar:.1f} {CHART_HEIGHT}v-{height:.1f}h{bar:.1f}v{height:.1f}z")
        if duration:
            line.append(f"{x:.1f},{CHART_HEIGHT - 2 - duration / max_duration * (CHART_HEIGHT - 6):.1f}")
    parts = [f'<rect class="frame" x="0" y="0" width="{CHART_WIDTH}" height="{CHART_HEIGHT}"/>']
    if bars:
        parts.append(f'<path class="size" d="{"".join(bars)}"/>')
    if line:
        parts.append(f'<polyline class="duration" points="{" ".join(line)}"/>')
    sizes = [p[1] for p in points if p[1]]
    title = (f"{len(points)} backup(s) in {days} days; largest {human_bytes(max(sizes)) if sizes else 'unknown'}, "
             f"longest {max_duration if line else 0:.0f}s")
    return (
        f'<svg class="chart" role="img" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" '
        f'data-points="{len(points)}" data-bars="{len(bars)}"><title>{html.escape(title)}</title>{"".join(parts)}</svg>'
    )


def _link(href: str, text: str) -> str:
    # the page is shown in an iframe of the Airflow UI: links open in the UI itself
    return f'<a href="{html.escape(href)}" target="_top">{html.escape(text)}</a>'


def _pager(total: int, offset: int, limit: int) -> str:
    if total <= limit and offset == 0:
        return ""
    links = []
    if offset > 0:
        links.append(f'<a href="?offset={max(0, offset - limit)}&amp;limit={limit}">previous</a>')
    if offset + limit < total:
        links.append(f'<a href="?offset={offset + limit}&amp;limit={limit}">next</a>')
    return f'<p class="pager">rows {offset + 1}-{min(total, offset + limit)} of {total} {" ".join(links)}</p>'


def render_page(
    rows: Sequence[Mapping[str, Any]], counts: Mapping[str, int], now: datetime, ui_base: str = "/", *,
    offset: int = 0, limit: int = 50,
) -> str:
    base = ui_base.rstrip("/")
    body = []
    for row in rows:
        dag_href = f"{base}/dags/{quote(row['dag_id'], safe='')}"
        last_run = _link(f"{dag_href}/runs/{quote(row['last_run_id'], safe='')}", row["last_run_state"] or "") if row["last_run_id"] else ""
        verdict = row["last_drill_verdict"]
        drill = f'{_when(row["last_drill"])} <span class="verdict-{verdict}">{verdict}</span>' if verdict else ""
        next_run = "paused" if row["paused"] else _when(row["next_run"])
        cells = [
            html.escape(row["kind"]),
            _link(dag_href, row["cluster"]),
            f'<span class="status status-{row["status"]}">{row["status"]}</span>',
            html.escape(_when(row["last_success"])),
            html.escape(row["age"]),
            human_bytes(row["size_bytes"]),
            "" if row["items"] is None else str(row["items"]),
            drill,
            html.escape(next_run),
            last_run,
            chart_svg(row["history"], now),
        ]
        classes = ["", "", "", "", "num", "num", "num", "", "", "", ""]
        tds = "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for c, v in zip(classes, cells, strict=True))
        body.append(f'<tr class="cluster" data-kind="{html.escape(row["kind"])}" data-cluster="{html.escape(row["cluster"])}" data-status="{row["status"]}">{tds}</tr>')
    heads = ["Kind", "Cluster", "Status", "Last good backup", "Age", "Size", "Items", "Last drill", "Next run", "Last run",
             "Size (bars) and duration (line), 90 days"]
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "stale", "failing", "never"))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Backups</title>'
        f"<style>{STYLE}</style></head><body><h1>Backups</h1>"
        f'<p class="summary">{counts.get("clusters", 0)} cluster(s): {summary}. As of {now.strftime("%Y-%m-%d %H:%M:%S UTC")}. '
        'Also as <a href="api/catalog">JSON</a> and <a href="metrics">Prometheus metrics</a>.</p>'
        f'<table id="catalog"><thead><tr>{"".join(f"<th>{h}</th>" for h in heads)}</tr></thead>'
        f'<tbody>{"".join(body) or "<tr><td colspan=11>No cluster you may read.</td></tr>"}</tbody></table>'
        f'{_pager(counts.get("clusters", 0), offset, limit)}</body></html>'
    )
