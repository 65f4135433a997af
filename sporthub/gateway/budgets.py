"""Tokens used per user per UTC day, kept in memory and seeded from the ledger, with reservations.

The ledger is the truth: after a restart each user's count is summed from it again, so budgets
survive restarts. In between, the hot path never touches the database.

A request reserves what it may cost (prompt estimate + max_tokens) when it is admitted, so six
parallel requests of someone with one token left cannot all pass; at the end the reservation is
replaced by the real usage (or simply dropped when nothing was used).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from sporthub.gateway.errors import GatewayError
from sporthub.gateway.ledger import Ledger
from sporthub.gateway.policy import budget_window


class TokenCounter:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._used: dict[tuple[str, datetime], int] = {}
        self.reserved: Counter[str] = Counter()

    async def used_today(self, user: str) -> int:
        """Tokens used today, without what running requests have reserved."""
        day, _ = budget_window()
        key = (user, day)
        if key not in self._used:
            try:
                used = await self.ledger.tokens_since(user, day)
            except SQLAlchemyError as e:
                raise GatewayError(503, "The usage ledger is not reachable; retry shortly.",
                                   "ledger_unavailable", {"Retry-After": "10"}) from e
            self._used = {k: v for k, v in self._used.items() if k[1] == day}  # drop old days
            self._used.setdefault(key, used)
        return self._used[key]

    def peek(self, user: str) -> int:
        """Today's count as last read (0 before the first read)."""
        day, _ = budget_window()
        return self._used.get((user, day), 0)

    async def available(self, user: str, budget: int) -> int:
        """What is left of today's budget once the running requests' reservations are counted."""
        return budget - await self.used_today(user) - self.reserved[user]

    def reserve(self, user: str, tokens: int) -> None:
        self.reserved[user] += tokens

    def settle(self, user: str, reserved: int, used: int, when: datetime | None = None) -> None:
        """Replace a reservation by the tokens really used."""
        self.reserved[user] -= reserved
        if self.reserved[user] <= 0:
            del self.reserved[user]
        day, _ = budget_window(when or datetime.now(UTC))
        if (user, day) in self._used:
            self._used[(user, day)] += used
