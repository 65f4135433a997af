"""Several backends: least-loaded routing, health checks, a backend that goes down is skipped."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.stack import HubClient, make_stack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    first, second = FakeBackend().start(), FakeBackend().start()
    backends = json.dumps([
        {"name": name, "url": fake.url, "api_key": KEY, "models": [MODEL], "max_concurrency": 1}
        for name, fake in (("first", first), ("second", second))
    ])
    stack = make_stack(tmp_path_factory.mktemp("two-backends"), llm_backends=backends,
                       llm_health_interval_s="1")
    stack.start()
    admin = HubClient.admin(stack)
    assert admin.api("POST", "/users/runner").status_code == 201
    assert admin.api("POST", "/groups/athletes/users", json={"users": ["runner"]}).status_code == 200
    stack.user_token = admin.new_token("runner")
    yield stack, first, second
    stack.descendants = stack.processes()
    stack.stop()
    second.stop()


async def ask(stack, text: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{stack.gateway}/v1/chat/completions",
            headers={"Authorization": f"Bearer {stack.user_token}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": text}]})


def health(stack) -> tuple[int, dict]:
    response = httpx.get(f"{stack.gateway}/health")
    return response.status_code, response.json()["backends"]


def test_requests_spread_over_the_least_loaded_backends(two):
    stack, first, second = two

    async def both():
        return await asyncio.gather(ask(stack, "tokens=10 delay=0.05 tag=x"),
                                    ask(stack, "tokens=10 delay=0.05 tag=y"))

    assert [r.status_code for r in asyncio.run(both())] == [200, 200]
    # one slot each: the two ran side by side, one on each backend
    assert len(first.served) == 1 and len(second.served) == 1
    backends = {row["backend"] for row in stack.ledger_rows()}
    assert backends == {"first", "second"}


def test_a_backend_that_goes_down_is_skipped_and_reported(two):
    stack, first, second = two
    first.stop()
    deadline = time.monotonic() + 10
    while health(stack)[1]["first"] != "down" and time.monotonic() < deadline:
        time.sleep(0.2)
    status, backends = health(stack)
    assert status == 200 and backends == {"first": "down", "second": "up"}
    before = len(second.served)
    for _ in range(3):
        assert asyncio.run(ask(stack, "tokens=1")).status_code == 200
    assert len(second.served) == before + 3

    second.stop()
    while health(stack)[1]["second"] != "down" and time.monotonic() < deadline + 10:
        time.sleep(0.2)
    assert health(stack)[0] == 503
    refused = asyncio.run(ask(stack, "tokens=1"))
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "backend_down"
    assert refused.headers["retry-after"]
