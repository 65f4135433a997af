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
from sporthub.gateway.payload import check, read_json
from sporthub.gateway.request import _sse_events
from tests.support.gateway_client import ledger, new_user, post, user_of
from tests.support.stack import HubClient, make_stack, started

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
    with started(stack):
        stack.admin = HubClient.admin(stack)
        stack.db_url = f"sqlite:///{stack.data_dir / 'gateway.sqlite'}"
        yield stack


@pytest.mark.stack
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


@pytest.mark.stack
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


# -- unit: every forwarded field is bounded and counted (item 7) ------------------------------

BIG = "x" * 20_000  # over the 10 000 characters these checks allow


@pytest.mark.parametrize("body, field", [
    (chat(stop=BIG), "stop"),
    (chat(stop=["a", BIG]), "stop"),
    (chat(logit_bias={str(i): 1 for i in range(301)}), "logit_bias"),
    (chat(logit_bias={"not-a-token": 5}), "logit_bias"),
    (chat(logit_bias={"42": 1e9}), "logit_bias"),
    (chat(user=BIG), "user"),
    ({**chat(), "model": BIG}, "model"),
])
def test_each_forwarded_field_is_bounded(body, field):
    error = refusal(body)
    assert error.status == 400 and error.body["error"]["param"] == field


@pytest.mark.parametrize("body", [
    chat(response_format={"type": "json_schema", "json_schema": {"schema": {"d": BIG}}}),
    chat(tool_choice={"type": "function", "function": {"name": BIG}}),
    chat(messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "pad": BIG}]}]),
    {"model": "m", "prompt": "hi", "suffix": BIG},
])
def test_every_forwarded_field_counts_against_the_size_cap(body):
    endpoint = CHAT if "messages" in body else "completions"
    error = refusal(body, endpoint)
    assert (error.status, error.code) == (413, "prompt_too_large")


# -- unit: what JSON's parser lets through but nothing after it takes (item 8) -----------------

def read(raw: bytes):
    from starlette.requests import Request

    async def receive():
        return {"type": "http.request", "body": raw, "more_body": False}

    return asyncio.run(read_json(Request({"type": "http", "headers": []}, receive)))


@pytest.mark.parametrize("raw, field", [
    (b'{"model": "m", "temperature": NaN}', "temperature"),
    (b'{"model": "m", "top_p": Infinity}', "top_p"),
    (b'{"model": "m", "messages": [{"role": "user", "content": -Infinity}]}',
     "messages[0].content"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}',
     "messages[0].content"),
    (b'{"model": "m", "stop": ["\\udfff"]}', "stop[0]"),
    (b'{"model": "m", "tools": ' + b"[" * 100 + b"]" * 100 + b"}", "tools"),
])
def test_values_json_cannot_carry_are_a_400_naming_the_field(raw, field):
    with pytest.raises(GatewayError) as error:
        read(raw)
    assert error.value.status == 400 and error.value.param.startswith(field)
    json.dumps(error.value.body, ensure_ascii=False).encode()  # valid text: no lone surrogate


def test_nesting_past_the_parsers_recursion_limit_is_a_400():
    with pytest.raises(GatewayError) as error:
        read(b'{"tools": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    assert (error.value.status, error.value.code) == (400, "invalid_json")


# -- content parts: no links, and media only for a backend that takes them (item 12) ------------

def image(url: str) -> dict:
    return chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}])


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "file:///etc/passwd",
                                 "https://example.org/a.png", "DATA:x"])
def test_a_media_part_with_a_link_is_refused(url):
    error = refusal(image(url))
    assert error.status == 400 and "data: URL" in error.message
    assert error.body["error"]["param"] == "messages[0].content[1]"


@pytest.mark.parametrize("part", [
    {"type": "input_audio", "input_audio": {"url": "http://x"}},
    {"type": "file", "file": {"file_id": "file-abc"}},
    {"type": "image_file", "image_file": {"file_id": "f"}},
])
def test_unknown_or_referencing_parts_are_refused(part):
    assert refusal(chat(messages=[{"role": "user", "content": [part]}])).status == 400


def test_inline_media_passes_the_check_and_is_seen_as_media():
    from sporthub.gateway.payload import has_media

    payload = check(image("data:image/png;base64,iVBORw0KGgo="), CHAT, 500, 10_000)
    assert has_media(payload.text) and not has_media(check(chat(), CHAT, 500, 10_000).text)


def test_only_backends_marked_accepts_media_take_media():
    from sporthub.gateway.upstream import Router
    from sporthub.settings import Backend

    router = Router([Backend(name="text", url="http://a", models=["m", "t"]),
                     Backend(name="vision", url="http://b", models=["m", "v"],
                             accepts_media=True)], 1)
    # a model any text-only backend may serve is text only
    assert (router.accepts_media("v"), router.accepts_media("m"), router.accepts_media("t")) \
        == (True, False, False)


@pytest.mark.stack
def test_the_embedded_model_refuses_media_parts(gw):
    token = new_user(gw)
    body = {**image("data:image/png;base64,iVBORw0KGgo="), "model": MODEL, "max_tokens": 4}
    response = asyncio.run(post(gw, token, body))
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["code"] == "media_not_supported"
    linked = asyncio.run(post(gw, token, {**image("http://169.254.169.254/"), "model": MODEL}))
    assert linked.status_code == 400 and "data: URL" in linked.json()["error"]["message"]


# -- prompt charging (item 9) ------------------------------------------------------------------

@pytest.mark.stack
def test_a_prompt_the_model_refuses_as_too_long_is_charged_its_estimate(gw):
    """The backend tokenized it to refuse it: the gateway charges the estimate it reserved."""
    token = new_user(gw)
    text = "stride " * 6000  # ~42 000 characters: within the gateway's cap, past the context
    response = asyncio.run(post(gw, token, {
        "model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 4},
        timeout=180))
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["code"] == "upstream_rejected"
    [row] = ledger(gw, user_of(gw, token))
    estimate = check({"model": MODEL, "messages": [{"role": "user", "content": text}]}, CHAT,
                     4, 48_000).prompt_estimate
    assert row["prompt_tokens"] == estimate and row["completion_tokens"] == 0
