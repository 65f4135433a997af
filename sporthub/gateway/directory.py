"""Users' groups and the groups' properties, read from the hub with the gateway's own token.

The gateway's role grants only ``read:users:name``, ``read:users:groups`` and ``read:groups``.
Answers are cached for the same short time as tokens, so an admin's edit in the admin panel
(a group property, a membership) takes effect within that time.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from sporthub.service_auth import hub_api_client


class HubDirectory:
    def __init__(self, api_url: str, api_token: str, cache_s: float):
        self.client = hub_api_client(api_url, api_token, timeout=10)
        self.cache_s = cache_s
        self._groups: dict[str, tuple[float, dict]] = {}
        self._members: dict[str, tuple[float, list[str]]] = {}

    async def group_properties_of(self, user: str) -> dict[str, dict]:
        """``{group: properties}`` for each group the user is in."""
        return {name: await self._properties_of(name) for name in await self._groups_of(user)}

    def cached_groups_of(self, user: str) -> list[str]:
        return self._members.get(user, (0.0, []))[1]

    async def _groups_of(self, user: str) -> list[str]:
        fetched_at, groups = self._members.get(user, (0.0, []))
        if time.monotonic() - fetched_at > self.cache_s:
            response = await self.client.get(f"users/{quote(user, safe='')}")
            response.raise_for_status()
            groups = response.json().get("groups") or []
            self._members[user] = (time.monotonic(), groups)
        return groups

    async def _properties_of(self, group: str) -> dict:
        fetched_at, properties = self._groups.get(group, (0.0, {}))
        if time.monotonic() - fetched_at > self.cache_s:
            response = await self.client.get(f"groups/{quote(group, safe='')}")
            response.raise_for_status()
            properties = response.json().get("properties") or {}
            self._groups[group] = (time.monotonic(), properties)
        return properties

    async def close(self) -> None:
        await self.client.aclose()
