"""Who is calling, and from where: the caller's own hub token, resolved by the hub and checked for
the LLM scope (the helper every service shares, ``sporthub.service_auth``), and the caller's
address as our own proxies saw it (``sporthub.forwarded``, the same rule as the hub's sign-in)."""

from __future__ import annotations

from starlette.requests import Request

from sporthub.forwarded import client_ip
from sporthub.service_auth import CACHE_ENTRIES, LLM_SCOPE, Caller, HubTokenCheck

__all__ = ["CACHE_ENTRIES", "LLM_SCOPE", "Caller", "HubTokenAuth", "client_ip"]


class HubTokenAuth(HubTokenCheck):
    """The shared token check, with the LLM scope unless asked otherwise."""

    async def caller(self, request: Request, scope: str | None = LLM_SCOPE,
                     what_for: str = "ask your admin for access to the AI assistant.") -> Caller:
        return await super().caller(request, scope, what_for)
