"""Who is staff, whom they may read, and who is a minor: from the hub's groups and properties.

Set by the admin in the hub's admin panel (group properties), read with the service's own token
(``list:groups``, ``read:groups``: names, members, properties; never ``admin:users``):

* ``squad_read: true`` on a group: its members are staff of the squads they belong to: they read
  the sharing athletes who share a group with them (a squad is a group holding its athletes and
  its staff), except the club-wide role groups (``athletes``, ``scientists``, ``priority``), which
  hold the whole club and so are no squad.
* ``squad_read: "club"``: club-wide staff, who read every sharing athlete.
* ``scientists`` without a ``squad_read`` property counts as club-wide staff: an existing
  installation's groups already have properties and never get new defaults, and its scientists
  are its staff. ``squad_read: false`` on it turns that off.
* ``squad_minor: true`` on a group: its members are minors, who share only once an admin has
  recorded their guardian's consent.

A hub admin is not staff unless in such a group. Answers are cached for the same short time as
tokens, so an admin's change takes effect within it; a refusal is checked again against the hub
first, so a grant (someone made staff, an athlete added to a squad) takes effect at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from sporthub.service_auth import get_all, hub_api_client

# groups that hold the whole club by role: being in one together makes no squad
CLUB_GROUPS = frozenset({"athletes", "scientists", "priority"})
DEFAULT_STAFF_GROUP = "scientists"
T = TypeVar("T")
# a refusal asks the hub again when what it knows is older than this (one request a second at
# most, however often someone who is not staff asks)
REFUSAL_RECHECK_S = 1.0


@dataclass(frozen=True)
class Group:
    name: str
    users: frozenset[str]
    properties: dict

    @property
    def staff(self) -> str | None:
        """None, "squad" or "club"."""
        value = self.properties.get("squad_read")
        if value is None and self.name == DEFAULT_STAFF_GROUP:
            return "club"
        if value == "club":
            return "club"
        return "squad" if value is True or value == "true" else None

    @property
    def minor(self) -> bool:
        return self.properties.get("squad_minor") in (True, "true")


def _staff_kind(user: str, groups: list[Group]) -> str | None:
    kinds = {g.staff for g in groups if user in g.users} - {None}
    return "club" if "club" in kinds else ("squad" if kinds else None)


def _share_a_squad(staff: str, athlete: str, groups: list[Group]) -> bool:
    return any(staff in g.users and athlete in g.users and g.name not in CLUB_GROUPS
               and g.staff is None for g in groups)


class Directory:
    def __init__(self, api_url: str, api_token: str, cache_s: float):
        self.client = hub_api_client(api_url, api_token, timeout=10)
        self.cache_s = cache_s
        self._groups: tuple[float, list[Group]] = (0.0, [])

    async def groups(self, max_age_s: float | None = None) -> list[Group]:
        fetched_at, groups = self._groups
        age = time.monotonic() - fetched_at
        if fetched_at and age <= (self.cache_s if max_age_s is None else max_age_s):
            return groups
        groups = [Group(g["name"], frozenset(g.get("users") or ()), g.get("properties") or {})
                  for g in await get_all(self.client, "groups")]
        self._groups = (time.monotonic(), groups)
        return groups

    async def _granted(self, rule: Callable[[list[Group]], T]) -> T:
        """``rule`` on the cached groups; a refusal (falsy) is checked against the hub as it is
        now: a grant is not held back by the cache, a revocation takes up to cache_s, as a
        token's does."""
        return rule(await self.groups()) or rule(await self.groups(REFUSAL_RECHECK_S))

    async def staff_kind(self, user: str) -> str | None:
        return await self._granted(partial(_staff_kind, user))

    async def may_read(self, staff: str, athlete: str) -> bool:
        kind = await self.staff_kind(staff)
        if kind == "club":
            return True
        if kind is None or staff == athlete:
            return False
        return await self._granted(partial(_share_a_squad, staff, athlete))

    async def is_minor(self, user: str) -> bool:
        return any(g.minor and user in g.users for g in await self.groups())

    async def close(self) -> None:
        await self.client.aclose()
