"""A caller's view of the gateway in tests: accounts with tokens, requests, the ledger."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import sqlalchemy

from tests.support.fake_backend import MODEL, FakeBackend
from tests.support.stack import AUDIT_LOG, rows_of_audited_requests

COMMENT = re.compile(r"^: queue position=(\d+) eta_s=(-?\d+)(?: more_than_s=(\d+))?$")


def new_user(gw, *groups: str) -> str:
    """A fresh athlete (so tests do not share budgets) and a token with the LLM scope."""
    name = f"u{uuid.uuid4().hex[:8]}"
    assert gw.admin.api("POST", f"/users/{name}").status_code == 201
    for group in ("athletes", *groups):
        gw.admin.api("POST", f"/groups/{group}")  # 201, or 409 when it exists
        assert gw.admin.api("POST", f"/groups/{group}/users",
                            json={"users": [name]}).status_code == 200
    return gw.admin.new_token(name)


def ledger(gw, token_user: str | None = None) -> list[dict]:
    """The ledger's rows (of one user), oldest first, once every audited request has its row."""
    def read() -> list[dict]:
        engine = sqlalchemy.create_engine(gw.db_url)
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sqlalchemy.text(
                "SELECT * FROM llm_requests ORDER BY started_at"))]
        engine.dispose()
        return rows

    audit_log = gw.settings.audit_log_path if hasattr(gw, "settings") else gw.data_dir / AUDIT_LOG
    rows = rows_of_audited_requests(read, audit_log)
    return [r for r in rows if token_user is None or r["user"] == token_user]


def user_of(gw, token: str) -> str:
    return httpx.get(f"{gw.url}/hub/api/user", headers={"Authorization": f"token {token}"}
                     ).json()["name"]


def body(text: str, stream: bool = False, model: str = MODEL, **extra) -> dict:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}],
            **extra}


async def post(gw, token: str, payload, timeout: float = 60,
               endpoint: str = "chat/completions") -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(f"{gw.gateway}/v1/{endpoint}", json=payload,
                                 headers={"Authorization": f"Bearer {token}"})


async def stream(gw, token: str, payload: dict, events: list, stop_after_comments: int = 0,
                 stop_after_data: int = 0):
    """Read a streaming answer, keeping (time, line) of every comment and data line."""
    async with httpx.AsyncClient(timeout=60) as client, client.stream(
        "POST", f"{gw.gateway}/v1/chat/completions", json={**payload, "stream": True},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                events.append((time.monotonic(), line))
            if stop_after_comments and sum(1 for _, e in events if e.startswith(":")) >= \
                    stop_after_comments:
                return
            if stop_after_data and sum(1 for _, e in events if e.startswith("data:")) >= \
                    stop_after_data:
                return


async def until_running(backend: FakeBackend, count: int = 1):
    while backend.active < count:
        await asyncio.sleep(0.02)


def queue_of(gw, token: str) -> dict:
    return httpx.get(f"{gw.gateway}/queue", headers={"Authorization": f"Bearer {token}"}).json()


def wait_for(predicate, timeout: float = 30, every: float = 0.1):
    """Poll until ``predicate()`` is truthy; its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)
