"""What a user may use: daily token budget and queue priority, from their groups.

Defaults per group come from the settings (``SPORTHUB_LLM_GROUPS``); the hub's group properties
``llm_tokens_per_day`` and ``llm_priority`` override them, so the admin edits them in the admin
panel. A user in several groups gets the most generous value of each. The no-group budget
(``SPORTHUB_LLM_TOKENS_PER_DAY``) applies only to someone whose groups set no budget: it is not
among the values compared, or a group could never be given less than it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from sporthub.gateway.directory import HubDirectory
from sporthub.gateway.errors import GatewayError
from sporthub.settings import Settings

log = logging.getLogger("sporthub.gateway")


@dataclass(frozen=True)
class Policy:
    tokens_per_day: int
    priority: int


def resolve(settings: Settings, group_properties: dict[str, dict]) -> Policy:
    """The policy for a user in these groups (``{group name: hub group properties}``)."""
    budgets = []
    priorities = [0]
    for name, properties in group_properties.items():
        default = settings.llm_groups.get(name)
        budget = _int(properties.get("llm_tokens_per_day"))
        if budget is None and default is not None:
            budget = default.llm_tokens_per_day
        priority = _int(properties.get("llm_priority"))
        if priority is None and default is not None:
            priority = default.llm_priority
        if budget is not None:
            budgets.append(budget)
        if priority is not None:
            priorities.append(priority)
    return Policy(tokens_per_day=max(budgets, default=settings.llm_tokens_per_day),
                  priority=max(priorities))


class PolicyLookup:
    """A user's policy now: their groups and the groups' properties from the hub (cached briefly
    by the directory), resolved with the settings' defaults."""

    def __init__(self, settings: Settings, directory: HubDirectory):
        self.settings = settings
        self.directory = directory

    async def __call__(self, user: str) -> Policy:
        try:
            groups = await self.directory.group_properties_of(user)
        except httpx.HTTPError as e:
            log.warning("reading %s's groups failed: %s %s", user, type(e).__name__,
                        getattr(getattr(e, "response", None), "status_code", ""))
            raise GatewayError(503, "JupyterHub is not reachable to read your groups; retry "
                               "shortly.", "hub_unavailable", {"Retry-After": "5"}) from None
        return resolve(self.settings, groups)


def _int(value) -> int | None:
    """A group property as an integer; the admin panel may store numbers as strings."""
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def budget_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Budgets are per UTC day: the start of today and the moment the budget resets."""
    now = now or datetime.now(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)
