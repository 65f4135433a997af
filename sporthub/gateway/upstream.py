"""Talking to the LLM backends: which one serves a model, what each one can take, and every HTTP
request the gateway sends them (a model request, a health check).

Only the gateway holds a backend's key; the caller's token never leaves the gateway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import httpx

from sporthub.gateway.errors import GatewayError
from sporthub.gateway.scheduler import DOWN, STARTING, UP
from sporthub.settings import Backend

log = logging.getLogger("sporthub.gateway")

# OpenAI request fields that carry tool definitions or choices; dropped for backends without tools
_TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")


class Upstream:
    """One backend: its base URL, key, served models and capabilities."""

    def __init__(self, backend: Backend, default_capacity: int):
        self.name = backend.name
        self.capacity = backend.max_concurrency or default_capacity
        self.url = backend.url
        self.models = list(backend.models)
        self.supports_tools = backend.supports_tools
        self.accepts_media = backend.accepts_media
        key = backend.api_key.get_secret_value() if backend.api_key else None
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def prepare(self, payload: dict) -> dict:
        """The allow-listed body (payload.py) as this backend should see it; changed in place."""
        if payload.get("stream"):
            # usage in the stream is how the ledger counts tokens (vLLM and llama-server both do it)
            # continuous usage (vLLM) also counts the tokens of a stream that is cut short
            payload["stream_options"] = {**(payload.get("stream_options") or {}),
                                         "include_usage": True, "continuous_usage_stats": True}
        if not self.supports_tools and "messages" in payload:
            for field in _TOOL_FIELDS:
                payload.pop(field, None)
            payload["messages"] = [_without_tool_calls(m) for m in payload["messages"]]
        return payload


def without_usage(event: bytes) -> bytes:
    """A stream's ``data:`` chunk without the per-chunk usage (vLLM's continuous usage) that the
    gateway asked for on the caller's behalf: OpenAI clients expect it in the last chunk only.

    vLLM writes the usage as the chunk's last member: it is cut out of the bytes (a chunk parsed
    and written again for each token cost a tenth of the gateway's CPU); any other layout goes
    the long way, through JSON."""
    cut = _LAST_USAGE.search(event)
    if cut is not None:
        return event[:cut.start()] + event[cut.end() - 1:]
    chunk = json.loads(event.removeprefix(b"data:"))
    chunk.pop("usage", None)
    return b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()


# `,"usage":{...}}` at the chunk's end: numbers, and objects of numbers one level down
# (`prompt_tokens_details`); in JSON a `"` inside a string is escaped, so the match is the member
_LAST_USAGE = re.compile(rb',\s*"usage"\s*:\s*(?:null|\{(?:[^{}"]|"[^"\\]*"|\{[^{}]*\})*\})'
                         rb'\s*\}\s*$')


def _without_tool_calls(message: dict) -> dict:
    """Rewrite tool traffic as plain text so a model without tool support still answers."""
    if not isinstance(message, dict):
        return message
    role = message.get("role")
    if role in ("tool", "function"):
        return {"role": "user", "content": f"Tool result:\n{_text(message.get('content'))}"}
    if role == "assistant" and message.get("tool_calls"):
        calls = "; ".join(
            f"{c.get('function', {}).get('name')}({c.get('function', {}).get('arguments', '')})"
            for c in message["tool_calls"]
        )
        text = _text(message.get("content"))
        return {"role": "assistant", "content": f"{text}\n(called tools: {calls})".strip()}
    return message


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


class Router:
    """Route a request to a backend that serves its model."""

    def __init__(self, backends: list[Backend], default_capacity: int):
        self.upstreams = [Upstream(b, default_capacity) for b in backends]
        self._by_name = {u.name: u for u in self.upstreams}

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(m for u in self.upstreams for m in u.models))

    def get(self, name: str) -> Upstream:
        return self._by_name[name]

    def accepts_media(self, model: str) -> bool:
        """Whether every backend that may serve ``model`` takes image, audio and file parts."""
        return all(u.accepts_media for u in self.upstreams if model in u.models)

    def check_model(self, model: str) -> None:
        if any(model in u.models for u in self.upstreams):
            return
        raise GatewayError(404, f"The model '{model}' does not exist here. Available: "
                           f"{', '.join(self.models)}.", "model_not_found")


def upstream_error(response: httpx.Response, body: bytes) -> GatewayError:
    """Turn a backend's error answer into ours, keeping its message when it is a client error."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = body.decode(errors="replace")[:500] or response.reason_phrase
    if 400 <= response.status_code < 500 and response.status_code not in (401, 403):
        return GatewayError(response.status_code, message, "upstream_rejected")
    return GatewayError(502, f"The language model backend failed ({response.status_code}): "
                        f"{message}", "upstream_error")


# below the backends' own keep-alive timeout (5 s for llama-server and uvicorn)
KEEPALIVE_EXPIRY_S = 2.0


class UpstreamClient:
    """The one HTTP client to the backends, shared by every request and the health checks."""

    def __init__(self, stall_timeout_s: float):
        # model requests go to the transport itself: the client's cookie jar, auth flow and
        # redirect handling cost a sixth of what sending a request costs, and a backend's
        # cookie must not ride on everyone's later requests anyway
        # an idle connection is dropped well before the backend drops it: llama-server
        # (cpp-httplib) and vLLM (uvicorn) close one idle for 5 s, httpx's default expiry too,
        # and a request sent on a connection the backend was closing at that moment failed
        # (RemoteProtocolError: "not reachable") in CI, the first request after a 6-s answer
        self.transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64,
                                keepalive_expiry=KEEPALIVE_EXPIRY_S))
        self.http = httpx.AsyncClient(
            transport=self.transport,
            # the read timeout is per chunk: a stream silent for this long has stalled
            # (request.py also bounds each wait, and the whole request by its deadline)
            timeout=httpx.Timeout(stall_timeout_s, connect=5.0),
        )

    async def open(self, upstream: Upstream, endpoint: str, body: dict, stream: bool,
                   remaining_s: float) -> httpx.Response:
        """Send a model request and read the answer's head, within ``remaining_s``; the body is
        the caller's to read (never taken whole without a limit: an answer can be far larger
        than its request). A backend that cannot be reached is a :class:`GatewayError`."""
        request = self.http.build_request(
            "POST", f"{upstream.url}/v1/{endpoint}", json=body, headers=upstream.headers,
            # an answer that is not streamed says nothing until it is whole: no stall timeout
            **({} if stream else {"timeout": httpx.Timeout(remaining_s, connect=5.0)}))
        try:
            async with asyncio.timeout(remaining_s):
                try:
                    response = await self.transport.handle_async_request(request)
                except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError,
                        httpx.WriteError) as e:
                    # no answer's head came, so the backend did not take the request: a pooled
                    # connection it closed as the request went out (keep-alive races remain even
                    # below its timeout, on a loaded machine) or a restart. Once more, on a new
                    # connection, as urllib3 and Go's http client do; twice is a real failure
                    log.info("backend %s: retrying once after %s: %s", upstream.name,
                             type(e).__name__, e)
                    response = await self.transport.handle_async_request(request)
            response.request = request
            return response
        except TimeoutError:
            raise GatewayError(504, f"The language model backend '{upstream.name}' did not "
                               "answer in time.", "upstream_timeout") from None
        except httpx.HTTPError as e:
            raise backend_error(e, upstream) from None

    async def probe(self, upstream: Upstream, state: str) -> str:
        """A health check: the backend's state now, given the state it was in.

        A backend that answers 503 (llama-server and vLLM while they load the model), or that
        has not answered since the gateway started, is *starting*: requests wait for it. One
        that answered before and is now unreachable is *down*.
        """
        try:
            response = await self.http.get(f"{upstream.url}/v1/models",
                                           headers=upstream.headers, timeout=5)
            return {200: UP, 503: STARTING}.get(response.status_code, DOWN)
        except httpx.HTTPError:
            return STARTING if state == STARTING else DOWN

    async def close(self) -> None:
        await self.http.aclose()


def backend_error(error: httpx.HTTPError, upstream: Upstream) -> GatewayError:
    log.warning("backend %s failed: %s: %s", upstream.name, type(error).__name__, error)
    if isinstance(error, httpx.TimeoutException):
        return GatewayError(504, f"The language model backend '{upstream.name}' did not "
                            "answer in time.", "upstream_timeout")
    return GatewayError(503, f"The language model backend '{upstream.name}' is not "
                        "reachable; retry in a minute.", "upstream_unavailable",
                        {"Retry-After": "30"})
