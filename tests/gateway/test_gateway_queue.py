"""The gateway's queue, budgets and ledger, on a real hub, in front of a one-slot backend.

The whole module runs twice: with the ledger in SQLite and in the real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psutil
import psycopg
import pytest
import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_backend import KEY, MODEL, TIMED_MODEL, FakeBackend
from tests.support.gateway_client import (
    COMMENT,
    body,
    ledger,
    new_user,
    post,
    queue_of,
    stream,
    until_running,
    user_of,
)
from tests.support.stack import HubClient, make_stack

pytestmark = pytest.mark.stack

DAILY_TOKENS = 200
# a request reserves its prompt and max_tokens of the budget while it waits and runs: the
# queueing tests ask for short answers so that one person can have several in line
SHORT = {"max_tokens": 10}


@pytest.fixture(scope="module")
def backend():
    with FakeBackend() as fake:
        yield fake


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gw(request, backend, tmp_path_factory):
    """A stack whose only backend is the fake one, with a single slot."""
    db_url, dropdb = None, None
    if request.param == "postgresql":
        name = f"sporthub_test_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"

        def dropdb():
            with psycopg.connect("host=127.0.0.1 dbname=test user=postgres",
                                 autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    backends = (f'[{{"name": "fake", "url": "{backend.url}", "api_key": "{KEY}", '
                f'"models": ["{MODEL}", "{TIMED_MODEL}"], "max_concurrency": 1}}]')
    settings = {"llm_backends": backends, "gateway_auth_cache_s": "1", "llm_stall_timeout_s": "2",
                "llm_tokens_per_day": str(DAILY_TOKENS), "llm_max_tokens": "500",
                "llm_groups": '{"priority": {"llm_priority": 10}}'}
    if db_url:
        settings["db_url"] = db_url
    stack = make_stack(tmp_path_factory.mktemp(f"gw-{request.param}"), **settings)
    stack.start()
    stack.admin = HubClient.admin(stack)
    stack.db_url = db_url or f"sqlite:///{stack.data_dir / 'gateway.sqlite'}"
    yield stack
    stack.descendants = stack.processes()
    stack.stop()
    if dropdb:
        dropdb()


async def until_waiting(gw, token: str, count: int = 1):
    """Until ``count`` of this person's requests are in the gateway's queue."""
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            queue = (await client.get(f"{gw.gateway}/queue",
                                      headers={"Authorization": f"Bearer {token}"})).json()
            if sum(r.get("state") != "running" for r in queue.get("requests", [])) >= count:
                return
            await asyncio.sleep(0.05)


def test_the_priority_class_goes_first(gw, backend):
    blocker, normal, vip = new_user(gw), new_user(gw), new_user(gw, "priority")
    backend.hold()

    async def scenario():
        first = asyncio.create_task(post(gw, blocker, body("hold tokens=2 tag=block")))
        await until_running(backend)
        late = asyncio.create_task(post(gw, normal, body("tokens=1 tag=normal")))
        await until_waiting(gw, normal)
        urgent = asyncio.create_task(post(gw, vip, body("tokens=1 tag=vip")))
        await until_waiting(gw, vip)
        backend.release()
        return await asyncio.gather(first, late, urgent)

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200, 200, 200]
    tags = [s["tag"] for s in backend.served if s.get("tag") in ("block", "normal", "vip")][-3:]
    assert tags == ["block", "vip", "normal"]
    assert backend.max_active == 1


def test_a_flooding_user_does_not_starve_another(gw, backend):
    blocker, flooder, other = new_user(gw), new_user(gw), new_user(gw)
    backend.hold()

    async def scenario():
        tasks = [asyncio.create_task(post(gw, blocker, body("hold tokens=2 tag=b")))]
        await until_running(backend)
        # each one in the queue before the next is sent, so they arrive in the order sent
        for i in range(4):
            tasks.append(asyncio.create_task(post(gw, flooder, body(f"tokens=2 tag=f{i}", **SHORT))))
            await until_waiting(gw, flooder, i + 1)
        tasks.append(asyncio.create_task(post(gw, other, body("tokens=2 tag=other"))))
        await until_waiting(gw, other)
        backend.release()
        return await asyncio.gather(*tasks)

    responses = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in responses)
    tags = [s["tag"] for s in backend.served][-6:]
    # round-robin: the other user goes right after the flooder's first request, not after all 4
    assert tags == ["b", "f0", "other", "f1", "f2", "f3"]


def test_position_comments_decrease_and_match_the_queue_endpoint(gw, backend):
    blocker, ahead, waiter = new_user(gw), new_user(gw), new_user(gw)
    events: list = []
    seen_in_queue = []

    async def scenario():
        tasks = [asyncio.create_task(post(gw, blocker, body("tokens=10 delay=0.15")))]
        await until_running(backend)
        tasks.append(asyncio.create_task(post(gw, ahead, body("tokens=10 delay=0.1"))))
        await asyncio.sleep(0.2)
        tasks.append(asyncio.create_task(stream(gw, waiter, body("tokens=2"), events)))
        while not events:
            await asyncio.sleep(0.05)
        seen_in_queue.append(await asyncio.to_thread(queue_of, gw, waiter))
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    comments = [(t, COMMENT.match(line)) for t, line in events if line.startswith(":")]
    assert comments and all(m for _, m in comments), events
    positions = [int(m.group(1)) for _, m in comments]
    assert positions[0] == 2 and positions[-1] == 1
    assert positions == sorted(positions, reverse=True)
    # at least one comment every 2 s while waiting
    times = [t for t, _ in comments]
    assert all(b - a <= 2.0 for a, b in itertools.pairwise(times))
    data = [line for _, line in events if line.startswith("data:")]
    assert data[-1] == "data: [DONE]"
    mine = seen_in_queue[0]["requests"]
    assert len(mine) == 1 and mine[0]["state"] == "waiting" and mine[0]["position"] == 2
    assert seen_in_queue[0]["budget"]["limit_tokens"] == DAILY_TOKENS


def test_the_eta_is_within_a_quarter_of_the_real_wait(gw, backend):
    users = [new_user(gw) for _ in range(4)]
    request = body("tokens=10 delay=0.2", model=TIMED_MODEL)  # 2 s a request

    async def scenario():
        await post(gw, users[0], request)  # the gateway measures one request of this model
        tasks = [asyncio.create_task(post(gw, users[0], request))]
        await until_running(backend)
        logs = [[] for _ in users[1:]]
        for events, user in zip(logs, users[1:], strict=True):
            tasks.append(asyncio.create_task(stream(gw, user, request, events)))
            await asyncio.sleep(0.05)
        await asyncio.gather(*tasks)
        return logs

    for events in asyncio.run(scenario()):
        first_at, first = next((t, COMMENT.match(line)) for t, line in events
                               if line.startswith(":"))
        started = next(t for t, line in events if line.startswith("data:")) - 0.2
        real_wait = started - first_at
        eta = int(first.group(2))
        assert abs(eta - real_wait) <= 0.25 * real_wait + 0.5, (eta, real_wait)


def scrape(gw) -> dict[tuple[str, str], float]:
    """The gateway's metrics as an admin scrapes them: {(sample name, direction): value}."""
    text = httpx.get(f"{gw.gateway}/metrics", timeout=30,
                     headers={"Authorization": f"Bearer {gw.admin.token}"}).text
    return {(sample.name, sample.labels.get("direction", "")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_the_eta_error_metric_holds_each_queued_requests_wait_minus_its_eta(gw, backend):
    blocker, *waiters = [new_user(gw) for _ in range(4)]
    before = scrape(gw)

    backend.hold()

    async def scenario():
        # the one slot stays busy until the three others are in the queue behind it
        first = asyncio.create_task(post(gw, blocker, body("hold tokens=30 delay=0.1 tag=eta")))
        await until_running(backend)
        logs = [[] for _ in waiters]
        tasks = [asyncio.create_task(stream(gw, user, body("tokens=5 delay=0.1 tag=eta"), events))
                 for events, user in zip(logs, waiters, strict=True)]
        for user in waiters:
            await until_waiting(gw, user)
        backend.release()
        await asyncio.gather(first, *tasks)
        return logs

    logs = asyncio.run(scenario())
    after = scrape(gw)

    def delta(name: str, direction: str = "") -> float:
        return after[(name, direction)] - before.get((name, direction), 0.0)

    error = "sporthub_llm_queue_eta_error_seconds"
    # the ETA each was shown first: the one given on joining, in whole seconds
    told = [int(next(COMMENT.match(line) for _, line in events if line.startswith(":")).group(2))
            for events in logs]
    # the three that queued count once each; the blocker, served at once, not at all
    assert delta(f"{error}_count", "late") + delta(f"{error}_count", "early") == len(waiters)
    # real waits (the blocker's is ~0), from the same clock as the error
    waits = delta("sporthub_llm_queue_wait_seconds_sum")
    assert delta("sporthub_llm_queue_wait_seconds_count") == len(waiters) + 1
    signed = delta(f"{error}_sum", "late") - delta(f"{error}_sum", "early")
    # sum(wait - eta given) = sum(wait) - sum(eta shown), within the shown ETA's rounding
    assert abs(signed - (waits - sum(told))) <= 0.5 * len(waiters) + 0.5, (signed, waits, told)
    unsigned = delta(f"{error}_sum", "late") + delta(f"{error}_sum", "early")
    assert unsigned >= abs(signed)


def test_leaving_the_queue_frees_the_place_at_once(gw, backend):
    blocker, leaver, impatient, stayer = new_user(gw), new_user(gw), new_user(gw), new_user(gw)
    events: list = []

    async def scenario():
        first = asyncio.create_task(post(gw, blocker, body("tokens=40 delay=0.1")))
        await until_running(backend)
        # a streaming caller hangs up after its first position comment
        await stream(gw, leaver, body("tokens=1 tag=leaver"), events, stop_after_comments=1)
        # a plain caller gives up (client timeout) while queued
        with pytest.raises(httpx.ReadTimeout):
            await post(gw, impatient, body("tokens=1 tag=impatient"), timeout=0.5)
        await asyncio.sleep(0.3)
        late: list = []
        task = asyncio.create_task(stream(gw, stayer, body("tokens=1 tag=stayer"), late))
        while not late:
            await asyncio.sleep(0.05)
        assert COMMENT.match(late[0][1]).group(1) == "1"  # nobody left in front
        assert queue_of(gw, leaver)["requests"] == []
        assert queue_of(gw, impatient)["requests"] == []
        await asyncio.gather(first, task)

    asyncio.run(scenario())
    assert not [s for s in backend.served if s.get("tag") in ("leaver", "impatient")]
    for token in (leaver, impatient):
        rows = ledger(gw, user_of(gw, token))
        assert len(rows) == 1 and rows[0]["outcome"] == "cancelled"
        assert rows[0]["prompt_tokens"] == rows[0]["completion_tokens"] == 0


def test_too_many_queued_requests_get_429(gw, backend):
    blocker, flooder = new_user(gw), new_user(gw)

    async def scenario():
        # long enough that the four are still waiting when the fifth arrives, even when slow
        first = asyncio.create_task(post(gw, blocker, body("tokens=40 delay=0.1")))
        await until_running(backend)
        waiting = [asyncio.create_task(post(gw, flooder, body("tokens=1", **SHORT)))
                   for _ in range(4)]
        # all four in line (not a fixed sleep: on a loaded machine admission takes a while)
        while len((await asyncio.to_thread(queue_of, gw, flooder))["requests"]) < 4:
            await asyncio.sleep(0.05)
        refused = await post(gw, flooder, body("tokens=1", **SHORT))
        return refused, await asyncio.gather(first, *waiting)

    refused, served = asyncio.run(scenario())
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_queued"
    assert all(r.status_code == 200 for r in served)


def test_budget_exhausted_gives_429_with_the_reset_time(gw, backend):
    token = new_user(gw)
    for _ in range(2):  # 2 x (2 prompt + 100 completion) = 204 >= 200
        assert asyncio.run(post(gw, token, body("tokens=100 delay=0"))).status_code == 200
    used = queue_of(gw, token)["budget"]["used_tokens"]
    assert used == 204
    refused = asyncio.run(post(gw, token, body("tokens=1")))
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "budget_exhausted"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert f"{tomorrow}T00:00:00+00:00" in error["message"]
    to_midnight = (datetime.combine(datetime.now(UTC).date() + timedelta(days=1),
                                    datetime.min.time(), UTC) - datetime.now(UTC)).total_seconds()
    assert abs(int(refused.headers["retry-after"]) - to_midnight) < 5
    assert queue_of(gw, token)["budget"]["resets_at"] == f"{tomorrow}T00:00:00Z"
    rows = ledger(gw, user_of(gw, token))
    assert [r["outcome"] for r in rows] == ["ok", "ok", "budget_exhausted"]


def test_editing_a_group_property_in_the_hub_changes_the_budget(gw, backend):
    group = f"testers{uuid.uuid4().hex[:4]}"
    token = new_user(gw, group)
    assert gw.admin.api("PUT", f"/groups/{group}/properties",
                        json={"llm_tokens_per_day": 1000}).status_code == 200
    time.sleep(1.2)
    for _ in range(3):  # 306 tokens: past the 200 default, inside the group's 1000
        assert asyncio.run(post(gw, token, body("tokens=100 delay=0"))).status_code == 200
    assert queue_of(gw, token)["budget"]["limit_tokens"] == 1000
    assert gw.admin.api("PUT", f"/groups/{group}/properties",
                        json={"llm_tokens_per_day": 250}).status_code == 200
    time.sleep(1.2)
    refused = asyncio.run(post(gw, token, body("tokens=1")))
    assert refused.status_code == 429, refused.text


def test_limits_on_a_request_are_clear_400s(gw):
    token = new_user(gw)
    for extra, code in (({"n": 2}, "n_not_supported"), ({"max_tokens": 10_000},
                        "max_tokens_too_large"), ({"max_tokens": -1}, "invalid_max_tokens")):
        response = asyncio.run(post(gw, token, body("tokens=1", **extra)))
        assert response.status_code == 400 and response.json()["error"]["code"] == code
    huge = asyncio.run(post(gw, token, body("word " * 20_000)))
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "prompt_too_large"
    # refused input is one row each (exactly one per request), and costs nothing
    rows = ledger(gw, user_of(gw, token))
    assert [(r["outcome"], r["status"]) for r in rows] == [
        ("n_not_supported", 400), ("max_tokens_too_large", 400), ("invalid_max_tokens", 400),
        ("prompt_too_large", 413)]
    assert all(r["prompt_tokens"] == r["completion_tokens"] == 0 for r in rows)


def test_ledger_rows_match_the_backend_usage_for_every_outcome(gw, backend):
    token = new_user(gw)
    name = user_of(gw, token)
    assert asyncio.run(post(gw, token, body("tokens=7 tag=plain"))).status_code == 200
    events: list = []
    asyncio.run(stream(gw, token, body("tokens=5 tag=streamed"), events))
    failed = asyncio.run(post(gw, token, body("fail tokens=3")))
    assert failed.status_code == 502 and "backend exploded" in failed.json()["error"]["message"]
    broken: list = []
    asyncio.run(stream(gw, token, body("break tokens=8"), broken))
    assert "upstream_broken" in broken[-2][1]

    async def hang_up():
        got: list = []
        async with httpx.AsyncClient(timeout=30) as client, client.stream(
                "POST", f"{gw.gateway}/v1/chat/completions",
                json=body("tokens=40 delay=0.05", stream=True),
                headers={"Authorization": f"Bearer {token}"}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    got.append(line)
                if len(got) == 3:
                    return len(got)

    delivered = asyncio.run(hang_up())
    time.sleep(0.5)
    rows = ledger(gw, name)
    assert [(r["outcome"], r["status"]) for r in rows] == [
        ("ok", 200), ("ok", 200), ("upstream_error", 502), ("upstream_broken", 502),
        ("cancelled", 499)]
    plain, streamed, error, cut, cancelled = rows
    assert (plain["prompt_tokens"], plain["completion_tokens"]) == (2, 7)
    assert (streamed["prompt_tokens"], streamed["completion_tokens"]) == (2, 5)
    assert (error["prompt_tokens"], error["completion_tokens"]) == (0, 0)
    assert (cut["prompt_tokens"], cut["completion_tokens"]) == (2, 4)
    assert cancelled["prompt_tokens"] == 2
    assert delivered <= cancelled["completion_tokens"] <= delivered + 3
    assert all(r["backend"] == "fake" and r["duration_ms"] > 0 for r in rows)
    assert len({r["id"] for r in ledger(gw)}) == len(ledger(gw))
    assert backend.active == 0


def test_forbidden_backend_paths_are_unreachable(gw, backend):
    token = new_user(gw)
    for path in ("/invocations", "/pause", "/v1/../invocations", "/v1/invocations"):
        response = httpx.post(f"{gw.gateway}{path}", json={},
                              headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 404, path
    assert not [s for s in backend.served if "path" in s]


def test_metrics_are_for_admins(gw):
    token = new_user(gw)
    assert httpx.get(f"{gw.gateway}/metrics",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 403
    text = httpx.get(f"{gw.gateway}/metrics",
                     headers={"Authorization": f"Bearer {gw.admin.token}"}).text
    for name in ("sporthub_llm_queue_wait_seconds_bucket", "sporthub_llm_running{backend=\"fake\"}",
                 "sporthub_llm_user_tokens_total", "sporthub_llm_errors_total",
                 "sporthub_llm_time_to_first_token_seconds_count",
                 "sporthub_llm_backend_up{backend=\"fake\"} 1.0"):
        assert name in text, name


def test_audit_log_has_a_line_per_request_and_no_secrets(gw):
    text = (gw.data_dir / "gateway-audit.jsonl").read_text()
    assert text.count("\n") == len(ledger(gw))
    assert KEY not in text and gw.admin.token not in text and "tokens=" not in text


def test_a_stalled_stream_frees_its_slot(gw, backend):
    token = new_user(gw)
    events: list = []
    asyncio.run(stream(gw, token, body("tokens=2 delay=3 tag=stall"), events))
    assert '"code": "stalled"' in events[-2][1] and events[-1][1] == "data: [DONE]"
    rows = ledger(gw, user_of(gw, token))
    assert [(r["outcome"], r["status"]) for r in rows] == [("stalled", 502)]
    # the slot is free again: the next request is served, not queued behind the stalled one
    answer = asyncio.run(post(gw, token, body("tokens=1 tag=after-stall")))
    assert answer.status_code == 200
    assert ledger(gw, user_of(gw, token))[-1]["queued_ms"] < 1000


@contextlib.contextmanager
def ledger_locked(gw):
    """Nobody writes the ledger meanwhile (readers still read): the gateway's rows wait."""
    engine = sqlalchemy.create_engine(gw.db_url)
    with engine.connect() as conn:
        if gw.db_url.startswith("sqlite"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("LOCK TABLE llm_requests IN EXCLUSIVE MODE")
        yield
        conn.rollback()
    engine.dispose()


def rows_now(gw, user: str) -> list[dict]:
    """The user's rows in the ledger at this moment (without waiting for the audited ones)."""
    engine = sqlalchemy.create_engine(gw.db_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            sqlalchemy.text("SELECT * FROM llm_requests WHERE \"user\" = :u"), {"u": user})]
    engine.dispose()
    return rows


def kill_the_gateway(gw) -> None:
    gateway = next(p for p in psutil.Process(gw.proc.pid).children(recursive=True)
                   if "sporthub.gateway" in " ".join(p.cmdline()))
    gateway.kill()  # SIGKILL: nothing of its own shutdown runs
    # not our child: it stays a zombie until the hub reaps it
    while gateway.is_running() and gateway.status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.1)


def until_the_hub_restarted_the_gateway(gw) -> None:
    deadline = time.monotonic() + 90  # the hub restarts a managed service that dies (it polls
    while time.monotonic() < deadline:  # every 30 s)
        try:
            if httpx.get(f"{gw.gateway}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError("the hub did not restart the gateway within 90 s")


def test_a_gateway_killed_before_writing_its_rows_gets_them_back(gw, backend):
    """Answers end before their rows are committed (rows go in batches); a gateway killed with
    rows unwritten rebuilds them from the audit log when it starts again: each request has its
    row exactly once, with the values it had, and the budget counts them."""
    token = new_user(gw)
    name = user_of(gw, token)
    with ledger_locked(gw):
        for _ in range(2):
            assert asyncio.run(post(gw, token, body("tokens=100 delay=0"))).status_code == 200
        kill_the_gateway(gw)
    assert rows_now(gw, name) == []  # the batch was not written: the kill came first
    until_the_hub_restarted_the_gateway(gw)
    audited = [json.loads(line) for line in
               (gw.data_dir / "gateway-audit.jsonl").read_text().splitlines()]
    audited = {e["request_id"]: e for e in audited if e["user"] == name}
    rows = rows_now(gw, name)
    assert len(audited) == 2 and sorted(r["id"] for r in rows) == sorted(audited)
    for row in rows:
        line = audited[row["id"]]
        assert (row["completion_tokens"], row["prompt_tokens"], row["outcome"], row["status"],
                row["duration_ms"], row["stream"]) == (
            100, line["prompt_tokens"], "ok", 200, line["duration_ms"], False)
    refused = asyncio.run(post(gw, token, body("tokens=1")))
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exhausted"


def test_the_coach_hears_its_place_in_line(gw, backend):
    from sporthub_coach.gateway import Place, stream_chat

    blocker, athlete = new_user(gw), new_user(gw)
    places: list[Place] = []

    async def scenario():
        first = asyncio.create_task(post(gw, blocker, body("tokens=20 delay=0.1")))
        await until_running(backend)
        answer = [text async for text in stream_chat(
            [{"role": "user", "content": "tokens=3"}], places.append,
            base_url=f"{gw.gateway}/v1", api_key=athlete, model=MODEL)]
        await first
        return answer

    assert "".join(asyncio.run(scenario())) == "tok tok tok "
    assert places and places[0].position == 1 and places[0].eta_s >= 0
    assert places[0].describe().startswith("1st in line, about ")
