"""How a SportHub service (the gateway, the usage page, any later one) deals with the hub by token.

Two directions, one helper each, so no service writes its own:

- :func:`hub_api_client`: the service's own calls to the hub's REST API, with the service's token
  (``JUPYTERHUB_API_TOKEN``, holding only the read scopes its role grants), and :func:`get_all`
  for the hub's paginated lists;
- :class:`HubTokenCheck`: who a caller is, from the hub token the caller sent, resolved by the hub
  and kept for a short time (the revocation lag), with its scopes; :meth:`HubTokenCheck.caller`
  answers a request without a token, with an unknown one or one lacking the scope in the
  OpenAI-style error every service's API uses (:mod:`sporthub.api_error`).

Services are separate processes behind the proxy: they never import the hub, only talk to it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from jupyterhub.services.auth import HubAuth
from tornado import web

from sporthub.api_error import ApiError

if TYPE_CHECKING:
    from starlette.requests import Request

# known tokens kept at once: 100 accounts with a few tokens each fit many times over
CACHE_ENTRIES = 4096
_AUTH_HEADER = re.compile(r"(?:bearer|token)\s+(\S+)", re.IGNORECASE)

log = logging.getLogger("sporthub.service_auth")

# the custom scopes the hub grants (sporthub.hub.common) and the services check
LLM_SCOPE = "custom:llm:use"  # the gateway: the shared language model
SQUAD_SCOPE = "custom:squad:use"  # the squad: athletes write their own shared data, staff read it


def hub_api_client(api_url: str, api_token: str, timeout: float) -> httpx.AsyncClient:
    """A client for the hub's REST API (``.../hub/api/``) that authenticates as the service."""
    return httpx.AsyncClient(base_url=api_url.rstrip("/") + "/", timeout=timeout,
                             headers={"Authorization": f"token {api_token}"})


async def get_all(client: httpx.AsyncClient, path: str) -> list[dict]:
    """Every item of a paginated list (the hub answers 50 at a time unless asked)."""
    items, offset = [], 0
    while True:
        response = await client.get(
            path, params={"offset": offset, "limit": 200},
            headers={"Accept": "application/jupyterhub-pagination+json"})
        response.raise_for_status()
        page = response.json()
        items.extend(page["items"])
        following = page["_pagination"]["next"]
        if not following:
            return items
        offset = following["offset"]


class HubUnreachable(Exception):
    """The hub did not answer a token check: fail closed, and say so."""


@dataclass(frozen=True)
class TokenOwner:
    """The user a token belongs to, as the hub told it."""

    name: str
    admin: bool
    scopes: frozenset[str]


@dataclass(frozen=True)
class Caller:
    """Who called a service's API, once their token and scope are checked."""

    name: str
    admin: bool


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` (or ``token <token>``) header."""
    match = _AUTH_HEADER.fullmatch(authorization.strip())
    return match.group(1) if match else None


class HubTokenCheck:
    """Resolve a caller's token with the hub (``GET /hub/api/user``), cached for a short time.

    The cache age is the revocation lag: a token the admin revokes keeps working for at most
    ``cache_max_age`` seconds (0: asked every time). HubAuth's own cache is not used: it keeps
    answers forever at age 0, grows without bound, and keeps failures, so a stream of bogus
    tokens would fill it. This one keeps only known tokens, by hash, at most ``CACHE_ENTRIES``.
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
        try:
            model = await self.hub_auth.user_for_token(token, use_cache=False, sync=False)
        except (web.HTTPError, OSError) as e:  # HubAuth's way of saying the hub is unreachable
            raise HubUnreachable(type(e).__name__) from None
        if model and self.cache_max_age > 0:
            self.cache[key] = (time.monotonic(), model)
            while len(self.cache) > CACHE_ENTRIES:
                self.cache.popitem(last=False)  # the oldest
        return model

    async def owner(self, token: str) -> TokenOwner | None:
        """The user behind ``token``; None for a token the hub does not know, or a service's."""
        model = await self.user_model(token)
        if not model or model.get("kind", "user") != "user":
            return None
        return TokenOwner(name=model["name"], admin=bool(model.get("admin")),
                          scopes=frozenset(model.get("scopes", ())))

    async def caller(self, request: Request, scope: str | None, what_for: str) -> Caller:
        """The caller of a request to a service's API, by the token in its Authorization header,
        holding ``scope`` (None: any token of a user). Refused with an :class:`ApiError`: no
        token or an unknown one (401), the scope missing (403, ``what_for`` says who the scope
        is for), the hub not answering (503)."""
        token = bearer_token(request.headers.get("authorization", ""))
        if token is None:
            raise ApiError(
                401,
                "Missing API key: send your JupyterHub token as 'Authorization: Bearer <token>'.",
                "missing_api_key",
            )
        try:
            owner = await self.owner(token)
        except HubUnreachable as e:
            log.warning("token check failed: hub unreachable (%s)", e)
            raise ApiError(503, "JupyterHub is not reachable to check your token; retry shortly.",
                           "hub_unavailable", {"Retry-After": "5"}) from None
        if owner is None:
            raise ApiError(401, "Invalid API key: this token is unknown to JupyterHub or has "
                           "expired.", "invalid_api_key")
        if scope is not None and scope not in owner.scopes:
            raise ApiError(403, f"This token lacks the scope '{scope}': {what_for}",
                           "missing_scope")
        # groups are read with the service's own token (its directory): a server token cannot
        return Caller(name=owner.name, admin=owner.admin)
