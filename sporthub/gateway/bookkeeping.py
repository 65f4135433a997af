"""What the gateway writes down about each request: one ledger row, one audit line, its metrics.

A request hands its record over once, at its end (``write_row``), whatever its outcome; the row is
written in a task of its own so that a request cancelled by its caller still gets it, and the
gateway waits for those writes at shutdown (``close``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from sporthub.gateway.audit import AuditLog
from sporthub.gateway.directory import HubDirectory
from sporthub.gateway.ledger import Ledger, RequestRecord
from sporthub.gateway.metrics import GatewayMetrics
from sporthub.gateway.scheduler import Ticket
from sporthub.pseudonym import Pseudonyms

log = logging.getLogger("sporthub.gateway")
ROW_WAIT_S = 5.0


class Bookkeeping:
    def __init__(self, ledger: Ledger, audit: AuditLog, metrics: GatewayMetrics,
                 directory: HubDirectory, pseudonyms: Pseudonyms):
        self.ledger = ledger
        self.audit = audit
        self.metrics = metrics
        # names never reach Prometheus: its series outlive an erase (its own retention)
        self.pseudonyms = pseudonyms
        self.directory = directory  # the groups a user's tokens are counted under
        self.in_flight = 0  # requests between admission and their settlement
        self._pending: set[asyncio.Task] = set()

    def slot_given(self, ticket: Ticket) -> None:
        """The wait's metrics, from the moment the scheduler gave the slot."""
        self.metrics.queue_wait.observe(ticket.waited_s)
        if ticket.eta_error_s is not None:
            self.metrics.observe_eta_error(ticket.eta_error_s)

    def write_row(self, record: RequestRecord, text) -> Awaitable:
        """The one ledger row, audit line and metrics update of a request.

        Started at once, in a task of its own, so a request cancelled by its client still gets
        its row; what is returned is the wait for it, which a cancelled caller may skip.
        """
        self._count(record)
        self.audit.write(record, text)
        task = self.spawn(self.ledger.record(record))
        # normally written before the answer ends; while the database restarts the write
        # goes on retrying in the background rather than holding the caller
        return asyncio.wait({task}, timeout=ROW_WAIT_S)

    def spawn(self, coroutine) -> asyncio.Task:
        """Work that must finish even when the request that started it is cancelled."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    def _count(self, record: RequestRecord) -> None:
        m = self.metrics
        m.requests.labels(record.outcome).inc()
        if record.outcome != "ok":
            m.errors.labels(record.outcome).inc()
        if record.ttft_ms is not None:
            m.ttft.observe(record.ttft_ms / 1000)
        for kind, n in (("prompt", record.prompt_tokens), ("completion", record.completion_tokens)):
            if n:
                m.tokens_by_user.labels(self.pseudonyms(record.user), kind).inc(n)
                for group in self.directory.cached_groups_of(record.user):
                    m.tokens_by_group.labels(group, kind).inc(n)

    async def close(self, settle_s: float) -> None:
        """At shutdown uvicorn cancels the open requests: let them settle and write their rows."""
        deadline = time.monotonic() + settle_s
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        self.ledger.close()
