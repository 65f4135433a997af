"""Who runs next: a concurrency limit per backend and a fair priority queue in front of it.

Waiting requests are ordered by priority class (higher first), then by *round*, then by arrival.
A user's k-th waiting request gets round ``max(current round, that user's last round) + 1``, so
within a class users take turns: one user with ten requests waiting does not hold back another
with one (round-robin fair queueing). Within a user the order is FIFO.

Queues are sorted lists, so admission, removal and "what is my position" are O(log n) in the
number waiting. The wait estimate (ETA) simulates the backends' slots with the measured service
time (an EWMA per model) - one O(n log slots) pass, recomputed at most twice a second.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from sporthub.gateway.errors import GatewayError

ETA_REFRESH_S = 0.5


@dataclass(eq=False)
class Ticket:
    """One request's place in line, then its slot on a backend."""

    user: str
    priority: int
    model: str
    round: int
    seq: int
    enqueued_at: float = field(default_factory=time.monotonic)
    admitted: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    backend: str | None = None
    started_at: float | None = None
    eta_s: float = 0.0
    # the ETA computed when the ticket joined the queue (what the person is told first); None
    # when it got a slot at once
    eta_given_s: float | None = None

    @property
    def waited_s(self) -> float | None:
        """From arrival to the slot; None while waiting."""
        return None if self.started_at is None else self.started_at - self.enqueued_at

    @property
    def eta_error_s(self) -> float | None:
        """The real wait minus the ETA given on joining (positive: later than told); None if it
        did not wait, has no slot yet, or was given no finite ETA (its backend was starting)."""
        if self.waited_s is None or self.eta_given_s is None or self.eta_given_s == float("inf"):
            return None
        return self.waited_s - self.eta_given_s

    @property
    def key(self) -> tuple[int, int, int]:
        return (-self.priority, self.round, self.seq)


UP, STARTING, DOWN = "up", "starting", "down"


@dataclass(eq=False)
class Pool:
    """A backend's slots.

    A backend that is *starting* (not answered yet, or still loading its model: llama-server's
    and vLLM's 503) gets no requests, but requests wait in line for it; one that is *down*
    (it answered before, and now does not) refuses them.
    """

    name: str
    capacity: int
    models: frozenset[str]
    running: set[Ticket] = field(default_factory=set)
    state: str = UP

    @property
    def up(self) -> bool:
        return self.state == UP

    @property
    def free(self) -> int:
        return self.capacity - len(self.running) if self.up else 0


class Scheduler:
    def __init__(self, pools: list[Pool], *, max_running_per_user: int, max_queued_per_user: int,
                 initial_service_s: float, ewma_alpha: float = 0.2):
        self.pools = {p.name: p for p in pools}
        self.max_running_per_user = max_running_per_user
        self.max_queued_per_user = max_queued_per_user
        self.ewma_alpha = ewma_alpha
        self.initial_service_s = initial_service_s
        self.service_s: dict[str, float] = {}
        self.queues: dict[str, SortedList] = {}
        self.running_by_user: Counter[str] = Counter()
        self.queued_by_user: Counter[str] = Counter()
        self._last_round: dict[str, int] = {}
        self._current_round = 0
        self._seq = itertools.count()
        self._eta_computed_at = 0.0
        self._eta_dirty = True
        self._changed: asyncio.Future | None = None

    def changed(self) -> asyncio.Future:
        """A future resolved at the next change of the queues (waiters then re-read their place)."""
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def _notify(self) -> None:
        self._eta_dirty = True
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    # -- admission ------------------------------------------------------------------------

    def submit(self, user: str, priority: int, model: str) -> Ticket:
        """Take a place in line (or a slot at once). Raises 429/503 when that is not possible."""
        if not self._servable(model):
            raise _backend_down(model)
        if self.queued_by_user[user] >= self.max_queued_per_user:
            raise GatewayError(429, f"You already have {self.max_queued_per_user} requests "
                               "waiting; wait for one to finish.", "too_many_queued",
                               {"Retry-After": "5"})
        round_ = max(self._current_round, self._last_round.get(user, 0)) + 1
        self._last_round[user] = round_
        ticket = Ticket(user=user, priority=priority, model=model, round=round_,
                        seq=next(self._seq))
        self.queues.setdefault(model, SortedList(key=lambda t: t.key)).add(ticket)
        self.queued_by_user[user] += 1
        self._dispatch()
        if ticket.backend is None:
            ticket.eta_given_s = self.eta(ticket)
        return ticket

    async def wait(self, ticket: Ticket, timeout: float) -> str:
        """Wait for a slot; leaving (timeout, cancellation) gives the place up at once."""
        try:
            return await asyncio.wait_for(asyncio.shield(ticket.admitted), timeout)
        except TimeoutError:
            self.withdraw(ticket)
            raise GatewayError(503, f"The assistant is busy: no slot became free within "
                               f"{timeout:.0f} s. Please retry in a minute.", "queue_timeout",
                               {"Retry-After": "60"}) from None
        except asyncio.CancelledError:
            self.withdraw(ticket)
            raise

    def withdraw(self, ticket: Ticket) -> None:
        """Leave the queue, or free the slot if the ticket was already running."""
        if ticket.backend is not None:
            self.release(ticket, succeeded=False)
            return
        queue = self.queues.get(ticket.model)
        if queue is not None and ticket in queue:
            queue.remove(ticket)
            self.queued_by_user[ticket.user] -= 1
            self._notify()
        if not ticket.admitted.done():
            ticket.admitted.cancel()

    def release(self, ticket: Ticket, succeeded: bool) -> None:
        """Free the ticket's slot; a successful run updates the service-time estimate."""
        pool = self.pools.get(ticket.backend or "")
        if pool is None or ticket not in pool.running:
            return
        pool.running.discard(ticket)
        self.running_by_user[ticket.user] -= 1
        if succeeded and ticket.started_at is not None:
            elapsed = time.monotonic() - ticket.started_at
            old = self.service_s.get(ticket.model)
            self.service_s[ticket.model] = (
                elapsed if old is None else old + self.ewma_alpha * (elapsed - old)
            )
        self._dispatch()

    def _dispatch(self) -> None:
        """Give free slots to the best waiting tickets, least-loaded backend first."""
        self._notify()
        while True:
            heads = sorted((q[0] for q in self.queues.values() if q), key=lambda t: t.key)
            for ticket in heads:
                if self.running_by_user[ticket.user] >= self.max_running_per_user:
                    # this user is at their running limit; their head waits, others may go
                    ticket = self._first_runnable(self.queues[ticket.model])
                    if ticket is None:
                        continue
                pool = self._least_loaded(ticket.model)
                if pool is not None:
                    self._start(ticket, pool)
                    break
            else:
                return

    def _first_runnable(self, queue: SortedList) -> Ticket | None:
        for ticket in queue:
            if self.running_by_user[ticket.user] < self.max_running_per_user:
                return ticket
        return None

    def _least_loaded(self, model: str) -> Pool | None:
        pools = [p for p in self.pools.values() if model in p.models and p.free > 0]
        return min(pools, key=lambda p: len(p.running) / p.capacity, default=None)

    def _start(self, ticket: Ticket, pool: Pool) -> None:
        self.queues[ticket.model].remove(ticket)
        self.queued_by_user[ticket.user] -= 1
        self.running_by_user[ticket.user] += 1
        self._current_round = max(self._current_round, ticket.round)
        ticket.backend = pool.name
        ticket.started_at = time.monotonic()
        pool.running.add(ticket)
        ticket.admitted.set_result(pool.name)

    # -- health -----------------------------------------------------------------------------

    def set_up(self, backend: str, up: bool) -> None:
        self.set_state(backend, UP if up else DOWN)

    def set_state(self, backend: str, state: str) -> None:
        pool = self.pools[backend]
        if pool.state == state:
            return
        pool.state = state
        if state == UP:
            self._dispatch()
            return
        self._notify()
        # nobody can serve these any more: tell them now rather than at the queue timeout
        for model, queue in self.queues.items():
            if queue and not self._servable(model):
                for ticket in list(queue):
                    queue.remove(ticket)
                    self.queued_by_user[ticket.user] -= 1
                    ticket.admitted.set_exception(_backend_down(model))

    def _servable(self, model: str) -> bool:
        return any(p.state != DOWN and model in p.models for p in self.pools.values())

    # -- visibility -------------------------------------------------------------------------

    def position(self, ticket: Ticket) -> int:
        """1 for the next in line; 0 once running."""
        queue = self.queues.get(ticket.model)
        if ticket.backend is not None or queue is None or ticket not in queue:
            return 0
        return queue.index(ticket) + 1

    def eta(self, ticket: Ticket) -> float:
        """Seconds until this ticket is expected to get a slot."""
        now = time.monotonic()
        if self._eta_dirty or now - self._eta_computed_at > ETA_REFRESH_S:
            self._estimate(now)
        return ticket.eta_s if ticket.backend is None else 0.0

    def expected_service_s(self, model: str) -> float:
        return self.service_s.get(model, self.initial_service_s)

    def _estimate(self, now: float) -> None:
        """Simulate each model's slots: the next in line takes the slot that frees first."""
        self._eta_computed_at, self._eta_dirty = now, False
        for model, queue in self.queues.items():
            if not queue:
                continue
            service = self.expected_service_s(model)
            pools = [p for p in self.pools.values() if model in p.models and p.up]
            frees = [max(service - (now - t.started_at), 0.0)
                     for p in pools for t in p.running if t.started_at is not None]
            frees += [0.0] * sum(max(p.free, 0) for p in pools)
            if not frees:
                for ticket in queue:
                    ticket.eta_s = float("inf")
                continue
            heapq.heapify(frees)
            for ticket in queue:
                start = heapq.heappop(frees)
                ticket.eta_s = start
                heapq.heappush(frees, start + service)

    def waiting_by_priority(self) -> Counter[int]:
        return Counter(t.priority for q in self.queues.values() for t in q)

    def tickets_of(self, user: str) -> list[Ticket]:
        running = [t for p in self.pools.values() for t in p.running if t.user == user]
        waiting = [t for q in self.queues.values() for t in q if t.user == user]
        return running + waiting


def _backend_down(model: str) -> GatewayError:
    return GatewayError(503, f"Every backend serving '{model}' is down; retry later.",
                        "backend_down", {"Retry-After": "30"})
