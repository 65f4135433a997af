"""The ETA a request was told, in the ledger, and the usage page's ETA accuracy from it: the
migration and the figures on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect

import sporthub.gateway.ledger as ledger_module
from sporthub.gateway.ledger import Ledger, RequestRecord, migrate
from sporthub.settings import load_settings
from sporthub.usage.app import render_page
from sporthub.usage.report import EtaAccuracy, build_report


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        return
    name = f"sporthub_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def alembic(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location",
                           str(Path(ledger_module.__file__).with_name("migrations")))
    config.set_main_option("sqlalchemy.url", url)
    return config


def columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("llm_requests")}
    finally:
        engine.dispose()


def row(user: str, eta_ms: float | None, queued_ms: float | None, days_ago: float = 0,
        tokens: int = 10, model: str = "m") -> RequestRecord:
    return RequestRecord(id=str(uuid.uuid4()), user=user, endpoint="chat/completions",
                         started_at=datetime.now(UTC) - timedelta(days=days_ago), model=model,
                         completion_tokens=tokens, eta_ms=eta_ms, queued_ms=queued_ms)


def test_the_migration_adds_the_eta_to_a_ledger_that_has_rows_and_takes_it_back(db_url):
    config = alembic(db_url)
    command.upgrade(config, "0001")
    assert "eta_ms" not in columns(db_url)
    command.upgrade(config, "head")
    assert "eta_ms" in columns(db_url)
    command.downgrade(config, "0001")
    assert "eta_ms" not in columns(db_url)
    migrate(db_url)  # as the gateway does at start
    assert "eta_ms" in columns(db_url)


def test_the_usage_page_shows_the_eta_error_of_the_last_7_days(db_url):
    migrate(db_url)
    ledger = Ledger(db_url)
    rows = [
        row("ann", eta_ms=10_000, queued_ms=11_000),   # +1 s: within (2 s floor)
        row("ann", eta_ms=20_000, queued_ms=24_000),   # +4 s of 24: within 25 %
        row("bob", eta_ms=30_000, queued_ms=20_000),   # -10 s of 20: outside
        row("bob", eta_ms=5_000, queued_ms=12_000),    # +7 s of 12: outside
        row("bob", eta_ms=None, queued_ms=50.0),       # served at once: no ETA to judge
        row("cat", eta_ms=9_000, queued_ms=None),      # left the queue: no real wait
        row("cat", eta_ms=1_000, queued_ms=90_000, days_ago=8),  # older than 7 days
    ]
    try:
        for r in rows:
            asyncio.run(ledger.record(r))
    finally:
        ledger.close()
    engine = create_engine(db_url)
    try:
        report = build_report(engine, load_settings(), {"ann": [], "bob": [], "cat": []}, {})
    finally:
        engine.dispose()
    eta = report.eta
    assert eta.waited == 4
    assert eta.within_share == 0.5
    # signed errors +1, +4, -10, +7 s: nearest-rank median is the 2nd of 4 = +1 s
    assert eta.median_error_ms == pytest.approx(1000)
    assert eta.p90_abs_error_ms == pytest.approx(10_000)
    assert eta.median_wait_ms == pytest.approx(12_000)
    assert eta.p90_wait_ms == pytest.approx(24_000)
    english = render_page(report, "/hub/", "en")
    assert '<td class="waited">4</td>' in english
    assert '<td class="median-error">+1</td>' in english
    assert '<td class="p90-error">10</td>' in english
    assert '<td class="within">50 %</td>' in english
    russian = render_page(report, "/hub/", "ru")
    assert "Ожидание в очереди и его прогноз за 7 дней" in russian
    assert '<td class="median-wait">12</td>' in russian


def test_the_gateway_starts_from_the_ledgers_recent_answer_lengths(db_url):
    migrate(db_url)
    ledger = Ledger(db_url)
    try:
        for i, tokens in enumerate([5, 50, 500]):
            asyncio.run(ledger.record(row("ann", None, None, days_ago=1 - i * 0.1, tokens=tokens)))
        failed = row("ann", None, None, tokens=999)
        failed.outcome, failed.status = "error", 502
        asyncio.run(ledger.record(failed))
        asyncio.run(ledger.record(row("ann", None, None, tokens=7, model="other")))
        lengths = ledger.recent_answer_lengths()
    finally:
        ledger.close()
    assert lengths == {"m": [5, 50, 500], "other": [7]}  # oldest first, failures left out


def test_no_eta_told_yet_says_none():
    assert EtaAccuracy.of([]) is None
