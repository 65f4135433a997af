"""Prometheus metrics of the gateway, in a registry of its own (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
# how far a wait was from the ETA shown when the request joined the queue; below a second
# nobody notices, and the shown ETA is whole seconds anyway
ETA_ERROR_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
LATE, EARLY = "late", "early"


class GatewayMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_length = Gauge("sporthub_llm_queue_length", "Requests waiting for a slot",
                                  ["priority"], registry=r)
        self.running = Gauge("sporthub_llm_running", "Requests being served", ["backend"],
                             registry=r)
        self.backend_up = Gauge("sporthub_llm_backend_up", "1 if the backend answers its health "
                                "check", ["backend"], registry=r)
        self.queue_wait = Histogram("sporthub_llm_queue_wait_seconds", "Time from arrival to a "
                                    "slot", buckets=WAIT_BUCKETS, registry=r)
        # a signed error in a histogram of magnitudes: one series per sign. Summed over
        # `direction`, the buckets give the absolute error's quantiles; the late sum minus the
        # early sum over the count is the mean bias (positive: people wait longer than told)
        self.eta_error = Histogram("sporthub_llm_queue_eta_error_seconds", "How far a queued "
                                   "request's real wait was from the ETA it was given on joining "
                                   "the queue; late: it waited longer than told",
                                   ["direction"], buckets=ETA_ERROR_BUCKETS, registry=r)
        for direction in (LATE, EARLY):
            self.eta_error.labels(direction)  # both series exist from the start, at 0
        self.ttft = Histogram("sporthub_llm_time_to_first_token_seconds", "Time from arrival to "
                              "the first streamed token", buckets=TTFT_BUCKETS, registry=r)
        self.tokens_by_user = Counter("sporthub_llm_user_tokens", "Tokens by person, labelled "
                                      "with their pseudonym (sporthub.pseudonym), never the name",
                                      ["user", "kind"], registry=r)
        self.tokens_by_group = Counter("sporthub_llm_group_tokens", "Tokens by group (a user in "
                                       "two groups counts in both)", ["group", "kind"], registry=r)
        self.requests = Counter("sporthub_llm_requests", "Requests by outcome", ["outcome"],
                                registry=r)
        self.ledger_pending = Gauge("sporthub_llm_ledger_pending_rows", "Ledger rows of "
                                    "finished requests not written yet (a few at most; growing "
                                    "while the database is away)", registry=r)
        self.errors = Counter("sporthub_llm_errors", "Failed requests by kind", ["kind"],
                              registry=r)

    def observe_eta_error(self, error_s: float) -> None:
        """``error_s`` = the real wait minus the ETA given (positive: later than told)."""
        self.eta_error.labels(LATE if error_s >= 0 else EARLY).observe(abs(error_s))
