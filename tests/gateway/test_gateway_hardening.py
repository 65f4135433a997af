"""Issue 12's gateway defects, each tried the way a hostile user of the beta would, on a real
hub and gateway in front of fake backends that speak the real protocol on real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import stat
import subprocess
import time

import httpx
import pytest

from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.gateway_client import (
    COMMENT,
    body,
    ledger,
    new_user,
    post,
    queue_of,
    stream,
    user_of,
    wait_for,
)
from tests.support.stack import SPORTHUB, HubClient, make_stack

pytestmark = pytest.mark.stack

LOADER = "loader"  # the model of a backend that is still loading
DAILY_TOKENS = 200


@pytest.fixture(scope="module")
def backend():
    with FakeBackend() as fake:
        yield fake


@pytest.fixture(scope="module")
def loader():
    with FakeBackend() as fake:
        fake.loading = True
        yield fake


@pytest.fixture(scope="module")
def gw(backend, loader, tmp_path_factory):
    backends = json.dumps([
        {"name": "fake", "url": backend.url, "api_key": KEY, "models": [MODEL],
         "max_concurrency": 1},
        {"name": "loading", "url": loader.url, "api_key": KEY, "models": [LOADER]},
    ])
    stack = make_stack(tmp_path_factory.mktemp("hardening"), llm_backends=backends,
                       gateway_auth_cache_s="0", llm_stall_timeout_s="2",
                       llm_request_timeout_s="4", llm_client_write_timeout_s="2",
                       llm_tokens_per_day=str(DAILY_TOKENS), llm_max_tokens="500",
                       llm_health_interval_s="1",
                       llm_groups='{"priority": {"llm_priority": 10}}')
    stack.start()
    stack.admin = HubClient.admin(stack)
    stack.db_url = f"sqlite:///{stack.data_dir / 'gateway.sqlite'}"
    yield stack
    stack.descendants = stack.processes()
    stack.stop()


def served_since(backend: FakeBackend, count: int) -> list[dict]:
    return backend.served[count:]


def a_slot_is_free(gw, backend) -> bool:
    """The one slot serves a new request at once (nothing leaked)."""
    token = new_user(gw)
    response = asyncio.run(post(gw, token, body("tokens=1 tag=probe"), timeout=10))
    return response.status_code == 200 and ledger(gw, user_of(gw, token))[-1]["queued_ms"] < 1000


# -- 0: a group budget below the no-group default restricts --------------------------------

def test_a_group_budget_below_the_default_restricts(gw, backend):
    group = "tight"
    token = new_user(gw, group)
    assert gw.admin.api("PUT", f"/groups/{group}/properties",
                        json={"llm_tokens_per_day": 150}).status_code == 200
    assert queue_of(gw, token)["budget"]["limit_tokens"] == 150  # not the 200 default
    assert asyncio.run(post(gw, token, body("tokens=140 delay=0"))).status_code == 200
    # 142 used: more than 150 - 142 left would be needed for even the prompt
    refused = asyncio.run(post(gw, token, body("tokens=1 delay=0")))
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exhausted"


# -- 1: a malformed message cannot leak a slot ----------------------------------------------

def test_malformed_tool_calls_are_a_400_and_leak_nothing(gw, backend):
    token = new_user(gw)
    before = len(backend.served)
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": None, "tool_calls": ["x", "y"]},
                {"role": "user", "content": "tokens=1"}]
    for _ in range(3):
        response = asyncio.run(post(gw, token, {"model": MODEL, "messages": messages}))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_messages"
    assert served_since(backend, before) == []
    rows = ledger(gw, user_of(gw, token))
    assert [r["outcome"] for r in rows] == ["invalid_messages"] * 3  # one row each
    assert a_slot_is_free(gw, backend)


# -- 2: stream is a JSON boolean; a complete answer is never free -----------------------------

def test_a_non_boolean_stream_is_refused(gw, backend):
    token = new_user(gw)
    for value in ("false", "true", 1):
        response = asyncio.run(post(gw, token, body("tokens=5", stream=value)))
        assert response.status_code == 400 and response.json()["error"]["code"] == \
            "invalid_stream"


def test_an_answer_without_usage_is_still_billed(gw, backend):
    token = new_user(gw)
    assert asyncio.run(post(gw, token, body("nousage tokens=8"))).status_code == 200
    events: list = []
    asyncio.run(stream(gw, token, body("nousage tokens=6"), events))
    plain, streamed = ledger(gw, user_of(gw, token))
    assert plain["prompt_tokens"] > 0 and plain["completion_tokens"] > 0
    assert streamed["prompt_tokens"] > 0 and streamed["completion_tokens"] == 6


# -- 3: one slot, bounded work -----------------------------------------------------------------

def test_only_allow_listed_fields_reach_the_backend(gw, backend):
    token = new_user(gw)
    before = len(backend.served)
    response = asyncio.run(post(gw, token, body(
        "tokens=2", n_predict=-1, ignore_eos=True, n_cmpl=50, n_probs=5, min_tokens=400,
        max_completion_tokens=40, temperature=0.5)))
    assert response.status_code == 200
    (seen,) = served_since(backend, before)
    forwarded = seen["body"]
    for field in ("n_predict", "ignore_eos", "n_cmpl", "n_probs", "min_tokens",
                  "max_completion_tokens"):
        assert field not in forwarded, field
    assert forwarded["max_tokens"] == 40 and forwarded["temperature"] == 0.5


def test_a_list_of_prompts_is_refused(gw, backend):
    token = new_user(gw)
    before = len(backend.served)
    response = asyncio.run(post(gw, token, {"model": MODEL, "prompt": ["tokens=1"] * 5000},
                                endpoint="completions"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "prompt_list_not_supported"
    ok = asyncio.run(post(gw, token, {"model": MODEL, "prompt": "tokens=2"},
                          endpoint="completions"))
    assert ok.status_code == 200
    assert [s["body"]["prompt"] for s in served_since(backend, before)] == ["tokens=2"]


# -- 4: budgets are reserved at admission ----------------------------------------------------

def test_parallel_requests_cannot_overshoot_the_budget(gw, backend):
    token = new_user(gw)
    before = len(backend.served)

    async def six_at_once():
        return await asyncio.gather(*[post(gw, token, body("tokens=3 delay=0.3"))
                                      for _ in range(6)])

    statuses = sorted(r.status_code for r in asyncio.run(six_at_once()))
    # the first reserves its prompt and an answer as long as the rest of the budget allows;
    # the others find nothing left while it runs
    assert statuses == [200, 429, 429, 429, 429, 429], statuses
    (seen,) = served_since(backend, before)
    assert seen["body"]["max_tokens"] < DAILY_TOKENS
    # settled to the real usage: the budget is back for the next request
    assert asyncio.run(post(gw, token, body("tokens=3"))).status_code == 200


# -- 5: a hang-up still pays for the prompt ----------------------------------------------------

def test_hanging_up_still_charges_the_prompt(gw, backend):
    token = new_user(gw)
    events: list = []
    # usage only at the end, as llama-server sends it
    asyncio.run(stream(gw, token, body("endusage tokens=40 delay=0.05"), events,
                       stop_after_data=3))
    row = wait_for(lambda: ledger(gw, user_of(gw, token)))[0]
    assert row["outcome"] == "cancelled"
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] >= 3


# -- 6: bodies are counted while read ----------------------------------------------------------

def test_a_huge_chunked_body_is_cut_at_the_cap(gw, backend):
    token = new_user(gw)
    port = int(gw.env["SPORTHUB_GATEWAY_PORT"])
    chunk = b"x" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /services/llm/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + token.encode() + b"\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        s.setblocking(False)
        answer, pending = b"", b""
        while sent < 64 * 2**20 and not answer:  # 64 MiB offered; the cap is 4 MiB
            try:
                answer += s.recv(65536)
            except BlockingIOError:
                pass
            if not pending:
                pending = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
            try:
                n = s.send(pending)  # maybe a part: the rest goes next time round
                pending, sent = pending[n:], sent + n
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:  # the gateway answered and closed: read what it said
                s.setblocking(True)
                answer += s.recv(65536)
        # the head and the body may come in separate segments: read the rest of the answer
        s.setblocking(True)
        while b"\r\n\r\n" in answer and len(answer.partition(b"\r\n\r\n")[2]) < int(
                re.search(rb"content-length: (\d+)", answer, re.IGNORECASE).group(1)):
            try:
                more = s.recv(65536)
            except OSError:
                break
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 16 * 2**20  # answered long before the whole body was sent
    assert b"request_too_large" in answer


# -- 7: no request holds a slot past its deadline or for a caller who does not read -------

def test_a_never_ending_answer_is_cut_at_the_deadline(gw, backend):
    token = new_user(gw)
    events: list = []
    asyncio.run(stream(gw, token, body("tokens=1000 delay=0.3"), events))  # never stalls
    assert '"code": "deadline"' in events[-2][1] and events[-1][1] == "data: [DONE]"
    (row,) = ledger(gw, user_of(gw, token))
    assert row["outcome"] == "deadline" and row["completion_tokens"] >= 5
    assert backend.active == 0 or wait_for(lambda: backend.active == 0, 5)
    assert a_slot_is_free(gw, backend)


def test_a_caller_who_stops_reading_loses_the_slot(gw, backend):
    token = new_user(gw)
    name = user_of(gw, token)
    port = int(gw.env["SPORTHUB_GATEWAY_PORT"])
    payload = json.dumps(body("pad=65536 tokens=400 delay=0", stream=True)).encode()
    with socket.socket() as s:
        # a small receive buffer, and then we read nothing at all
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(b"POST /services/llm/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + token.encode() + b"\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                  % len(payload) + payload)
        rows = wait_for(lambda: ledger(gw, name), timeout=20)
        assert rows and rows[0]["outcome"] == "client_too_slow", rows
        assert a_slot_is_free(gw, backend)


# -- 10: settings that fail open -----------------------------------------------------------------

def test_a_cache_age_of_zero_means_a_revoked_token_fails_at_once(gw, backend):
    token = new_user(gw)
    name = user_of(gw, token)
    assert asyncio.run(post(gw, token, body("tokens=1"))).status_code == 200
    tokens = gw.admin.api("GET", f"/users/{name}/tokens").json()["api_tokens"]
    for t in tokens:
        assert gw.admin.api("DELETE", f"/users/{name}/tokens/{t['id']}").status_code == 204
    refused = asyncio.run(post(gw, token, body("tokens=1")))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


# -- 11: a backend that is loading its model is waited for -------------------------------------

def test_requests_wait_for_a_backend_that_is_loading(gw, loader):
    token = new_user(gw)
    health = httpx.get(f"{gw.gateway}/health").json()
    assert health["backends"] == {"fake": "up", "loading": "starting"}
    events: list = []

    async def scenario():
        task = asyncio.create_task(stream(gw, token, body("tokens=2", model=LOADER), events))
        while not events:
            await asyncio.sleep(0.05)
        waiting = await asyncio.to_thread(queue_of, gw, token)
        loader.loading = False  # the model is loaded
        await task
        return waiting

    waiting = asyncio.run(scenario())
    first = COMMENT.match(events[0][1])
    assert first and first.group(2) == "-1"  # "waiting for the model"
    assert waiting["requests"][0]["eta_s"] == -1
    assert [line for _, line in events if line.startswith("data:")][-1] == "data: [DONE]"
    assert ledger(gw, user_of(gw, token))[0]["outcome"] == "ok"


# -- 12: names, addresses, files ------------------------------------------------------------------

def test_the_audit_log_records_the_address_the_proxy_saw(gw, backend):
    token = new_user(gw)
    name = user_of(gw, token)
    response = httpx.post(f"{gw.url}/services/llm/v1/chat/completions", json=body("tokens=1"),
                          headers={"Authorization": f"Bearer {token}",
                                   "X-Forwarded-For": "203.0.113.66"}, timeout=30)
    assert response.status_code == 200
    lines = [json.loads(line) for line in
             (gw.data_dir / "gateway-audit.jsonl").read_text().splitlines()]
    (mine,) = [entry for entry in lines if entry["user"] == name]
    assert mine["ip"] == "127.0.0.1"  # what the proxy saw, not what the caller claimed
    assert ledger(gw, name)[0]["client_ip"] == "127.0.0.1"


def test_a_user_name_cannot_borrow_another_persons_groups(gw, backend):
    vip = f"vip{os.getpid()}"
    assert gw.admin.api("POST", f"/users/{vip}").status_code == 201
    gw.admin.api("POST", "/groups/priority")
    assert gw.admin.api("POST", "/groups/priority/users", json={"users": [vip]}).status_code == 200
    impostor = f"{vip}?x"  # GET users/vip?x would read vip's groups
    created = gw.admin.api("POST", f"/users/{vip}%3Fx")
    # JupyterHub 6.1 accepts such a name, which is what makes the quoting necessary
    assert created.status_code == 201, f"the hub refused {impostor!r}: {created.text}"
    gw.admin.api("POST", "/groups/athletes/users", json={"users": [impostor]})
    token = gw.admin.new_token(f"{vip}%3Fx")
    assert queue_of(gw, token)["priority"] == 0


def test_the_ledger_and_the_audit_log_are_private(gw):
    for name in ("gateway.sqlite", "gateway-audit.jsonl"):
        mode = stat.S_IMODE((gw.data_dir / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))


def test_no_slot_or_place_is_left_behind(gw, backend):
    """After everything above: nothing waits, nothing runs, every request has one row."""
    admin_view = httpx.get(f"{gw.gateway}/metrics",
                           headers={"Authorization": f"Bearer {gw.admin.token}"}).text
    assert 'sporthub_llm_running{backend="fake"} 0.0' in admin_view
    assert "sporthub_llm_queue_length{" not in admin_view or \
        all(line.endswith(" 0.0") for line in admin_view.splitlines()
            if line.startswith("sporthub_llm_queue_length{"))
    rows = ledger(gw)
    assert len({r["id"] for r in rows}) == len(rows)
    audit = (gw.data_dir / "gateway-audit.jsonl").read_text().splitlines()
    assert len(audit) == len(rows)


# -- the request's life: whatever raises after admission, the slot goes back -----------------

@pytest.fixture(scope="module")
def inproc(gw, backend, tmp_path_factory):
    from tests.support.gateway_server import InProcessGateway

    server = InProcessGateway(gw, gw.admin.token, backend, tmp_path_factory.mktemp("inproc"),
                              llm_tokens_per_day=100_000).start()
    server.admin = gw.admin
    yield server
    server.stop()


@pytest.mark.parametrize("where, streamed", [("prepare", False), ("prepare", True),
                                             ("relay", True)])
def test_an_unexpected_error_after_admission_frees_the_slot_and_writes_the_row(
        inproc, backend, monkeypatch, where, streamed):
    from sporthub.gateway import request as life
    from sporthub.gateway.upstream import Upstream

    def explode(*args, **kwargs):
        raise RuntimeError("a bug the gateway did not foresee")

    if where == "prepare":
        monkeypatch.setattr(Upstream, "prepare", explode)
    else:
        monkeypatch.setattr(life, "_read_usage", explode)
    token = new_user(inproc)
    name = user_of(inproc, token)
    for _ in range(3):  # more than the one slot: a leak would block the second
        response = httpx.post(f"{inproc.gateway}/v1/chat/completions",
                              json=body("tokens=2", stream=streamed),
                              headers={"Authorization": f"Bearer {token}"}, timeout=15)
        if response.status_code == 200:  # the stream had begun: the error is an event
            assert '"code": "internal_error"' in response.text
        else:
            assert response.status_code == 500
            assert response.json()["error"]["code"] == "internal_error"
    assert wait_for(inproc.idle, 5)
    rows = ledger(inproc, name)
    assert [(r["outcome"], r["status"]) for r in rows] == [("error", 500)] * 3


def test_the_banner_waits_for_the_model(tmp_path):
    fake = FakeBackend().start()
    fake.loading = True
    backends = json.dumps([{"name": "slowstart", "url": fake.url, "api_key": KEY,
                            "models": [MODEL]}])
    stack = make_stack(tmp_path, llm_backends=backends)
    try:
        # started by hand: Stack.start itself waits for the banner
        stack.proc = subprocess.Popen([str(SPORTHUB), "up"], cwd=stack.data_dir.parent,
                                      env=stack.env, stdout=stack.log_path.open("wb"),
                                      stderr=subprocess.STDOUT)
        assert wait_for(lambda: _answers(f"{stack.url}/hub/health"), 120)
        time.sleep(3)  # the hub is up; the model is not
        assert "SportHub is running at" not in stack.log()
        fake.loading = False
        assert wait_for(lambda: "SportHub is running at" in stack.log(), 30), stack.log()
    finally:
        if stack.proc is not None:
            stack.descendants = stack.processes()
            stack.stop()
        fake.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
