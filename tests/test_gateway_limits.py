"""Issue 17: what one request may make the model produce, and what the gateway holds of it.

The unit tests check the payload's bounds without a network; the stack tests send the hostile
requests to the real embedded llama-server through the hub's proxy and the gateway.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from sporthub.gateway.errors import GatewayError
from sporthub.gateway.payload import check
from sporthub.gateway.request import _sse_events
from tests.gateway_client import ledger, new_user, post, user_of
from tests.stack import HubClient, make_stack

CHAT = "chat/completions"
MODEL = "smollm2-135m-instruct"
ANSWER_CAP = 64 * 1024  # the smallest llm_max_answer_bytes allowed


def chat(**extra) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def refusal(body, endpoint: str = CHAT) -> GatewayError:
    with pytest.raises(GatewayError) as error:
        check(body, endpoint, max_tokens_cap=500, max_prompt_chars=10_000)
    return error.value


# -- unit: the bounds --------------------------------------------------------------------------

@pytest.mark.parametrize("body, endpoint, field", [
    (chat(logprobs=True, top_logprobs=100_000), CHAT, "top_logprobs"),
    (chat(logprobs=True, top_logprobs=21), CHAT, "top_logprobs"),
    (chat(logprobs=True, top_logprobs=-1), CHAT, "top_logprobs"),
    ({"model": "m", "prompt": "hi", "logprobs": 6}, "completions", "logprobs"),
    ({"model": "m", "prompt": "hi", "logprobs": 100_000}, "completions", "logprobs"),
])
def test_log_probabilities_are_bounded_as_openai_bounds_them(body, endpoint, field):
    error = refusal(body, endpoint)
    assert error.status == 400 and error.code == "invalid_field"
    assert error.body["error"]["param"] == field and f"'{field}'" in error.message


def test_log_probabilities_within_the_bounds_are_forwarded():
    chat_body = check(chat(logprobs=True, top_logprobs=20), CHAT, 500, 10_000).forward(5)
    assert (chat_body["logprobs"], chat_body["top_logprobs"]) == (True, 20)
    completion = check({"model": "m", "prompt": "hi", "logprobs": 5}, "completions", 500,
                       10_000).forward(5)
    assert completion["logprobs"] == 5


def test_a_stream_event_larger_than_the_cap_is_cut_without_holding_the_rest():
    sent = []

    async def endless():
        # one event that never ends: the gateway must stop reading, not hold it all
        for _ in range(1000):
            sent.append(1)
            yield b"data: " + b"x" * 4096

    async def read():
        response = httpx.Response(200, content=endless())
        return [e async for e in _sse_events(response, ANSWER_CAP)]

    with pytest.raises(GatewayError) as error:
        asyncio.run(read())
    assert (error.value.status, error.value.code) == (502, "answer_too_large")
    assert len(sent) <= ANSWER_CAP // 4096 + 2


# -- the real stack: embedded llama-server -------------------------------------------------------

@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    stack = make_stack(tmp_path_factory.mktemp("limits"), llm_max_answer_bytes=str(ANSWER_CAP),
                       llm_max_concurrency="1", llm_tokens_per_day="1000000",
                       llm_groups='{"athletes": {"llm_tokens_per_day": 1000000}}')
    stack.start()
    stack.admin = HubClient.admin(stack)
    stack.db_url = f"sqlite:///{stack.data_dir / 'gateway.sqlite'}"
    yield stack
    stack.descendants = stack.processes()
    stack.stop()


def test_unbounded_top_logprobs_never_reach_the_model(gw):
    token = new_user(gw)
    response = asyncio.run(post(gw, token, {
        "model": MODEL, "messages": [{"role": "user", "content": "Count to five."}],
        "max_tokens": 8, "logprobs": True, "top_logprobs": 100_000}))
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["param"] == "top_logprobs" and "between 0 and 20" in error["message"]
    completion = asyncio.run(post(gw, token, {"model": MODEL, "prompt": "One, two,",
                                              "max_tokens": 8, "logprobs": 100_000},
                                  endpoint="completions"))
    assert completion.status_code == 400 and completion.json()["error"]["param"] == "logprobs"


def test_an_answer_larger_than_the_cap_is_cut_its_slot_freed_one_row_charged(gw):
    token = new_user(gw)
    name = user_of(gw, token)
    big = {"model": MODEL, "messages": [{"role": "user", "content": "Write a long story."}],
           "max_tokens": 400, "logprobs": True, "top_logprobs": 20, "temperature": 1.5}
    response = asyncio.run(post(gw, token, big, timeout=180))
    assert response.status_code == 502, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "answer_too_large" and "64 KiB" in error["message"]
    assert len(response.content) < 2048  # the caller gets the error, none of the answer
    rows = ledger(gw, name)
    assert len(rows) == 1
    assert (rows[0]["status"], rows[0]["outcome"]) == (502, "answer_too_large")
    # cut unread, it is charged what the model was allowed to write
    assert rows[0]["completion_tokens"] == 400 and rows[0]["prompt_tokens"] > 0
    # the only slot (llm_max_concurrency=1) is free again: a small answer comes at once
    small = asyncio.run(post(gw, token, {
        "model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4,
        "logprobs": True, "top_logprobs": 2}, timeout=60))
    assert small.status_code == 200, small.text[:300]
    assert small.json()["choices"][0]["logprobs"]["content"]
    assert len(ledger(gw, name)) == 2
    assert json.loads(httpx.get(f"{gw.gateway}/queue", headers={
        "Authorization": f"Bearer {token}"}).text)["requests"] == []
