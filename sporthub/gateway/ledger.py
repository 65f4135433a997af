"""The usage ledger: one row per gateway request, written exactly once whatever the outcome.

SQLite by default, PostgreSQL by URL; the schema is managed with Alembic (``migrations/``).
Budgets are computed from these rows, so they survive a gateway restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    create_engine,
    func,
    select,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

log = logging.getLogger("sporthub.gateway")
# how long a row waits for a database that went away (a restart takes seconds)
RETRY_FOR_S = 120.0


class Base(DeclarativeBase):
    pass


class RequestRow(Base):
    __tablename__ = "llm_requests"
    __table_args__ = (
        Index("ix_llm_requests_user_started", "user", "started_at"),
        Index("ix_llm_requests_started", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user: Mapped[str] = mapped_column(String(255))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(255))
    backend: Mapped[str | None] = mapped_column(String(64))
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    queued_ms: Mapped[float | None]
    # the wait the caller was told on joining the queue (NULL: no wait, or no estimate)
    eta_ms: Mapped[float | None]
    ttft_ms: Mapped[float | None]
    duration_ms: Mapped[float | None]
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))


@dataclass
class RequestRecord:
    """What the gateway learns about one request while serving it."""

    id: str
    user: str
    endpoint: str
    client_ip: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    model: str | None = None
    backend: str | None = None
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    queued_ms: float | None = None
    eta_ms: float | None = None
    ttft_ms: float | None = None
    duration_ms: float | None = None
    status: int = 200
    outcome: str = "ok"


def migrate(url: str) -> None:
    """Bring the ledger's schema to the newest Alembic revision."""
    _private_sqlite_file(url)
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def _private_sqlite_file(url: str) -> None:
    """A SQLite ledger says who used what: create it 0600 before SQLite creates it 0644."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix + ":memory:":
        return
    path = Path(url.removeprefix(prefix).split("?")[0])
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def _insert_statement(dialect) -> tuple[str, Callable[[dict], tuple | dict]]:
    """A row's INSERT as the database driver takes it, and the row's values converted by
    SQLAlchemy's own types (so each value is stored as ``insert(RequestRow)`` stores it), without
    SQLAlchemy's work for each statement (about half the CPU of writing a row, on every model
request)."""
    columns = list(RequestRow.__table__.columns)
    names = [c.name for c in columns]
    convert = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    style = dialect.paramstyle
    marks = {"qmark": lambda _: "?", "format": lambda _: "%s", "named": lambda n: f":{n}",
             "pyformat": lambda n: f"%({n})s"}[style]  # a driver with another style: KeyError
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(RequestRow.__tablename__)} ({', '.join(map(quote, names))}) "
           f"VALUES ({', '.join(marks(n) for n in names)})")
    # a column without a value in the row gets its default, as insert() gives it
    defaults = [c.default.arg if c.default is not None and c.default.is_scalar else None
                for c in columns]
    spec = list(zip(names, convert, defaults, strict=True))

    def values(row: dict) -> list:
        out = []
        for name, f, default in spec:
            value = row.get(name, default)
            out.append(value if f is None or value is None else f(value))
        return out

    if style in ("qmark", "format"):
        return sql, lambda row: tuple(values(row))
    return sql, lambda row: dict(zip(names, values(row), strict=True))


class Ledger:
    def __init__(self, url: str):
        sqlite = url.startswith("sqlite")
        # a server database may drop idle connections; a file cannot
        self.engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {},
                                    pool_pre_ping=not sqlite)
        self._insert_sql, self._to_params = _insert_statement(self.engine.dialect)

    async def record(self, rec: RequestRecord) -> None:
        """Write one row (see :meth:`record_many`)."""
        await self.record_many([rec])

    async def record_many(self, records: list[RequestRecord]) -> None:
        """Write the rows in one transaction (all or none); while the database is away (a
        PostgreSQL restart), keep trying."""
        rows = [dict(rec.__dict__) for rec in records]
        delay, deadline = 0.2, time.monotonic() + RETRY_FOR_S
        retried = False
        while True:
            try:
                await asyncio.to_thread(self._insert, rows)
                return
            except (OperationalError, InterfaceError) as e:
                if time.monotonic() > deadline:
                    log.error("ledger rows %s lost: the database did not come back in %.0f s",
                              ", ".join(r["id"] for r in rows), RETRY_FOR_S)
                    raise
                log.warning("ledger write failed (%s); retrying", type(e).__name__)
                retried = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except DBAPIError as e:
                if len(rows) > 1:
                    # one row refused (its id there already, a value too long): the others
                    # are still written, one by one
                    await asyncio.to_thread(self._insert_each, rows, retried)
                    return
                if retried and isinstance(e, IntegrityError):
                    return  # the earlier attempt was written; only its answer was lost
                raise

    def _insert(self, rows: list[dict]) -> None:
        """One transaction on the driver's own connection (from the engine's pool): SQLAlchemy's
        Connection would cost as much CPU again; its exceptions are raised all the same."""
        dialect, params = self.engine.dialect, [self._to_params(row) for row in rows]
        try:
            conn = self.engine.raw_connection()
        except dialect.loaded_dbapi.Error as e:  # the database is away: retried by record_many
            raise DBAPIError.instance(None, None, e, dialect.loaded_dbapi.Error,
                                      dialect=dialect) from e
        cursor = None
        try:
            cursor = conn.cursor()
            cursor.executemany(self._insert_sql, params)
            cursor.close()
            conn.commit()
        except dialect.loaded_dbapi.Error as e:
            gone = dialect.is_disconnect(e, conn.dbapi_connection, cursor)
            with contextlib.suppress(Exception):
                conn.invalidate() if gone else conn.rollback()
            raise DBAPIError.instance(self._insert_sql, params, e, dialect.loaded_dbapi.Error,
                                      connection_invalidated=gone, dialect=dialect) from e
        finally:
            conn.close()

    def insert_missing(self, records: list[RequestRecord]) -> int:
        """Write those of ``records`` whose id is not in the ledger yet, in one transaction (at
        the gateway's start, before any request: nothing else writes meanwhile)."""
        present = self.ids_present([rec.id for rec in records])
        missing = [dict(rec.__dict__) for rec in records if rec.id not in present]
        if missing:
            self._insert(missing)
        return len(missing)

    def ids_present(self, ids: list[str]) -> set[str]:
        """Which of these request ids have their row."""
        query = select(RequestRow.id).where(RequestRow.id.in_(ids))
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def _insert_each(self, rows: list[dict], retried: bool) -> None:
        for row in rows:
            try:
                self._insert([row])
            except IntegrityError:
                if not retried:  # after a retry: written by the attempt whose answer was lost
                    log.error("ledger row %s refused: its id is already in the ledger", row["id"])
            except DBAPIError as e:
                log.error("ledger row %s refused by the database: %s", row["id"], type(e).__name__)

    async def tokens_since(self, user: str, since: datetime) -> int:
        return await asyncio.to_thread(self._tokens_since, user, since)

    def _tokens_since(self, user: str, since: datetime) -> int:
        total = func.coalesce(func.sum(RequestRow.prompt_tokens + RequestRow.completion_tokens), 0)
        query = select(total).where(RequestRow.user == user, RequestRow.started_at >= since)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def recent_answer_lengths(self, limit: int = 1000) -> dict[str, list[int]]:
        """The completion tokens of the last ``limit`` complete answers, per model, oldest
        first: where the wait estimate's typical answer lengths start after a restart."""
        query = (select(RequestRow.model, RequestRow.completion_tokens)
                 .where(RequestRow.outcome == "ok", RequestRow.completion_tokens > 0,
                        RequestRow.model.is_not(None))
                 .order_by(RequestRow.started_at.desc()).limit(limit))
        lengths: dict[str, list[int]] = {}
        with self.engine.connect() as conn:
            for model, tokens in conn.execute(query).all():
                lengths.setdefault(model, []).append(tokens)
        return {model: recent[::-1] for model, recent in lengths.items()}

    def close(self) -> None:
        self.engine.dispose()
