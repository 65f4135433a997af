"""Faults: the gateway keeps its promises (one row per request, no slot kept, errors that say
what happened) when the pieces around it fail. Real hub, real gateway process, a fake backend
process that is killed, a PostgreSQL of the test's own that is restarted, a hub that goes away."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import httpx
import psutil
import pytest

from tests.suites.faults import BackendProcess, CuttableProxy, PostgresServer
from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.gateway_client import (
    ledger,
    new_user,
    post,
    queue_of,
    stream,
    user_of,
    wait_for,
)
from tests.support.stack import HubClient, make_stack

pytestmark = [pytest.mark.suites, pytest.mark.stack]


def health(gw) -> dict:
    try:
        return httpx.get(f"{gw.gateway}/health", timeout=3).json()
    except (httpx.HTTPError, ValueError):
        return {}


def running(gw) -> float:
    text = httpx.get(f"{gw.gateway}/metrics",
                     headers={"Authorization": f"Bearer {gw.admin.token}"}).text
    line = next(x for x in text.splitlines() if x.startswith('sporthub_llm_running{'))
    return float(line.rsplit(" ", 1)[1])


def gateway_processes(gw) -> list[psutil.Process]:
    found = []
    for p in psutil.Process(gw.proc.pid).children(recursive=True):
        try:
            if "sporthub.gateway" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return found


def start_stack(tmp, backend_url: str, **settings):
    backends = json.dumps([{"name": "fake", "url": backend_url, "api_key": KEY,
                            "models": [MODEL], "max_concurrency": 1}])
    stack = make_stack(tmp, llm_backends=backends, llm_health_interval_s="1",
                       gateway_auth_cache_s="1", llm_stall_timeout_s="5", **settings)
    stack.start()
    stack.admin = HubClient.admin(stack)
    return stack


def stop_stack(stack) -> None:
    stack.descendants = stack.processes()
    stack.stop()


@pytest.fixture(scope="module")
def backend():
    process = BackendProcess().start()
    yield process
    if process.proc.poll() is None:
        process.kill()


@pytest.fixture(scope="module")
def gw(backend, tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("faults"), backend.url)
    stack.db_url = f"sqlite:///{stack.data_dir / 'gateway.sqlite'}"
    yield stack
    stop_stack(stack)


def backend_up(gw, backend) -> None:
    if backend.proc.poll() is not None:
        backend.start()
    assert wait_for(lambda: health(gw).get("backends", {}).get("fake") == "up", 30)


def test_a_backend_killed_mid_stream(gw, backend):
    backend_up(gw, backend)
    token = new_user(gw)
    events: list = []

    async def scenario():
        task = asyncio.create_task(stream(gw, token, {
            "model": MODEL, "messages": [{"role": "user", "content": "tokens=200 delay=0.05"}]},
            events))
        while sum(1 for _, e in events if e.startswith("data:")) < 5:
            await asyncio.sleep(0.02)
        backend.kill()
        await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    data = [line for _, line in events if line.startswith("data:")]
    assert '"code": "upstream_broken"' in data[-2] and data[-1] == "data: [DONE]"
    (row,) = ledger(gw, user_of(gw, token))
    assert row["outcome"] == "upstream_broken" and row["status"] == 502
    # the partial answer is billed: the prompt and what was delivered
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] >= 5
    assert running(gw) == 0


def test_a_backend_down_at_admission_is_503_and_the_queue_recovers(gw, backend):
    if backend.proc.poll() is None:
        backend.kill()
    assert wait_for(lambda: health(gw).get("backends", {}).get("fake") == "down", 30)
    token = new_user(gw)
    refused = asyncio.run(post(gw, token, {"model": MODEL, "messages": [
        {"role": "user", "content": "tokens=1"}]}))
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "backend_down"
    assert refused.headers["retry-after"]
    assert queue_of(gw, token)["requests"] == []

    backend_up(gw, backend)
    holder, waiter = new_user(gw), new_user(gw)

    async def scenario():
        hold = asyncio.create_task(post(gw, holder, {"model": MODEL, "messages": [
            {"role": "user", "content": "tokens=400 delay=0.05"}]}))
        while running(gw) < 1:
            await asyncio.sleep(0.05)
        queued = asyncio.create_task(post(gw, waiter, {"model": MODEL, "messages": [
            {"role": "user", "content": "tokens=1"}]}))
        await asyncio.sleep(0.5)
        backend.kill()  # the holder breaks; the waiter cannot be served by anyone now
        started = time.monotonic()
        results = await asyncio.gather(hold, queued)
        return results, time.monotonic() - started

    (held, queued), took = asyncio.run(scenario())
    assert held.status_code in (502, 503)
    assert queued.status_code == 503 and queued.json()["error"]["code"] in (
        "backend_down", "upstream_unavailable")
    assert took < 30  # told at once, not at the 300 s queue timeout
    backend_up(gw, backend)
    answer = asyncio.run(post(gw, token, {"model": MODEL, "messages": [
        {"role": "user", "content": "tokens=2"}]}))
    assert answer.status_code == 200 and running(gw) == 0


def test_client_gone_while_queued_and_while_streaming(gw, backend):
    backend_up(gw, backend)
    holder, leaver, quitter = new_user(gw), new_user(gw), new_user(gw)
    message = {"model": MODEL, "messages": [{"role": "user", "content": "tokens=60 delay=0.05"}]}

    async def scenario():
        hold = asyncio.create_task(post(gw, holder, message))
        while running(gw) < 1:
            await asyncio.sleep(0.05)
        await stream(gw, leaver, message, [], stop_after_comments=1)  # leaves while queued
        await hold
        await stream(gw, quitter, message, [], stop_after_data=5)  # leaves mid-answer

    asyncio.run(scenario())
    assert wait_for(lambda: running(gw) == 0, 10)
    (left,) = ledger(gw, user_of(gw, leaver))
    assert left["outcome"] == "cancelled" and left["prompt_tokens"] == 0  # never reached it
    quit_row = wait_for(lambda: ledger(gw, user_of(gw, quitter)), 10)[0]
    assert quit_row["outcome"] == "cancelled" and quit_row["prompt_tokens"] > 0
    assert quit_row["completion_tokens"] >= 5


def test_the_gateway_restarted_with_requests_queued(gw, backend):
    backend_up(gw, backend)
    users = [new_user(gw) for _ in range(3)]
    # straight to the gateway's port: what the gateway does with its callers, without the
    # hub's proxy in between (which keeps a client's connection open after its target died)
    direct = SimpleNamespace(**vars(gw))
    direct.gateway = f"http://127.0.0.1:{gw.env['SPORTHUB_GATEWAY_PORT']}/services/llm"
    logs: list[list] = [[] for _ in users]
    message = {"model": MODEL, "messages": [{"role": "user", "content": "tokens=200 delay=0.05"}]}
    (gateway,) = gateway_processes(gw)

    async def scenario():
        tasks = [asyncio.create_task(stream(direct, users[0], message, logs[0]))]
        while running(gw) < 1:
            await asyncio.sleep(0.05)
        for user, log in zip(users[1:], logs[1:], strict=True):
            tasks.append(asyncio.create_task(stream(direct, user, message, log)))
        while not all(logs):
            await asyncio.sleep(0.05)
        gateway.terminate()  # SIGTERM, as the hub or a service manager sends it
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)

    asyncio.run(scenario())  # every caller's stream ended (error or cut), none hangs
    # the hub starts its managed service again: a new process, healthy
    assert wait_for(lambda: gateway.pid not in [p.pid for p in gateway_processes(gw)]
                    and health(gw).get("status") == "ok", 120, every=1)
    for user in users:
        rows = ledger(gw, user_of(gw, user))
        assert len(rows) == 1 and rows[0]["outcome"] == "cancelled", rows
        assert queue_of(gw, user)["requests"] == []
    answer = asyncio.run(post(gw, users[1], {"model": MODEL, "messages": [
        {"role": "user", "content": "tokens=2"}]}))
    assert answer.status_code == 200


# -- PostgreSQL restarted ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg():
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def thread_backend():
    with FakeBackend() as fake:
        yield fake


def test_postgresql_restarted_loses_no_row(pg, thread_backend, tmp_path):
    stack = start_stack(tmp_path, thread_backend.url, db_url=pg.url)
    stack.db_url = pg.url
    try:
        known = new_user(stack)
        ask = {"model": MODEL, "messages": [{"role": "user", "content": "tokens=3"}]}
        assert asyncio.run(post(stack, known, ask)).status_code == 200
        pg.stop()
        # someone whose usage the gateway knows is served; the row waits for the database
        during = asyncio.run(post(stack, known, ask))
        assert during.status_code == 200
        # someone new cannot be checked against the budget: a clear 503, not a 500
        stranger = new_user(stack)
        refused = asyncio.run(post(stack, stranger, ask))
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "ledger_unavailable"
        pg.start()
        rows = wait_for(lambda: len(ledger(stack, user_of(stack, known))) == 2 and
                        len(ledger(stack, user_of(stack, stranger))) == 1, 60)
        assert rows, "a row written while PostgreSQL was down was lost"
        assert asyncio.run(post(stack, stranger, ask)).status_code == 200
        assert len(ledger(stack)) == 4
    finally:
        stop_stack(stack)


# -- the hub restarted ---------------------------------------------------------------------------

def test_the_hub_gone_cached_tokens_work_until_expiry_new_ones_fail_closed(
        gw, thread_backend, tmp_path):
    from tests.support.gateway_server import InProcessGateway

    hub = CuttableProxy(int(gw.env["SPORTHUB_HUB_PORT"]))
    server = InProcessGateway(gw, gw.admin.token, thread_backend, tmp_path,
                              hub_api_url=f"http://127.0.0.1:{hub.port}/hub/api",
                              gateway_auth_cache_s=3, llm_tokens_per_day=100_000).start()
    server.admin = gw.admin
    try:
        ask = {"model": MODEL, "messages": [{"role": "user", "content": "tokens=2"}]}
        seen, unseen = new_user(gw), new_user(gw)
        assert asyncio.run(post(server, seen, ask)).status_code == 200
        hub.cut()
        assert asyncio.run(post(server, seen, ask)).status_code == 200  # cached
        refused = asyncio.run(post(server, unseen, ask))
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "hub_unavailable"
        time.sleep(3.5)  # the cache age
        expired = asyncio.run(post(server, seen, ask))
        assert expired.status_code == 503  # fails closed once the hub cannot vouch for it
        hub.restore()
        for token in (seen, unseen):
            assert asyncio.run(post(server, token, ask)).status_code == 200
        assert wait_for(server.idle, 5)
    finally:
        server.stop()
        hub.close()
