"""Who is calling, and from where: the caller's own hub token, resolved by the hub and checked for
the LLM scope (the helper every service shares, ``sporthub.service_auth``), and the caller's
address as our own proxies saw it (``sporthub.forwarded``, the same rule as the hub's sign-in)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.requests import Request

from sporthub.forwarded import client_address
from sporthub.gateway.errors import GatewayError
from sporthub.service_auth import CACHE_ENTRIES, HubTokenCheck, HubUnreachable, bearer_token

__all__ = ["CACHE_ENTRIES", "LLM_SCOPE", "Caller", "HubTokenAuth", "client_ip"]

LLM_SCOPE = "custom:llm:use"

log = logging.getLogger("sporthub.gateway")


@dataclass(frozen=True)
class Caller:
    name: str
    admin: bool


class HubTokenAuth(HubTokenCheck):
    """The shared token check, answering in the gateway's OpenAI-style errors."""

    async def caller(self, request: Request, scope: str | None = LLM_SCOPE) -> Caller:
        token = bearer_token(request.headers.get("authorization", ""))
        if token is None:
            raise GatewayError(
                401,
                "Missing API key: send your JupyterHub token as 'Authorization: Bearer <token>'.",
                "missing_api_key",
            )
        try:
            owner = await self.owner(token)
        except HubUnreachable as e:
            log.warning("token check failed: hub unreachable (%s)", e)
            raise GatewayError(503, "JupyterHub is not reachable to check your token; retry shortly.",
                               "hub_unavailable", {"Retry-After": "5"}) from None
        if owner is None:
            raise GatewayError(401, "Invalid API key: this token is unknown to JupyterHub or has "
                               "expired.", "invalid_api_key")
        if scope is not None and scope not in owner.scopes:
            raise GatewayError(403, f"This token lacks the scope '{scope}': ask your admin for "
                               "access to the AI assistant.", "missing_scope")
        # groups are read with the gateway's own token (directory.py): a server token cannot
        return Caller(name=owner.name, admin=owner.admin)


def client_ip(request: Request, trusted_proxies: list[str], hops: int = 1) -> str | None:
    """The caller's address: X-Forwarded-For is believed only from a proxy we trust, and only
    the hops our own proxies appended (sporthub.forwarded, the same rule as the hub's)."""
    # on loopback only the proxy's own connection (the hub's user) may name the client: a
    # person's process calling the gateway's port directly is logged as its own address. The
    # owner of the connection is asked of the kernel by its four ends (netlink, ~0.3 ms)
    peer, port = (request.client.host, request.client.port) if request.client else (None, None)
    server = request.scope.get("server")
    local = (server[0], server[1]) if server and server[1] is not None else None
    return client_address(peer, request.headers.get("x-forwarded-for"), trusted_proxies, hops,
                          port, local)
