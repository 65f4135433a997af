"""Who is calling: the caller's own hub token, resolved by the hub and checked for the LLM scope."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from jupyterhub.services.auth import HubAuth
from starlette.requests import Request
from tornado import web

from sporthub.gateway.errors import GatewayError

LLM_SCOPE = "custom:llm:use"
_AUTH_HEADER = re.compile(r"(?:bearer|token)\s+(\S+)", re.IGNORECASE)

log = logging.getLogger("sporthub.gateway")


@dataclass(frozen=True)
class Caller:
    name: str
    admin: bool


class HubTokenAuth:
    """Resolve bearer tokens with the hub (``GET /hub/api/user``), cached for a short time.

    The cache age is the revocation lag: a token the admin revokes keeps working for at most
    ``cache_max_age`` seconds.
    """

    def __init__(self, api_url: str, api_token: str, cache_max_age: int):
        self.hub_auth = HubAuth(api_url=api_url, api_token=api_token, cache_max_age=cache_max_age)

    async def caller(self, request: Request, scope: str | None = LLM_SCOPE) -> Caller:
        match = _AUTH_HEADER.fullmatch(request.headers.get("authorization", "").strip())
        if not match:
            raise GatewayError(
                401,
                "Missing API key: send your JupyterHub token as 'Authorization: Bearer <token>'.",
                "missing_api_key",
            )
        try:
            model = await self.hub_auth.user_for_token(match.group(1), sync=False)
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
