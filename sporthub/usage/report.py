"""Usage figures from the gateway's ledger: per user, per day, and the recent errors.

Read-only: the gateway is the ledger's only writer. Figures are computed in Python from the rows
of the last 14 days, which keeps SQLite and PostgreSQL alike (no dialect date functions); at 100
accounts that is a few thousand rows.

Definitions (also on the page): *today* is the current UTC day, as the budgets are; *week* is the
last 7 UTC days including today, against 7 times the daily budget; queue wait is ``queued_ms`` of
the requests that waited at all (NULL = not measured, left out); p95 is the nearest-rank 95th
percentile. ETA accuracy compares, for the requests of the last 7 days that were told a wait on
joining the queue (``eta_ms``), that ETA with the real wait (``queued_ms``): the median signed
error (positive: later than told), the 90th percentile of its size, and the share within
max(25 %, 2 s) of the real wait (the bound the gateway's estimate aims at).
"""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, create_engine, select

from sporthub import i18n
from sporthub.gateway.ledger import RequestRow
from sporthub.gateway.policy import budget_window, resolve
from sporthub.settings import Settings

CHART_DAYS = 14
WEEK_DAYS = 7
# an ETA is right when within this share of the real wait, or this many ms (issue 19's bound)
ETA_BOUND_SHARE, ETA_BOUND_MS = 0.25, 2000.0


@dataclass(frozen=True)
class UserUsage:
    user: str
    groups: str
    budget_per_day: int
    tokens_today: int
    tokens_week: int
    budget_week: int
    requests_week: int
    mean_queue_ms: float | None
    p95_queue_ms: float | None
    errors_week: int


@dataclass(frozen=True)
class ErrorRow:
    started_at: datetime
    user: str
    endpoint: str
    model: str | None
    status: int
    outcome: str


@dataclass(frozen=True)
class EtaAccuracy:
    """How right the queue's ETAs were (last 7 days), next to the waits they foretold."""

    waited: int  # requests told an ETA that then got a slot
    median_wait_ms: float
    p90_wait_ms: float
    median_error_ms: float  # signed: positive, people waited longer than told
    p90_abs_error_ms: float
    within_share: float  # within max(25 %, 2 s) of the real wait

    @classmethod
    def of(cls, pairs: list[tuple[float, float]]) -> EtaAccuracy | None:
        """``pairs``: (ETA given, real wait), in milliseconds."""
        if not pairs:
            return None
        waits = [wait for _, wait in pairs]
        errors = [wait - eta for eta, wait in pairs]
        within = sum(abs(wait - eta) <= max(ETA_BOUND_SHARE * wait, ETA_BOUND_MS)
                     for eta, wait in pairs)
        return cls(waited=len(pairs), median_wait_ms=nearest_rank(waits, 0.5),
                   p90_wait_ms=nearest_rank(waits, 0.9),
                   median_error_ms=nearest_rank(errors, 0.5),
                   p90_abs_error_ms=nearest_rank([abs(x) for x in errors], 0.9),
                   within_share=within / len(pairs))


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    users: list[UserUsage]
    days: list[tuple[date, int]]
    errors: list[ErrorRow]
    eta: EtaAccuracy | None = None


def read_only_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        # SQLite's own read-only mode: this service can never write to the gateway's ledger
        path = url.removeprefix("sqlite:///")
        return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true",
                             connect_args={"timeout": 30})
    return create_engine(url, pool_pre_ping=True,
                         execution_options={"postgresql_readonly": True})


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def nearest_rank(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def p95(values: list[float]) -> float | None:
    return nearest_rank(values, 0.95)


def build_report(engine: Engine, settings: Settings, users: dict[str, list[str]],
                 group_properties: dict[str, dict], now: datetime | None = None) -> Report:
    """``users``: hub user name -> group names; ``group_properties``: hub group properties."""
    now = now or datetime.now(UTC)
    today, _ = budget_window(now)
    week_start = today - timedelta(days=WEEK_DAYS - 1)
    chart_start = today - timedelta(days=CHART_DAYS - 1)
    columns = (RequestRow.started_at, RequestRow.user, RequestRow.prompt_tokens,
               RequestRow.completion_tokens, RequestRow.queued_ms, RequestRow.outcome,
               RequestRow.eta_ms)
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).where(RequestRow.started_at >= chart_start)).all()
        error_rows = conn.execute(
            select(RequestRow.started_at, RequestRow.user, RequestRow.endpoint, RequestRow.model,
                   RequestRow.status, RequestRow.outcome)
            .where(RequestRow.outcome != "ok")
            .order_by(RequestRow.started_at.desc()).limit(20)).all()

    per_day = {(chart_start + timedelta(days=i)).date(): 0 for i in range(CHART_DAYS)}
    stats: dict[str, dict] = {}
    told: list[tuple[float, float]] = []
    for started_at, user, prompt, completion, queued_ms, outcome, eta_ms in rows:
        started_at = _utc(started_at)
        tokens = (prompt or 0) + (completion or 0)
        if started_at.date() in per_day:
            per_day[started_at.date()] += tokens
        s = stats.setdefault(user, {"today": 0, "week": 0, "requests": 0, "waits": [],
                                    "errors": 0})
        if started_at >= today:
            s["today"] += tokens
        if started_at >= week_start:
            s["week"] += tokens
            s["requests"] += 1
            if queued_ms is not None:
                s["waits"].append(queued_ms)
                if eta_ms is not None:
                    told.append((eta_ms, queued_ms))
            if outcome != "ok":
                s["errors"] += 1

    report_users = []
    for name in sorted(set(users) | set(stats)):
        groups = users.get(name, [])
        policy = resolve(settings, {g: group_properties.get(g, {}) for g in groups})
        s = stats.get(name, {"today": 0, "week": 0, "requests": 0, "waits": [], "errors": 0})
        waits = s["waits"]
        report_users.append(UserUsage(
            user=name, groups=" ".join(sorted(groups)), budget_per_day=policy.tokens_per_day,
            tokens_today=s["today"], tokens_week=s["week"],
            budget_week=policy.tokens_per_day * WEEK_DAYS, requests_week=s["requests"],
            mean_queue_ms=round(sum(waits) / len(waits), 1) if waits else None,
            p95_queue_ms=round(p95(waits), 1) if waits else None,
            errors_week=s["errors"],
        ))
    errors = [ErrorRow(_utc(r[0]), *r[1:]) for r in error_rows]
    return Report(generated_at=now, users=report_users, days=sorted(per_day.items()),
                  errors=errors, eta=EtaAccuracy.of(told))


# a spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str | int | float:
    """A value as a spreadsheet will show it, never run it: text that could start a formula gets a
    leading apostrophe. Numbers stay numbers (a negative one is not text anybody typed)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(report: Report) -> str:
    out = io.StringIO()
    fields = list(UserUsage.__dataclass_fields__)
    # CRLF as RFC 4180 says; it also makes the writer quote a cell holding a lone \r
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
    writer.writeheader()
    for row in report.users:
        writer.writerow({k: csv_cell(v) for k, v in asdict(row).items()})
    return out.getvalue()


def bar_chart(days: list[tuple[date, int]], width: int = 700, height: int = 200,
              lang: str = "en", label: str | None = None) -> str:
    """Tokens per day as an inline SVG: no script, nothing loaded from elsewhere. ``data-*``
    stay machine-readable (ISO day, plain number); what a person reads is in ``lang``."""
    top = max((tokens for _, tokens in days), default=0) or 1
    slot = width / max(len(days), 1)
    plot = height - 30
    label = label or i18n.ngettext(lang, "Tokens per day, last {n} day (everyone)",
                                   "Tokens per day, last {n} days (everyone)", len(days))
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(label)}" id="usage-chart">')]
    for i, (day, tokens) in enumerate(days):
        bar = plot * tokens / top
        x = i * slot + slot * 0.15
        title = i18n.ngettext(lang, "{day}: {n} token", "{day}: {n} tokens", tokens,
                              day=i18n.day(lang, day))
        parts.append(
            f'<rect x="{x:.1f}" y="{plot - bar + 10:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{bar:.1f}" fill="#f37726" data-day="{day.isoformat()}" '
            f'data-tokens="{tokens}"><title>{html.escape(title)}</title></rect>')
        parts.append(f'<text x="{i * slot + slot / 2:.1f}" y="{height - 5}" font-size="10" '
                     f'text-anchor="middle">{i18n.day(lang, day, short=True)}</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Summary:
    user: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    tokens: int
    errors: int
    mean_queue_ms: float | None
    p95_queue_ms: float | None


def summary_since(engine: Engine, since: datetime) -> list[Summary]:
    """Per-user totals of the requests that started at or after ``since`` (for the CLI)."""
    columns = (RequestRow.user, RequestRow.prompt_tokens, RequestRow.completion_tokens,
               RequestRow.queued_ms, RequestRow.outcome)
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).where(RequestRow.started_at >= since)).all()
    per_user: dict[str, list] = {}
    for user, prompt, completion, queued_ms, outcome in rows:
        per_user.setdefault(user, []).append((prompt or 0, completion or 0, queued_ms, outcome))
    result = []
    for user, items in sorted(per_user.items()):
        waits = [q for _, _, q, _ in items if q is not None]
        prompt = sum(p for p, _, _, _ in items)
        completion = sum(c for _, c, _, _ in items)
        result.append(Summary(
            user=user, requests=len(items), prompt_tokens=prompt, completion_tokens=completion,
            tokens=prompt + completion, errors=sum(1 for *_, o in items if o != "ok"),
            mean_queue_ms=sum(waits) / len(waits) if waits else None, p95_queue_ms=p95(waits)))
    return result
