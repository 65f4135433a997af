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
import logging
import os
import time
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from sporthub.gateway.audit import AuditLog
from sporthub.gateway.auth import HubTokenAuth, client_ip
from sporthub.gateway.bookkeeping import Bookkeeping
from sporthub.gateway.budgets import TokenCounter
from sporthub.gateway.directory import HubDirectory
from sporthub.gateway.errors import GatewayError
from sporthub.gateway.ledger import Ledger, migrate
from sporthub.gateway.metrics import GatewayMetrics
from sporthub.gateway.policy import PolicyLookup, budget_window
from sporthub.gateway.recovery import recover
from sporthub.gateway.request import Collaborators, ModelRequest, seconds
from sporthub.gateway.retention import RetentionTask
from sporthub.gateway.scheduler import DOWN, STARTING, UP, Pool, Scheduler
from sporthub.gateway.upstream import Router, UpstreamClient
from sporthub.pseudonym import Pseudonyms
from sporthub.settings import Settings

log = logging.getLogger("sporthub.gateway")
SETTLE_AT_SHUTDOWN_S = 5.0


class Gateway:
    """Builds the gateway's parts once and holds the routes; each model request gets the parts
    it works with (:class:`Collaborators`), not the gateway."""

    def __init__(self, settings: Settings, hub_api_url: str, hub_api_token: str):
        self.settings = settings
        self.auth = HubTokenAuth(hub_api_url, hub_api_token, settings.gateway_auth_cache_s)
        self.directory = HubDirectory(hub_api_url, hub_api_token, settings.gateway_auth_cache_s)
        self.policy = PolicyLookup(settings, self.directory)
        self.router = Router(settings.backends(), settings.llm_max_concurrency)
        self.upstreams = UpstreamClient(settings.llm_stall_timeout_s)
        self.scheduler = Scheduler(
            # not ready until a first health check says so: early requests wait, not fail
            [Pool(u.name, u.capacity, frozenset(u.models), state=STARTING)
             for u in self.router.upstreams],
            max_running_per_user=settings.llm_max_running_per_user,
            max_queued_per_user=settings.llm_max_queued_per_user,
            initial_service_s=settings.llm_initial_service_s,
        )
        self.ledger = Ledger(settings.ledger_url)
        self.tokens = TokenCounter(self.ledger)
        self.metrics = GatewayMetrics()
        # names never reach Prometheus: its series outlive an erase (its own retention)
        self.pseudonyms = Pseudonyms.of(settings)
        self.retention = RetentionTask(settings.ledger_url, settings.audit_log_path,
                                       settings.audit_retention_days, self.pseudonyms)
        self.books = Bookkeeping(
            self.ledger, AuditLog(settings.audit_log_path, settings.gateway_audit_prompts),
            self.metrics, self.directory, self.pseudonyms)
        self.parts = Collaborators(settings=settings, router=self.router,
                                   upstreams=self.upstreams, scheduler=self.scheduler,
                                   tokens=self.tokens, policy=self.policy, books=self.books)

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
        policy = await self.policy(caller.name)
        used = await self.tokens.used_today(caller.name)
        _, resets_at = budget_window()
        requests = []
        for ticket in self.scheduler.tickets_of(caller.name):
            position = self.scheduler.position(ticket)
            requests.append({
                "state": "waiting" if position else "running",
                "model": ticket.model,
                "position": position,
                "eta_s": seconds(self.scheduler.eta(ticket)) if position else 0,
                # set when no number is honest: the wait very likely exceeds this many seconds
                "eta_more_than_s": _whole(self.scheduler.more_than(ticket)) if position else None,
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
        """200 once a backend answers; "starting" while one loads its model (requests wait)."""
        backends = {p.name: p.state for p in self.scheduler.pools.values()}
        status = 200 if UP in backends.values() else 503
        return JSONResponse({"status": "ok" if status == 200 else "degraded",
                             "backends": backends}, status_code=status)

    async def completions(self, request: Request) -> Response:
        caller = await self.auth.caller(request)
        # the scope's path, not request.url: building the URL object costs more than the rest
        endpoint = request.scope["path"].rsplit("/v1/", 1)[1]
        address = client_ip(request, self.settings.trusted_proxies, self.settings.forwarded_hops)
        return await ModelRequest(self.parts, request, caller, endpoint, address).respond()

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

    def _refresh_gauges(self) -> None:
        m = self.metrics
        m.queue_length.clear()
        for priority, count in self.scheduler.waiting_by_priority().items():
            m.queue_length.labels(str(priority)).set(count)
        for pool in self.scheduler.pools.values():
            m.running.labels(pool.name).set(len(pool.running))
            m.backend_up.labels(pool.name).set(1 if pool.up else 0)
        m.ledger_pending.set(self.books.pending)

    # -- health checks --------------------------------------------------------------------

    async def watch_backends(self) -> None:
        """Ask each backend for its models every few seconds (``UpstreamClient.probe``); a
        backend that is down or starting gets no request."""
        while True:
            for upstream in self.router.upstreams:
                pool = self.scheduler.pools[upstream.name]
                state = await self.upstreams.probe(upstream, pool.state)
                if state != pool.state:
                    log.log(logging.WARNING if state == DOWN else logging.INFO,
                            "backend %s is %s", upstream.name, state)
                self.scheduler.set_state(upstream.name, state)
            all_up = all(p.up for p in self.scheduler.pools.values())
            # a backend that is down (or still loading its model) is asked again soon
            await asyncio.sleep(self.settings.llm_health_interval_s if all_up else 1.0)

    async def close(self) -> None:
        await self.books.close(SETTLE_AT_SHUTDOWN_S)
        await self.upstreams.close()
        await self.directory.close()


def _whole(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds)


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
        # SPORTHUB_AUDIT_RETENTION_DAYS, applied at start and then daily
        retention = asyncio.create_task(gateway.retention.forever())
        yield
        watcher.cancel()
        retention.cancel()
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
    # rows of a gateway killed before it wrote them, before budgets or estimates read the ledger
    recover(gateway.ledger, settings.audit_log_path)
    # the typical answer lengths the wait estimate starts from: the ledger's recent answers
    gateway.scheduler.seed_lengths(gateway.ledger.recent_answer_lengths())
    app.state.gateway = gateway
    return app
