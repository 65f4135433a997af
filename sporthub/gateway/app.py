"""The gateway's HTTP API, mounted at ``/services/llm/`` behind the hub's proxy.

``POST /v1/chat/completions``, ``POST /v1/completions`` and ``GET /v1/models`` are forwarded to a
backend; nothing else of a backend is reachable. ``GET /queue`` tells callers where they stand,
``GET /metrics`` is for the admin and Prometheus.

A request's life: token check, body check, budget check, a place in the scheduler's queue (a
streaming caller hears ``: queue position=<n> eta_s=<s>`` SSE comments while waiting), a slot, the
backend's answer relayed, and exactly one ledger row and audit line, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from sporthub.gateway.audit import AuditLog
from sporthub.gateway.auth import Caller, HubTokenAuth
from sporthub.gateway.budgets import TokenCounter
from sporthub.gateway.directory import HubDirectory
from sporthub.gateway.errors import GatewayError
from sporthub.gateway.ledger import Ledger, RequestRecord, migrate
from sporthub.gateway.metrics import GatewayMetrics
from sporthub.gateway.policy import Policy, budget_window, resolve
from sporthub.gateway.scheduler import Pool, Scheduler, Ticket
from sporthub.gateway.upstream import Router, Upstream, upstream_error, without_usage
from sporthub.settings import Settings

log = logging.getLogger("sporthub.gateway")

MAX_BODY_BYTES = 4 * 1024 * 1024
QUEUE_COMMENT_EVERY_S = 1.5


class Gateway:
    def __init__(self, settings: Settings, hub_api_url: str, hub_api_token: str):
        self.settings = settings
        self.auth = HubTokenAuth(hub_api_url, hub_api_token, settings.gateway_auth_cache_s)
        self.directory = HubDirectory(hub_api_url, hub_api_token, settings.gateway_auth_cache_s)
        self.router = Router(settings.backends(), settings.llm_max_concurrency)
        self.scheduler = Scheduler(
            [Pool(u.name, u.capacity, frozenset(u.models)) for u in self.router.upstreams],
            max_running_per_user=settings.llm_max_running_per_user,
            max_queued_per_user=settings.llm_max_queued_per_user,
            initial_service_s=settings.llm_initial_service_s,
        )
        self.ledger = Ledger(settings.ledger_url)
        self.tokens = TokenCounter(self.ledger)
        self.audit = AuditLog(settings.audit_log_path, settings.gateway_audit_prompts)
        self.metrics = GatewayMetrics()
        self.client = httpx.AsyncClient(
            # the read timeout is per chunk: a stream silent for this long has stalled
            timeout=httpx.Timeout(settings.llm_stall_timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self.unary_timeout = httpx.Timeout(settings.llm_request_timeout_s, connect=5.0)
        self._pending_writes: set[asyncio.Task] = set()

    # -- routes ---------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        await self.auth.caller(request)
        return JSONResponse({
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "sporthub"}
                     for m in self.router.models],
        })

    async def queue(self, request: Request) -> Response:
        """The caller's own requests, waiting and running, and their budget."""
        caller = await self.auth.caller(request)
        policy = await self._policy(caller)
        used = await self.tokens.used_today(caller.name)
        _, resets_at = budget_window()
        requests = []
        for ticket in self.scheduler.tickets_of(caller.name):
            position = self.scheduler.position(ticket)
            requests.append({
                "state": "waiting" if position else "running",
                "model": ticket.model,
                "position": position,
                "eta_s": _seconds(self.scheduler.eta(ticket)) if position else 0,
                "waited_s": round(time.monotonic() - ticket.enqueued_at, 1),
            })
        return JSONResponse({
            "user": caller.name,
            "priority": policy.priority,
            "requests": requests,
            "budget": {"used_tokens": used, "limit_tokens": policy.tokens_per_day,
                       "resets_at": resets_at.isoformat().replace("+00:00", "Z")},
        })

    async def prometheus(self, request: Request) -> Response:
        await self._check_metrics_access(request)
        self._refresh_gauges()
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def health(self, request: Request) -> Response:
        backends = {p.name: ("up" if p.up else "down") for p in self.scheduler.pools.values()}
        status = 200 if "up" in backends.values() else 503
        return JSONResponse({"status": "ok" if status == 200 else "degraded",
                             "backends": backends}, status_code=status)

    async def completions(self, request: Request) -> Response:
        caller = await self.auth.caller(request)
        endpoint = request.url.path.rsplit("/v1/", 1)[1]
        body = await _json_body(request, chat=endpoint == "chat/completions")
        self._apply_limits(body, chat=endpoint == "chat/completions")
        self.router.check_model(body["model"])
        record = RequestRecord(
            id=str(uuid.uuid4()), user=caller.name, endpoint=endpoint, model=body["model"],
            client_ip=client_ip(request, self.settings.gateway_trusted_proxies),
            stream=bool(body.get("stream")),
        )
        started = time.monotonic()
        try:
            policy = await self._policy(caller)
            await self._check_budget(caller, policy)
            ticket = self.scheduler.submit(caller.name, policy.priority, body["model"])
        except GatewayError as e:
            record.status, record.outcome = e.status, e.code
            await self._finish(record, started, None, body)
            raise
        if record.stream and not ticket.admitted.done():
            # headers go out now so the caller hears where it stands while it waits
            return self._streaming(self._wait_then_relay(ticket, body, record, started))
        try:
            await self._wait_for_slot(request, ticket)
            upstream = self.router.get(ticket.backend)
            record.backend = upstream.name
            record.queued_ms = (time.monotonic() - started) * 1000
            if record.stream:
                response = await self._open_stream(upstream, body, endpoint)
                # from here the relay frees the slot and writes the row, however it ends
                return self._streaming(self._relay(response, ticket, body, record, started))
            result = await self._unary(upstream, body, endpoint, record)
        except GatewayError as e:
            record.status, record.outcome = e.status, e.code
            await self._abandon(ticket, record, started, body)
            raise
        except (asyncio.CancelledError, ClientGone):
            record.status, record.outcome = 499, "cancelled"
            await self._abandon(ticket, record, started, body)
            return Response(status_code=499)
        self.scheduler.release(ticket, succeeded=True)
        await self._finish(record, started, ticket, body)
        return result

    async def _abandon(self, ticket: Ticket, record: RequestRecord, started: float,
                       body: dict) -> None:
        """Give up the place or the slot, and write the row of a request that did not finish."""
        self.scheduler.withdraw(ticket)
        await self._finish(record, started, ticket, body)

    # -- checks -----------------------------------------------------------------------------

    def _apply_limits(self, body: dict, chat: bool) -> None:
        """Refuse what no one may ask for; bound the answer's length when the caller did not."""
        s = self.settings
        if body.get("n", 1) not in (1, None):
            raise GatewayError(400, "Only n=1 is supported: ask for one answer at a time.",
                               "n_not_supported")
        for field in ("max_tokens", "max_completion_tokens"):
            value = body.get(field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise GatewayError(400, f"'{field}' must be a positive integer.", "invalid_max_tokens")
            if value is not None and value > s.llm_max_tokens:
                raise GatewayError(400, f"'{field}' is {value}; the limit here is "
                                   f"{s.llm_max_tokens} tokens per answer.", "max_tokens_too_large")
        if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
            body["max_tokens"] = s.llm_max_tokens
        prompt = body.get("messages") if chat else body.get("prompt")
        size = len(json.dumps(prompt, ensure_ascii=False))
        if size > s.llm_max_prompt_chars:
            raise GatewayError(413, f"The prompt is {size} characters; the limit is "
                               f"{s.llm_max_prompt_chars}. Shorten the conversation or start a "
                               "new chat.", "prompt_too_large")

    async def _policy(self, caller: Caller) -> Policy:
        try:
            groups = await self.directory.group_properties_of(caller.name)
        except httpx.HTTPError as e:
            log.warning("reading %s's groups failed: %s %s", caller.name, type(e).__name__,
                        getattr(getattr(e, "response", None), "status_code", ""))
            raise GatewayError(503, "JupyterHub is not reachable to read your groups; retry "
                               "shortly.", "hub_unavailable", {"Retry-After": "5"}) from None
        return resolve(self.settings, groups)

    async def _check_budget(self, caller: Caller, policy: Policy) -> None:
        used = await self.tokens.used_today(caller.name)
        if used >= policy.tokens_per_day:
            _, resets_at = budget_window()
            retry_after = int((resets_at - datetime.now(UTC)).total_seconds()) + 1
            raise GatewayError(
                429, f"You have used your {policy.tokens_per_day} tokens for today ({used} used). "
                f"Your budget resets at {resets_at:%H:%M} UTC ({resets_at.isoformat()}).",
                "budget_exhausted", {"Retry-After": str(retry_after)})

    async def _check_metrics_access(self, request: Request) -> None:
        expected = self.settings.gateway_metrics_token
        header = request.headers.get("authorization", "")
        if expected and hmac.compare_digest(header.encode(),
                                            f"Bearer {expected.get_secret_value()}".encode()):
            return
        caller = await self.auth.caller(request, scope=None)
        if not caller.admin:
            raise GatewayError(403, "Metrics are for the hub's admins and the metrics token.",
                               "admin_only")

    # -- waiting ------------------------------------------------------------------------------

    async def _wait_for_slot(self, request: Request, ticket: Ticket) -> None:
        """Wait for the slot while watching the client: a caller that leaves loses its place."""
        if ticket.admitted.done():
            return
        waiter = asyncio.ensure_future(
            self.scheduler.wait(ticket, self.settings.llm_queue_timeout_s))
        gone = asyncio.ensure_future(_until_disconnect(request))
        try:
            await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not waiter.done():
            waiter.cancel()
            self.scheduler.withdraw(ticket)
            raise ClientGone()
        waiter.result()
        self.metrics.queue_wait.observe(time.monotonic() - ticket.enqueued_at)

    async def _wait_then_relay(self, ticket: Ticket, body: dict, record: RequestRecord,
                               started: float):
        """A queued streaming request: position comments while waiting, then the answer."""
        waiter = asyncio.ensure_future(
            self.scheduler.wait(ticket, self.settings.llm_queue_timeout_s))
        try:
            last_position, last_sent = None, 0.0
            while not waiter.done():
                position = self.scheduler.position(ticket)
                now = time.monotonic()
                if position and (position != last_position
                                 or now - last_sent >= QUEUE_COMMENT_EVERY_S):
                    eta = _seconds(self.scheduler.eta(ticket))
                    yield f": queue position={position} eta_s={eta}\n\n".encode()
                    last_position, last_sent = position, now
                # wake on any change of the queue, or in time for the periodic comment
                next_comment = max(QUEUE_COMMENT_EVERY_S - (time.monotonic() - last_sent), 0.05)
                await asyncio.wait({waiter, self.scheduler.changed()}, timeout=next_comment,
                                   return_when=asyncio.FIRST_COMPLETED)
            waiter.result()
            self.metrics.queue_wait.observe(time.monotonic() - ticket.enqueued_at)
            upstream = self.router.get(ticket.backend)
            record.backend = upstream.name
            record.queued_ms = (time.monotonic() - started) * 1000
            response = await self._open_stream(upstream, body, record.endpoint)
        except GatewayError as e:
            # the 200 and its headers are gone: the error travels as an OpenAI error event
            record.status, record.outcome = e.status, e.code
            await self._abandon(ticket, record, started, body)
            yield _sse_error(e)
            return
        except (asyncio.CancelledError, GeneratorExit):
            # the caller hung up while waiting: its place goes at once
            waiter.cancel()
            record.status, record.outcome = 499, "cancelled"
            await self._abandon(ticket, record, started, body)
            raise
        async for chunk in self._relay(response, ticket, body, record, started):
            yield chunk

    # -- forwarding ---------------------------------------------------------------------------

    async def _unary(self, upstream: Upstream, body: dict, endpoint: str,
                     record: RequestRecord) -> Response:
        try:
            # a whole answer may take long to write: the stall limit is for streams only
            response = await self.client.post(
                f"{upstream.url}/v1/{endpoint}", json=upstream.prepare(body),
                headers=upstream.headers, timeout=self.unary_timeout)
        except httpx.HTTPError as e:
            raise _backend_error(e, upstream) from None
        if response.status_code >= 400:
            raise upstream_error(response, response.content)
        usage = response.json().get("usage") or {}
        record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        record.completion_tokens = int(usage.get("completion_tokens") or 0)
        return Response(response.content, media_type="application/json")

    async def _open_stream(self, upstream: Upstream, body: dict, endpoint: str) -> httpx.Response:
        request = self.client.build_request("POST", f"{upstream.url}/v1/{endpoint}",
                                            json=upstream.prepare(body), headers=upstream.headers)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as e:
            raise _backend_error(e, upstream) from None
        if response.status_code >= 400:
            content = await response.aread()
            await response.aclose()
            raise upstream_error(response, content)
        return response

    async def _relay(self, response: httpx.Response, ticket: Ticket, body: dict,
                     record: RequestRecord, started: float):
        """Relay the backend's events, counting usage; the slot is freed however it ends."""
        options = body.get("stream_options") or {}
        wants_usage = bool(options.get("include_usage"))
        wants_every_usage = bool(options.get("continuous_usage_stats"))
        delivered = 0  # chunks with text: about one token each
        try:
            # bytes in, bytes out: the few numbers we need are read without parsing the JSON
            async for event in _sse_events(response):
                if event.startswith(b"data:"):
                    if b'"usage"' in event:
                        _read_usage(event, record)
                        if _NO_CHOICES.search(event):
                            if not wants_usage:
                                continue  # the usage-only chunk we asked for on the caller's behalf
                        elif not wants_every_usage:
                            event = without_usage(event)
                    if _HAS_TEXT.search(event):
                        delivered += 1
                        if record.ttft_ms is None:
                            record.ttft_ms = (time.monotonic() - started) * 1000
                yield event + b"\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            record.status, record.outcome = 499, "cancelled"
            raise
        except httpx.HTTPError as e:
            stalled = isinstance(e, httpx.TimeoutException)
            record.status, record.outcome = 502, "stalled" if stalled else "upstream_broken"
            log.warning("stream from %s %s", ticket.backend, "stalled" if stalled else "broke")
            yield _sse_error(GatewayError(502, "The language model backend stopped mid-answer.",
                                          record.outcome))
        finally:
            if record.outcome != "ok":
                # an aborted stream never sends its usage chunk: count what was delivered
                record.completion_tokens = max(record.completion_tokens, delivered)
            await response.aclose()
            self.scheduler.release(ticket, succeeded=record.outcome == "ok")
            await self._finish(record, started, ticket, body)

    def _streaming(self, chunks) -> StreamingResponse:
        return StreamingResponse(chunks, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- bookkeeping ----------------------------------------------------------------------------

    async def _finish(self, record: RequestRecord, started: float, ticket: Ticket | None,
                      body: dict) -> None:
        """The one ledger row, audit line and metrics update of a request.

        The write runs in its own task, shielded, so a request cancelled by its client still
        gets its row; the client just does not wait for it.
        """
        record.duration_ms = (time.monotonic() - started) * 1000
        if record.backend is None and ticket is not None:
            record.backend = ticket.backend
        tokens = record.prompt_tokens + record.completion_tokens
        self.tokens.add(record.user, tokens, record.started_at)
        self._count(record)
        self.audit.write(record, body.get("messages") or body.get("prompt"))
        task = asyncio.get_running_loop().create_task(self.ledger.record(record))
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)
        await asyncio.shield(task)

    def _count(self, record: RequestRecord) -> None:
        m = self.metrics
        m.requests.labels(record.outcome).inc()
        if record.outcome != "ok":
            m.errors.labels(record.outcome).inc()
        if record.ttft_ms is not None:
            m.ttft.observe(record.ttft_ms / 1000)
        for kind, n in (("prompt", record.prompt_tokens), ("completion", record.completion_tokens)):
            if n:
                m.tokens_by_user.labels(record.user, kind).inc(n)
                for group in self.directory.cached_groups_of(record.user):
                    m.tokens_by_group.labels(group, kind).inc(n)

    def _refresh_gauges(self) -> None:
        m = self.metrics
        m.queue_length.clear()
        for priority, count in self.scheduler.waiting_by_priority().items():
            m.queue_length.labels(str(priority)).set(count)
        for pool in self.scheduler.pools.values():
            m.running.labels(pool.name).set(len(pool.running))
            m.backend_up.labels(pool.name).set(1 if pool.up else 0)

    # -- health checks --------------------------------------------------------------------

    async def watch_backends(self) -> None:
        """Ask each backend for its models every few seconds; skip the ones that do not answer."""
        while True:
            for upstream in self.router.upstreams:
                try:
                    response = await self.client.get(f"{upstream.url}/v1/models",
                                                     headers=upstream.headers, timeout=5)
                    up = response.status_code == 200
                except httpx.HTTPError:
                    up = False
                if up != self.scheduler.pools[upstream.name].up:
                    log.log(logging.INFO if up else logging.WARNING, "backend %s is %s",
                            upstream.name, "up" if up else "DOWN")
                self.scheduler.set_up(upstream.name, up)
            all_up = all(p.up for p in self.scheduler.pools.values())
            # a backend that is down (or still loading its model) is asked again soon
            await asyncio.sleep(self.settings.llm_health_interval_s if all_up else 1.0)

    async def close(self) -> None:
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)
        await self.client.aclose()
        await self.directory.close()
        self.ledger.close()


def client_ip(request: Request, trusted_proxies: list[str]) -> str | None:
    """The caller's address; X-Forwarded-For is believed only from a proxy we trust."""
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-for")
    if peer not in trusted_proxies or not forwarded:
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    # each trusted proxy appends the address it saw: the right-most untrusted hop is the client
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return hop
    return hops[0] if hops else peer


class ClientGone(Exception):
    """The caller hung up while waiting."""


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _seconds(eta: float) -> int:
    return -1 if eta == float("inf") else round(eta)


async def _json_body(request: Request, chat: bool) -> dict:
    too_large = GatewayError(413, f"Request body larger than {MAX_BODY_BYTES // 2**20} MiB.",
                             "request_too_large")
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise too_large
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise GatewayError(400, "The request body was not received completely.",
                           "incomplete_body") from None
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
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


_PROMPT_TOKENS = re.compile(rb'"prompt_tokens":\s*(\d+)')
_COMPLETION_TOKENS = re.compile(rb'"completion_tokens":\s*(\d+)')
_NO_CHOICES = re.compile(rb'"choices":\s*\[\s*\]')
_HAS_TEXT = re.compile(rb'"(?:content|text)":\s*"(?!")')


def _read_usage(event: bytes, record: RequestRecord) -> None:
    """Take the token counts of a chunk's usage (the final one, or vLLM's continuous ones)."""
    prompt, completion = _PROMPT_TOKENS.search(event), _COMPLETION_TOKENS.search(event)
    if prompt:
        record.prompt_tokens = int(prompt.group(1))
    if completion:
        record.completion_tokens = int(completion.group(1))


def _sse_error(error: GatewayError) -> bytes:
    return b"data: " + json.dumps(error.body).encode() + b"\n\ndata: [DONE]\n\n"


def _backend_error(error: httpx.HTTPError, upstream: Upstream) -> GatewayError:
    log.warning("backend %s failed: %s", upstream.name, type(error).__name__)
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
        watcher = asyncio.create_task(gateway.watch_backends())
        yield
        watcher.cancel()
        await gateway.close()

    routes = [
        Route("/health", gateway.health),
        Route("/queue", gateway.queue, methods=["GET"]),
        Route("/metrics", gateway.prometheus, methods=["GET"]),
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
