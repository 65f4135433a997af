"""Who is calling: the caller's own hub token, resolved by the hub and checked for the LLM scope."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

from jupyterhub.services.auth import HubAuth
from starlette.requests import Request
from tornado import web

from sporthub.gateway.errors import GatewayError

LLM_SCOPE = "custom:llm:use"
# known tokens kept at once: 100 accounts with a few tokens each fit many times over
CACHE_ENTRIES = 4096
_AUTH_HEADER = re.compile(r"(?:bearer|token)\s+(\S+)", re.IGNORECASE)

log = logging.getLogger("sporthub.gateway")


@dataclass(frozen=True)
class Caller:
    name: str
    admin: bool


class HubTokenAuth:
    """Resolve bearer tokens with the hub (``GET /hub/api/user``), cached for a short time.

    The cache age is the revocation lag: a token the admin revokes keeps working for at most
    ``cache_max_age`` seconds (0: asked every time). HubAuth's own cache is not used: it keeps
    answers forever at age 0, grows without bound, and keeps failures, so a stream of bogus
    tokens would fill it. Ours keeps only known tokens, by hash, at most ``CACHE_ENTRIES``.
    """

    def __init__(self, api_url: str, api_token: str, cache_max_age: int):
        self.hub_auth = HubAuth(api_url=api_url, api_token=api_token)
        self.cache_max_age = cache_max_age
        self.cache: OrderedDict[str, tuple[float, dict]] = OrderedDict()

    async def user_model(self, token: str) -> dict | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self.cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_max_age:
            return hit[1]
        self.cache.pop(key, None)
        model = await self.hub_auth.user_for_token(token, use_cache=False, sync=False)
        if model and self.cache_max_age > 0:
            self.cache[key] = (time.monotonic(), model)
            while len(self.cache) > CACHE_ENTRIES:
                self.cache.popitem(last=False)  # the oldest
        return model

    async def caller(self, request: Request, scope: str | None = LLM_SCOPE) -> Caller:
        match = _AUTH_HEADER.fullmatch(request.headers.get("authorization", "").strip())
        if not match:
            raise GatewayError(
                401,
                "Missing API key: send your JupyterHub token as 'Authorization: Bearer <token>'.",
                "missing_api_key",
            )
        try:
            model = await self.user_model(match.group(1))
        except (web.HTTPError, OSError) as e:  # HubAuth's way of saying the hub is unreachable
            log.warning("token check failed: hub unreachable (%s)", type(e).__name__)
            raise GatewayError(503, "JupyterHub is not reachable to check your token; retry shortly.",
                               "hub_unavailable", {"Retry-After": "5"}) from None
        if not model or model.get("kind", "user") != "user":
            raise GatewayError(401, "Invalid API key: this token is unknown to JupyterHub or has "
                               "expired.", "invalid_api_key")
        if scope is not None and scope not in model.get("scopes", ()):
            raise GatewayError(403, f"This token lacks the scope '{scope}': ask your admin for "
                               "access to the AI assistant.", "missing_scope")
        # groups are read with the gateway's own token (directory.py): a server token cannot
        return Caller(name=model["name"], admin=bool(model.get("admin")))
