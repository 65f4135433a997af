"""What the gateway writes down about each request: one ledger row, one audit line, its metrics.

A request hands its record over once, at its end (``write_row``), whatever its outcome, after its
slot and its budget reservation were settled in memory. The audit line is written there and then
(it holds the whole row); the row goes to one task of its own, which writes the rows handed over
within ``BATCH_S`` in one transaction, each row whole or not at all: a commit costs about as much
CPU as 15 rows, and a disk's flush several ms, so rows written one by one made every answer end
later and cost the gateway about a fifth of its CPU per request. The answer does not wait for
its row: a gateway killed before the commit gets the row back from the audit line when it starts
again (``recovery.py``); one stopped normally writes what is left (``close``). ``pending`` (the
``sporthub_llm_ledger_pending_rows`` gauge) counts the rows not written yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sporthub.gateway.audit import AuditLog
from sporthub.gateway.directory import HubDirectory
from sporthub.gateway.ledger import Ledger, RequestRecord
from sporthub.gateway.metrics import GatewayMetrics
from sporthub.gateway.scheduler import Ticket
from sporthub.pseudonym import Pseudonyms

log = logging.getLogger("sporthub.gateway")
# how long a row may wait for others to share its commit (a reader of the ledger, the usage page,
# sees it this much later)
BATCH_S = 0.5
BATCH_ROWS = 500


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
        self._rows: list[RequestRecord] = []  # handed over, not yet in a transaction
        self._writing = 0  # rows in the transaction under way
        self._writer: asyncio.Task | None = None
        self._hurry = asyncio.Event()  # set at shutdown: no more waiting for a batch to fill

    @property
    def pending(self) -> int:
        """Rows handed over and not written yet."""
        return len(self._rows) + self._writing

    def slot_given(self, ticket: Ticket) -> None:
        """The wait's metrics, from the moment the scheduler gave the slot."""
        self.metrics.queue_wait.observe(ticket.waited_s)
        if ticket.eta_error_s is not None:
            self.metrics.observe_eta_error(ticket.eta_error_s)

    def write_row(self, record: RequestRecord, text) -> None:
        """The one ledger row, audit line and metrics update of a request: the audit line and
        the metrics now, the row queued for the writer task (which nothing cancels)."""
        self._count(record)
        self.audit.write(record, text)
        self._rows.append(record)
        if self._writer is None:
            self._writer = self.spawn(self._write_rows())

    async def _write_rows(self) -> None:
        """Write the queued rows, one transaction for all those queued, until none is left."""
        try:
            while self._rows:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), BATCH_S)
                batch, self._rows = self._rows[:BATCH_ROWS], self._rows[BATCH_ROWS:]
                self._writing = len(batch)
                try:
                    await self.ledger.record_many(batch)
                except Exception:
                    # the database refused them or stayed away too long (logged with the ids)
                    log.exception("%d ledger rows could not be written", len(batch))
                finally:
                    self._writing = 0
        finally:
            self._writer = None

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
        self._hurry.set()
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        while self._pending:  # a request settling meanwhile may start a writer again
            await asyncio.gather(*self._pending, return_exceptions=True)
        self.ledger.close()
