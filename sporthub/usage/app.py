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

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web

from sporthub import i18n
from sporthub.service_auth import get_all, hub_api_client
from sporthub.settings import Settings
from sporthub.usage.report import Report, bar_chart, build_report, read_only_engine, to_csv


class HubAPI:
    """The page's own calls to the hub, with its service token (the services' shared helper)."""

    def __init__(self, url: str, token: str):
        self.client = hub_api_client(url, token, timeout=15)

    async def get_all(self, path: str) -> list[dict]:
        return await get_all(self.client, path)


class UsageHandler(HubOAuthenticated, web.RequestHandler):
    @property
    def api(self) -> HubAPI:
        return self.settings["hub_api"]

    @property
    def lang(self) -> str:
        """The hub's language choice (sporthub/i18n.py); the switch's ``?lang=`` is remembered in
        the same cookie the hub's pages read, so both sides keep speaking the same language."""
        lang = i18n.language_of_request(self.request)
        if self.get_query_argument("lang", None) == lang:
            self.set_cookie(i18n.COOKIE, lang, path="/", expires_days=365, samesite="Lax")
        return lang

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
        lang = self.lang
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            reason = exc.log_message
        self.finish(render_error(status_code, reason, lang))


class PageHandler(UsageHandler):
    @web.authenticated
    async def get(self):
        report = await self._admin_report()
        self.finish(render_page(report, self.settings["hub_prefix"], self.lang))


class CsvHandler(UsageHandler):
    """Machine-readable on purpose, whatever the page's language: the header row is the field
    names and the numbers are plain, so a spreadsheet or a script reads every export alike."""

    @web.authenticated
    async def get(self):
        report = await self._admin_report()
        stamp = report.generated_at.strftime("%Y%m%d-%H%M")
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="usage-{stamp}.csv"')
        self.finish(to_csv(report))


def render_error(status_code: int, reason: str, lang: str = "en") -> str:
    """The heading in words (as on the hub's error pages), then what happened."""
    title = html.escape(i18n.gettext(lang, i18n.ERROR_TITLES.get(status_code, str(status_code))))
    return (f'<!DOCTYPE html><html lang="{lang}"><meta charset="utf-8"><title>{title}</title>'
            f"<h1>{title}</h1><p>{html.escape(i18n.gettext(lang, reason))}</p>")


def _ms(lang: str, value: float | None) -> str:
    return "–" if value is None else i18n.number(lang, round(value))


def _s(lang: str, ms: float, signed: bool = False) -> str:
    """Milliseconds as seconds with one decimal; ``signed`` writes the + of a late ETA."""
    text = i18n.number(lang, round(ms / 1000, 1))
    return f"+{text}" if signed and ms > 0 else text


def render_eta(report: Report, lang: str) -> str:
    """The waits of the last 7 days and how right the ETAs told before them were."""
    e = html.escape

    def _(text: str, **values: object) -> str:
        return e(i18n.gettext(lang, text, **values))

    a = report.eta
    if a is None:
        body = f'<tr><td colspan="6">{_("none")}</td></tr>'
    else:
        body = (f'<tr><td class="waited">{i18n.number(lang, a.waited)}</td>'
                f'<td class="median-wait">{_s(lang, a.median_wait_ms)}</td>'
                f'<td class="p90-wait">{_s(lang, a.p90_wait_ms)}</td>'
                f'<td class="median-error">{_s(lang, a.median_error_ms, signed=True)}</td>'
                f'<td class="p90-error">{_s(lang, a.p90_abs_error_ms)}</td>'
                f'<td class="within">{i18n.number(lang, round(a.within_share * 100))} %</td></tr>')
    return f"""<h2>{_("Queue waits and their ETAs, last 7 days")}</h2>
<p>{_("Requests that were told a wait when they joined the queue: their real waits, and how far "
      "the ETA they were told was from it (positive: later than told), in seconds; within = "
      "the share within 25 % of the real wait or 2 s.")}</p>
<table id="eta-table"><thead><tr><th>{_("requests that waited")}</th><th>{_("median wait")}</th>
<th>{_("p90 wait")}</th><th>{_("median ETA error")}</th><th>{_("p90 ETA error size")}</th>
<th>{_("within the bound")}</th></tr></thead><tbody>{body}</tbody></table>"""


def render_page(report: Report, hub_prefix: str, lang: str = "en") -> str:
    e = html.escape

    def _(text: str, **values: object) -> str:
        return e(i18n.gettext(lang, text, **values))

    def n(value: int) -> str:
        return i18n.number(lang, value)

    rows = "".join(
        f'<tr data-user="{e(u.user)}"><td>{e(u.user)}</td><td>{e(u.groups)}</td>'
        f'<td class="today">{n(u.tokens_today)}</td><td>{n(u.budget_per_day)}</td>'
        f'<td class="week">{n(u.tokens_week)}</td><td>{n(u.budget_week)}</td>'
        f'<td class="requests">{n(u.requests_week)}</td>'
        f'<td class="mean">{_ms(lang, u.mean_queue_ms)}</td>'
        f'<td class="p95">{_ms(lang, u.p95_queue_ms)}</td>'
        f'<td class="errors">{n(u.errors_week)}</td></tr>'
        for u in report.users)
    # status and outcome are the ledger's codes (as in the gateway's answers and logs)
    errors = "".join(
        f'<tr><td>{e(i18n.moment(lang, r.started_at))}</td><td>{e(r.user)}</td>'
        f"<td>{e(r.endpoint)}</td><td>{e(r.model or '')}</td><td>{r.status}</td>"
        f"<td>{e(r.outcome)}</td></tr>"
        for r in report.errors) or f'<tr><td colspan="6">{_("none")}</td></tr>'
    chart_title = i18n.ngettext(lang, "Tokens per day, last {n} day (everyone)",
                                "Tokens per day, last {n} days (everyone)", len(report.days))
    switch = " ".join(
        f'<a href="?lang={code}" hreflang="{code}"{" class=current" if code == lang else ""}>'
        f"{name}</a>" for code, name in (("en", "English"), ("ru", "Русский")))
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{_("SportHub usage")}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}}
td:first-child,th:first-child,td:nth-child(2){{text-align:left}}
#language{{float:right}}#language .current{{font-weight:bold}}</style></head>
<body><p><span id="language" title="{_("Language")}">{switch}</span>
<a href="{e(hub_prefix)}home">{_("← hub")}</a> · <a href="usage.csv">CSV</a></p>
<h1>{_("Language model usage")}</h1>
<p>{_("Generated {moment} UTC.", moment=i18n.moment(lang, report.generated_at))}
{_("Today = this UTC day (budgets reset at 00:00 UTC); week = the last 7 UTC days, against "
   "7 × the daily budget. Queue wait: mean and 95th percentile (nearest rank) of the last 7 "
   "days' requests, in milliseconds.")}</p>
<table id="usage-table"><thead><tr><th>{_("user")}</th><th>{_("groups")}</th>
<th>{_("tokens today")}</th><th>{_("daily budget")}</th><th>{_("tokens week")}</th>
<th>{_("week budget")}</th><th>{_("requests week")}</th><th>{_("mean wait ms")}</th>
<th>{_("p95 wait ms")}</th><th>{_("errors week")}</th></tr></thead>
<tbody>{rows}</tbody></table>
{render_eta(report, lang)}
<h2>{e(chart_title)}</h2>
{bar_chart(report.days, lang=lang, label=chart_title)}
<h2>{_("Recent errors")}</h2>
<table id="errors-table"><thead><tr><th>{_("time (UTC)")}</th><th>{_("user")}</th>
<th>{_("endpoint")}</th><th>{_("model")}</th><th>{_("status")}</th><th>{_("outcome")}</th></tr>
</thead><tbody>{errors}</tbody></table>
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
