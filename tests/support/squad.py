"""What the squad's tests share, in every profile: the service's start, what it stores (its
SQLite database and data directory, looked at directly), the Coach's ``/share`` and waiting."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import psycopg

from tests.e2e.test_walking_skeleton import COACH, chat


def wait_for_squad(stack, timeout: float = 60) -> None:
    """The hub starts its services with itself; the squad's migrations take a moment more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{stack.url}/services/squad/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the squad service did not come up:\n{stack.log()[-3000:]}")


def stored_rows(stack, table: str, athlete: str) -> int:
    """Rows of ``athlete`` in the squad's ``table``: in SPORTHUB_DB_URL's PostgreSQL database
    when the stack has one, else in its SQLite file."""
    url = stack.env.get("SPORTHUB_DB_URL")
    if url:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as db:
            return db.execute(f"SELECT count(*) FROM {table} WHERE athlete = %s",
                              (athlete,)).fetchone()[0]
    with sqlite3.connect(stack.data_dir / "squad.sqlite") as db:
        return db.execute(f"SELECT count(*) FROM {table} WHERE athlete = ?",
                          (athlete,)).fetchone()[0]


def stored_files(stack) -> list[str]:
    root = stack.data_dir / "squad"
    return sorted(p.name for p in root.rglob("*") if p.is_file() and ".staging" not in p.parts)


def say(stack, user: str, token: str, text: str, chat_file: str = "share.chat") -> str:
    """The Coach's answer to ``text`` (its own commands: ``/share`` needs no model)."""
    replies = asyncio.run(chat(stack, user, token, text, persona=COACH, chat_file=chat_file))
    return replies[-1]["body"]


def until(check, timeout: float = 60, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")
