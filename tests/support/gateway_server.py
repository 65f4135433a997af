"""The gateway app in this test process (uvicorn on a real socket, in a thread), against a real
hub: for tests that look inside it (its scheduler) or break it on purpose (a raised error)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import uvicorn

from sporthub.gateway.app import create_app
from sporthub.settings import load_settings
from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.stack import Stack, free_port


class InProcessGateway:
    """Looks like a :class:`Stack` to ``tests.support.gateway_client`` (``url``, ``gateway``, ``db_url``)."""

    def __init__(self, stack: Stack, admin_token: str, backend: FakeBackend, data_dir: Path,
                 hub_api_url: str | None = None, **settings):
        backends = [{"name": "fake", "url": backend.url, "api_key": KEY, "models": [MODEL],
                     "max_concurrency": 1}]
        self.settings = load_settings(
            data_dir=data_dir, llm_backends=backends, gateway_port=free_port(),
            llm_health_interval_s=1, **{"gateway_auth_cache_s": 5, **settings})
        hub_api = hub_api_url or f"http://127.0.0.1:{stack.env['SPORTHUB_HUB_PORT']}/hub/api"
        # the admin's token reads users and groups, as the gateway's own service token does
        self.app = create_app(self.settings, hub_api, admin_token)
        self.core = self.app.state.gateway
        self.url = stack.url  # the hub's, as in Stack
        self.gateway_url = f"{self.settings.gateway_url}{self.settings.gateway_prefix}"
        self.db_url = self.settings.ledger_url
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=self.settings.gateway_port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def gateway(self) -> str:
        return self.gateway_url

    def start(self) -> InProcessGateway:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not (self.server.started and self.core.scheduler.pools["fake"].up):
            assert time.monotonic() < deadline, "the in-process gateway did not come up"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def idle(self) -> bool:
        """No slot held, no place in line, no reservation left."""
        s = self.core.scheduler
        return (not any(p.running for p in s.pools.values())
                and not any(q for q in s.queues.values())
                and not +s.queued_by_user and not +s.running_by_user
                and not +self.core.tokens.reserved)


def dumps(value) -> bytes:
    return json.dumps(value).encode()
