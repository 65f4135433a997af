"""The usage page at ``/services/usage/``: admins only, HTML with an inline chart, and CSV.

Signs people in with the hub (OAuth, no confirmation page), then asks the hub with its own token
whether they are an admin. Its token holds only list/read of users and groups, which is enough for
names, groups and group properties (budgets); never ``admin:users``, which would expose auth_state.
"""

from __future__ import annotations

import asyncio
import html
import os
import signal
from urllib.parse import urlparse

import httpx
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web

from sporthub.settings import Settings
from sporthub.usage.report import Report, bar_chart, build_report, read_only_engine, to_csv


class HubAPI:
    def __init__(self, url: str, token: str):
        self.client = httpx.AsyncClient(base_url=url.rstrip("/") + "/", timeout=15,
                                        headers={"Authorization": f"token {token}"})

    async def get_all(self, path: str) -> list[dict]:
        """Every item of a paginated list (the hub answers 50 at a time unless asked)."""
        items, offset = [], 0
        while True:
            response = await self.client.get(
                path, params={"offset": offset, "limit": 200},
                headers={"Accept": "application/jupyterhub-pagination+json"})
            response.raise_for_status()
            page = response.json()
            items.extend(page["items"])
            following = page["_pagination"]["next"]
            if not following:
                return items
            offset = following["offset"]


class UsageHandler(HubOAuthenticated, web.RequestHandler):
    @property
    def api(self) -> HubAPI:
        return self.settings["hub_api"]

    async def _admin_report(self) -> Report:
        users = await self.api.get_all("users")
        if not any(u["name"] == self.current_user["name"] and u.get("admin") for u in users):
            raise web.HTTPError(403, "The usage page is for hub admins.")
        groups = await self.api.get_all("groups")
        return await asyncio.to_thread(
            build_report, self.settings["ledger"], self.settings["sporthub"],
            {u["name"]: u.get("groups", []) for u in users},
            {g["name"]: g.get("properties", {}) for g in groups})

    def write_error(self, status_code: int, **kwargs) -> None:
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            reason = exc.log_message
        self.finish(f"<!DOCTYPE html><title>{status_code}</title><h1>{status_code}</h1>"
                    f"<p>{html.escape(reason)}</p>")


class PageHandler(UsageHandler):
    @web.authenticated
    async def get(self):
        report = await self._admin_report()
        self.finish(render_page(report, self.settings["hub_prefix"]))


class CsvHandler(UsageHandler):
    @web.authenticated
    async def get(self):
        report = await self._admin_report()
        stamp = report.generated_at.strftime("%Y%m%d-%H%M")
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="usage-{stamp}.csv"')
        self.finish(to_csv(report))


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def render_page(report: Report, hub_prefix: str) -> str:
    e = html.escape
    rows = "".join(
        f'<tr data-user="{e(u.user)}"><td>{e(u.user)}</td><td>{e(u.groups)}</td>'
        f'<td class="today">{u.tokens_today}</td><td>{u.budget_per_day}</td>'
        f'<td class="week">{u.tokens_week}</td><td>{u.budget_week}</td>'
        f'<td class="requests">{u.requests_week}</td><td class="mean">{_ms(u.mean_queue_ms)}</td>'
        f'<td class="p95">{_ms(u.p95_queue_ms)}</td><td class="errors">{u.errors_week}</td></tr>'
        for u in report.users)
    errors = "".join(
        f"<tr><td>{r.started_at:%Y-%m-%d %H:%M:%S}</td><td>{e(r.user)}</td><td>{e(r.endpoint)}</td>"
        f"<td>{e(r.model or '')}</td><td>{r.status}</td><td>{e(r.outcome)}</td></tr>"
        for r in report.errors) or '<tr><td colspan="6">none</td></tr>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>SportHub usage</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}}
td:first-child,th:first-child,td:nth-child(2){{text-align:left}}</style></head>
<body><p><a href="{e(hub_prefix)}home">← hub</a> · <a href="usage.csv">CSV</a></p>
<h1>Language model usage</h1>
<p>Generated {report.generated_at:%Y-%m-%d %H:%M} UTC. Today = this UTC day (budgets reset at
00:00 UTC); week = the last 7 UTC days, against 7 × the daily budget. Queue wait: mean and 95th
percentile (nearest rank) of the last 7 days' requests, in milliseconds.</p>
<table id="usage-table"><thead><tr><th>user</th><th>groups</th><th>tokens today</th>
<th>daily budget</th><th>tokens week</th><th>week budget</th><th>requests week</th>
<th>mean wait ms</th><th>p95 wait ms</th><th>errors week</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Tokens per day, last {len(report.days)} days (everyone)</h2>
{bar_chart(report.days)}
<h2>Recent errors</h2>
<table id="errors-table"><thead><tr><th>time (UTC)</th><th>user</th><th>endpoint</th>
<th>model</th><th>status</th><th>outcome</th></tr></thead><tbody>{errors}</tbody></table>
</body></html>"""


def make_app(settings: Settings) -> web.Application:
    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    return web.Application(
        [
            (prefix, PageHandler),
            (url_path_join(prefix, "usage.csv"), CsvHandler),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ],
        cookie_secret=os.urandom(32),
        hub_api=HubAPI(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]),
        ledger=read_only_engine(settings.ledger_url),
        sporthub=settings,
        hub_prefix=url_path_join(settings.base_url, "hub/"),
    )


async def serve(settings: Settings) -> None:
    app = make_app(settings)
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    # the URL names where the proxy reaches the page (k8s: the hub's Service); it listens on
    # loopback, or in k8s on all of the hub pod's addresses
    app.listen(url.port, settings.service_bind_ip)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # the hub stops its services with SIGTERM; answering at once keeps hub shutdown quick
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
