"""Prometheus metrics of the gateway, in a registry of its own (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


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
        self.ttft = Histogram("sporthub_llm_time_to_first_token_seconds", "Time from arrival to "
                              "the first streamed token", buckets=TTFT_BUCKETS, registry=r)
        self.tokens_by_user = Counter("sporthub_llm_user_tokens", "Tokens by user",
                                      ["user", "kind"], registry=r)
        self.tokens_by_group = Counter("sporthub_llm_group_tokens", "Tokens by group (a user in "
                                       "two groups counts in both)", ["group", "kind"], registry=r)
        self.requests = Counter("sporthub_llm_requests", "Requests by outcome", ["outcome"],
                                registry=r)
        self.errors = Counter("sporthub_llm_errors", "Failed requests by kind", ["kind"],
                              registry=r)
