"""The gateway's HTTP API, mounted at ``/services/llm/`` behind the hub's proxy.

``POST /v1/chat/completions``, ``POST /v1/completions`` and ``GET /v1/models`` are forwarded to a
backend; nothing else of a backend is reachable. Every request that reaches the forwarding step is
written to the ledger exactly once, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from sporthub.gateway.auth import HubTokenAuth
from sporthub.gateway.errors import GatewayError
from sporthub.gateway.ledger import Ledger, RequestRecord, migrate
from sporthub.gateway.upstream import Router, Upstream, upstream_error
from sporthub.settings import Settings

log = logging.getLogger("sporthub.gateway")

MAX_BODY_BYTES = 4 * 1024 * 1024


class Gateway:
    def __init__(self, settings: Settings, hub_api_url: str, hub_api_token: str):
        self.settings = settings
        self.auth = HubTokenAuth(hub_api_url, hub_api_token, settings.gateway_auth_cache_s)
        self.router = Router(settings.backends())
        self.ledger = Ledger(settings.ledger_url)
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.llm_request_timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self._pending_writes: set[asyncio.Task] = set()

    # -- routes ---------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        await self.auth.caller(request)
        return JSONResponse({
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "sporthub"}
                     for m in self.router.models],
        })

    async def completions(self, request: Request) -> Response:
        caller = await self.auth.caller(request)
        endpoint = request.url.path.rsplit("/v1/", 1)[1]
        body = await _json_body(request, chat=endpoint == "chat/completions")
        upstream = self.router.for_model(body["model"])
        record = RequestRecord(
            id=str(uuid.uuid4()), user=caller.name, endpoint=endpoint,
            client_ip=request.client.host if request.client else None,
            model=body["model"], backend=upstream.name, stream=bool(body.get("stream")),
        )
        payload = upstream.prepare(body)
        url = f"{upstream.url}/v1/{endpoint}"
        if record.stream:
            return await self._stream(upstream, url, payload, body, record)
        return await self._unary(upstream, url, payload, record)

    # -- forwarding ---------------------------------------------------------------------------

    async def _unary(self, upstream: Upstream, url: str, payload: dict,
                     record: RequestRecord) -> Response:
        started = time.monotonic()
        try:
            response = await self.client.post(url, json=payload, headers=upstream.headers)
            content = response.content
            if response.status_code >= 400:
                raise upstream_error(response, content)
            usage = json.loads(content).get("usage") or {}
            record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            record.completion_tokens = int(usage.get("completion_tokens") or 0)
            return Response(content, media_type="application/json")
        except GatewayError as e:
            record.status, record.outcome = e.status, "upstream_error"
            raise
        except httpx.HTTPError as e:
            record.status, record.outcome = _backend_down(e, upstream)
            raise _backend_error(e, upstream) from None
        except asyncio.CancelledError:
            record.status, record.outcome = 499, "cancelled"
            raise
        finally:
            record.duration_ms = (time.monotonic() - started) * 1000
            await self._write(record)

    async def _stream(self, upstream: Upstream, url: str, payload: dict,
                      body: dict, record: RequestRecord) -> Response:
        started = time.monotonic()
        request = self.client.build_request("POST", url, json=payload, headers=upstream.headers)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as e:
            record.status, record.outcome = _backend_down(e, upstream)
            record.duration_ms = (time.monotonic() - started) * 1000
            await self._write(record)
            raise _backend_error(e, upstream) from None
        if response.status_code >= 400:
            content = await response.aread()
            await response.aclose()
            error = upstream_error(response, content)
            record.status, record.outcome = error.status, "upstream_error"
            record.duration_ms = (time.monotonic() - started) * 1000
            await self._write(record)
            raise error
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def relay():
            try:
                async for event in _sse_events(response):
                    usage = _usage_of(event)
                    if usage is not None:
                        record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                        record.completion_tokens = int(usage.get("completion_tokens") or 0)
                        if not wants_usage and b'"choices":[]' in event.replace(b" ", b""):
                            continue  # the usage-only chunk we asked for on the caller's behalf
                    if record.ttft_ms is None and event.startswith(b"data:"):
                        record.ttft_ms = (time.monotonic() - started) * 1000
                    yield event + b"\n\n"
            except asyncio.CancelledError:
                record.status, record.outcome = 499, "cancelled"
                raise
            except httpx.HTTPError as e:
                record.status, record.outcome = 502, "upstream_broken"
                log.warning("stream from %s broke: %s", upstream.name, type(e).__name__)
                yield _sse_error(GatewayError(502, "The language model backend stopped "
                                              "mid-answer.", "upstream_broken"))
            finally:
                await response.aclose()
                record.duration_ms = (time.monotonic() - started) * 1000
                await self._write(record)

        return StreamingResponse(relay(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _write(self, record: RequestRecord) -> None:
        """Write the ledger row before the response ends.

        The write runs in its own task, shielded, so a request cancelled by its client still
        gets its row; the client just does not wait for it.
        """
        task = asyncio.get_running_loop().create_task(self.ledger.record(record))
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)
        await asyncio.shield(task)
        log.info("%s %s %s model=%s backend=%s tokens=%d+%d status=%d %s",
                 record.id, record.user, record.endpoint, record.model, record.backend,
                 record.prompt_tokens, record.completion_tokens, record.status, record.outcome)

    async def close(self) -> None:
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)
        await self.client.aclose()
        self.ledger.close()


async def _json_body(request: Request, chat: bool) -> dict:
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise GatewayError(413, f"Request body larger than {MAX_BODY_BYTES // 1024 // 1024} MiB.",
                           "request_too_large")
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise GatewayError(400, "The request body was not received completely.",
                           "incomplete_body") from None
    if len(raw) > MAX_BODY_BYTES:
        raise GatewayError(413, f"Request body larger than {MAX_BODY_BYTES // 1024 // 1024} MiB.",
                           "request_too_large")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise GatewayError(400, f"The request body is not valid JSON: {e}.", "invalid_json") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object.", "invalid_body")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise GatewayError(400, "'model' is required and must be a string.", "missing_model")
    if chat and (not isinstance(body.get("messages"), list) or not body["messages"]):
        raise GatewayError(400, "'messages' is required and must be a non-empty list.",
                           "invalid_messages")
    if not chat and "prompt" not in body:
        raise GatewayError(400, "'prompt' is required.", "missing_prompt")
    return body


async def _sse_events(response: httpx.Response):
    """Split an SSE byte stream into events (without their blank-line terminator)."""
    buffer = b""
    async for chunk in response.aiter_raw():
        buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            if event:
                yield event
    if buffer.strip():
        yield buffer


def _usage_of(event: bytes) -> dict | None:
    if b'"usage"' not in event or not event.startswith(b"data:"):
        return None
    try:
        return json.loads(event[5:]).get("usage")
    except ValueError:
        return None


def _sse_error(error: GatewayError) -> bytes:
    return b"data: " + json.dumps(error.body).encode() + b"\n\n"


def _backend_down(error: httpx.HTTPError, upstream: Upstream) -> tuple[int, str]:
    log.warning("backend %s failed: %s", upstream.name, type(error).__name__)
    if isinstance(error, httpx.TimeoutException):
        return 504, "upstream_timeout"
    return 503, "upstream_unavailable"


def _backend_error(error: httpx.HTTPError, upstream: Upstream) -> GatewayError:
    if isinstance(error, httpx.TimeoutException):
        return GatewayError(504, f"The language model backend '{upstream.name}' did not answer "
                            "in time.", "upstream_timeout")
    return GatewayError(503, f"The language model backend '{upstream.name}' is not reachable; "
                        "retry in a minute.", "upstream_unavailable", {"Retry-After": "30"})


async def _gateway_error(request: Request, exc: GatewayError) -> Response:
    return exc.response()


async def _not_found(request: Request, exc: Exception) -> Response:
    return GatewayError(404, f"No such endpoint: {request.method} {request.url.path}. This "
                        "gateway serves /v1/chat/completions, /v1/completions and /v1/models.",
                        "not_found").response()


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return GatewayError(405, f"{request.method} is not allowed on {request.url.path}.",
                        "method_not_allowed").response()


def create_app(settings: Settings, hub_api_url: str | None = None,
               hub_api_token: str | None = None) -> Starlette:
    """The ASGI app; the hub's URL and the service token come from the hub's environment."""
    migrate(settings.ledger_url)
    gateway = Gateway(
        settings,
        hub_api_url or os.environ["JUPYTERHUB_API_URL"],
        hub_api_token or os.environ["JUPYTERHUB_API_TOKEN"],
    )

    @asynccontextmanager
    async def lifespan(app):
        yield
        await gateway.close()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": gateway.router.models})

    routes = [
        Route("/health", health),
        Route("/v1/models", gateway.models, methods=["GET"]),
        Route("/v1/chat/completions", gateway.completions, methods=["POST"]),
        Route("/v1/completions", gateway.completions, methods=["POST"]),
    ]
    app = Starlette(
        routes=[Mount(settings.gateway_prefix, routes=routes)],
        exception_handlers={GatewayError: _gateway_error, 404: _not_found,
                            405: _method_not_allowed},
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
