"""Tokens used per user per UTC day, kept in memory and seeded from the ledger.

The ledger is the truth: after a restart each user's count is summed from it again, so budgets
survive restarts. In between, the hot path never touches the database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sporthub.gateway.ledger import Ledger
from sporthub.gateway.policy import budget_window


class TokenCounter:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._used: dict[tuple[str, datetime], int] = {}

    async def used_today(self, user: str) -> int:
        day, _ = budget_window()
        key = (user, day)
        if key not in self._used:
            used = await self.ledger.tokens_since(user, day)
            self._used = {k: v for k, v in self._used.items() if k[1] == day}  # drop old days
            self._used.setdefault(key, used)
        return self._used[key]

    def add(self, user: str, tokens: int, when: datetime | None = None) -> None:
        day, _ = budget_window(when or datetime.now(UTC))
        if (user, day) in self._used:
            self._used[(user, day)] += tokens
