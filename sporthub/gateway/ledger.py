"""The usage ledger: one row per gateway request, written exactly once whatever the outcome.

SQLite by default, PostgreSQL by URL; the schema is managed with Alembic (``migrations/``).
Budgets are computed from these rows, so they survive a gateway restart.
"""

from __future__ import annotations

import asyncio
import os
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
    insert,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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


class Ledger:
    def __init__(self, url: str):
        sqlite = url.startswith("sqlite")
        # a server database may drop idle connections; a file cannot
        self.engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {},
                                    pool_pre_ping=not sqlite)

    async def record(self, rec: RequestRecord) -> None:
        row = {k: v for k, v in rec.__dict__.items()}
        await asyncio.to_thread(self._insert, row)

    def _insert(self, row: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(RequestRow), row)

    async def tokens_since(self, user: str, since: datetime) -> int:
        return await asyncio.to_thread(self._tokens_since, user, since)

    def _tokens_since(self, user: str, since: datetime) -> int:
        total = func.coalesce(func.sum(RequestRow.prompt_tokens + RequestRow.completion_tokens), 0)
        query = select(total).where(RequestRow.user == user, RequestRow.started_at >= since)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        self.engine.dispose()
