"""What the gateway forwards, and whose budget applies: checks without a network."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request

from sporthub.gateway.auth import CACHE_ENTRIES, HubTokenAuth, client_ip
from sporthub.gateway.errors import GatewayError
from sporthub.gateway.payload import check
from sporthub.gateway.policy import resolve
from sporthub.settings import load_settings

CHAT = "chat/completions"


def chat(**extra) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def refused(body, endpoint: str = CHAT) -> str:
    with pytest.raises(GatewayError) as error:
        check(body, endpoint, max_tokens_cap=500, max_prompt_chars=10_000)
    assert error.value.status in (400, 413)
    return error.value.code


def test_only_allow_listed_fields_reach_the_backend_and_max_tokens_is_ours():
    payload = check(chat(n_predict=-1, ignore_eos=True, n_cmpl=50, min_tokens=400, n_probs=9,
                         temperature=0.2, max_completion_tokens=80),
                    CHAT, max_tokens_cap=500, max_prompt_chars=10_000)
    forwarded = payload.forward(max_tokens=60)
    assert forwarded == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                         "temperature": 0.2, "max_tokens": 60}


def test_stream_must_be_a_json_boolean():
    for value in ("false", "true", 0, 1, [], {}):
        assert refused(chat(stream=value)) == "invalid_stream"
    assert check(chat(stream=False), CHAT, 500, 10_000).stream is False
    assert check(chat(stream=True), CHAT, 500, 10_000).forward(5)["stream"] is True


def test_one_prompt_per_completion_request():
    assert refused({"model": "m", "prompt": ["a"] * 5000}, "completions") == \
        "prompt_list_not_supported"
    assert refused({"model": "m", "prompt": [1, 2, 3]}, "completions") == \
        "prompt_list_not_supported"
    assert check({"model": "m", "prompt": ["only one"]}, "completions", 500, 10_000
                 ).forward(5)["prompt"] == "only one"


@pytest.mark.parametrize("message", [
    {"role": "assistant", "content": None, "tool_calls": ["not a call"]},
    {"role": "assistant", "content": "x", "tool_calls": [{"function": "f"}]},
    {"role": "assistant", "content": "x", "tool_calls": {"function": {"name": "f"}}},
    {"role": "robot", "content": "x"},
    {"role": "user", "content": 42},
    {"role": "user", "content": [{"type": "text", "text": 5}]},
    {"role": "user", "content": ["plain string part"]},
    "just text",
])
def test_malformed_messages_are_400_before_queueing(message):
    assert refused({"model": "m", "messages": [message]}) == "invalid_messages"


def test_tools_count_toward_the_prompt_limit():
    tools = [{"type": "function", "function": {"name": f"t{i}", "description": "x" * 400}}
             for i in range(30)]
    assert refused(chat(tools=tools)) == "prompt_too_large"


def test_the_prompt_estimate_errs_on_the_generous_side():
    payload = check(chat(), CHAT, 500, 10_000)
    assert payload.prompt_estimate >= len("hi") // 4 + 1


@pytest.mark.parametrize("groups, expected", [
    ({"athletes": {"llm_tokens_per_day": 150}}, 150),  # below the no-group default
    ({"athletes": {"llm_tokens_per_day": "90000"}}, 90_000),  # above it
    ({"athletes": {"llm_tokens_per_day": 150}, "scientists": {}}, 200_000),  # most generous
    ({"priority": {}}, 20_000),  # a group that sets no budget: the no-group default
    ({}, 20_000),
])
def test_the_no_group_budget_applies_only_when_no_group_sets_one(groups, expected, monkeypatch):
    monkeypatch.delenv("SPORTHUB_LLM_TOKENS_PER_DAY", raising=False)
    assert resolve(load_settings(), groups).tokens_per_day == expected


def _request(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


@pytest.mark.parametrize("peer, forwarded, hops, expected", [
    ("127.0.0.1", "203.0.113.7", 1, "203.0.113.7"),  # from the hub's proxy: believed
    # a user server (also 127.0.0.1) sent its own X-Forwarded-For through the proxy: only the
    # hop the proxy appended counts
    ("127.0.0.1", "6.6.6.6, 127.0.0.1", 1, "127.0.0.1"),
    ("127.0.0.1", "198.51.100.1, 203.0.113.7", 1, "203.0.113.7"),
    ("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),  # TLS proxy too
    # the second hop is believed only from the TLS proxy: a caller reaching the hub's proxy
    # directly wrote it itself
    ("127.0.0.1", "198.51.100.1, 203.0.113.7", 2, "203.0.113.7"),
    ("192.0.2.50", "203.0.113.7", 1, "192.0.2.50"),  # from anyone else: ignored
    ("127.0.0.1", None, 1, "127.0.0.1"),
])
def test_forwarded_for_counts_only_our_proxies_hops(peer, forwarded, hops, expected):
    assert client_ip(_request(peer, forwarded), ["127.0.0.1", "::1", "10.0.0.2"], hops) == expected


class _Hub:
    """Stands in for HubAuth's HTTP call only: which tokens the hub knows."""

    def __init__(self):
        self.calls = 0

    async def user_for_token(self, token, use_cache=True, sync=True):
        assert use_cache is False  # HubAuth's own cache (forever at age 0, unbounded) is off
        self.calls += 1
        return {"name": "ann", "kind": "user", "scopes": []} if token == "good" else None


async def test_the_token_cache_keeps_only_known_tokens_and_is_bounded():
    auth = HubTokenAuth("http://127.0.0.1:1/hub/api", "service-token", cache_max_age=30)
    auth.hub_auth = hub = _Hub()
    for i in range(CACHE_ENTRIES + 50):
        assert await auth.user_model(f"bogus-{i}") is None
    assert len(auth.cache) == 0  # failures are never cached
    assert (await auth.user_model("good"))["name"] == "ann"
    calls = hub.calls
    assert (await auth.user_model("good"))["name"] == "ann"
    assert hub.calls == calls  # a known token is cached
    auth.cache.clear()
    for i in range(CACHE_ENTRIES + 10):
        auth.cache[str(i)] = (0.0, {})
    hub.calls = 0
    await auth.user_model("good")
    assert len(auth.cache) == CACHE_ENTRIES


async def test_a_cache_age_of_zero_asks_the_hub_every_time():
    auth = HubTokenAuth("http://127.0.0.1:1/hub/api", "service-token", cache_max_age=0)
    auth.hub_auth = hub = _Hub()
    for _ in range(3):
        await auth.user_model("good")
    assert hub.calls == 3 and not auth.cache


@pytest.mark.parametrize("chunk", [
    # vLLM's layout: the usage last (cut from the bytes), with the nested details object
    (b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"the \\"usage\\": {} x"}}],'
    b'"usage":{"prompt_tokens":9,"total_tokens":10,"completion_tokens":1,'
    b'"prompt_tokens_details":{"cached_tokens":0}}}'),
    b'data: {"id": "c", "choices": [], "usage": null}',
    # any other layout: through JSON
    b'data: {"usage": {"prompt_tokens": 9}, "id": "c", "choices": [{"delta": {"content": "}"}}]}',
])
def test_the_per_chunk_usage_is_taken_out_and_nothing_else(chunk):
    from sporthub.gateway.upstream import without_usage

    expected = json.loads(chunk.removeprefix(b"data:"))
    del expected["usage"]
    out = without_usage(chunk)
    assert out.startswith(b"data: ") and json.loads(out.removeprefix(b"data:")) == expected
