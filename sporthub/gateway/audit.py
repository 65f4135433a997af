"""The audit log: one JSON line per request. Never a token; prompt text only when enabled.

A line holds every value of the request's ledger row and is in the file (the OS's page cache)
before the answer ends, while the row is written a moment later, in a batch: a gateway killed in
between gets the row back from its line when it starts again (``recovery.py``).

Each line is appended under the log's lock (``retention.audit_lock``): an erase or the daily
retention rewrites the file under the same lock, so a line is never lost between its reading and
the rename; the handler reopens the file once it was replaced.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from logging.handlers import WatchedFileHandler
from pathlib import Path

from sporthub.gateway.ledger import RequestRecord


class AuditLog:
    def __init__(self, path: Path, include_prompts: bool):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # who asked what, from where: for the admin only (0600, whatever the umask)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        os.chmod(path, 0o600)
        self.include_prompts = include_prompts
        self.logger = logging.getLogger("sporthub.gateway.audit")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        # WatchedFileHandler reopens the file after logrotate moves it
        handler = WatchedFileHandler(path, encoding="utf-8")
        self.logger.handlers = [handler]
        # the lock file of retention.audit_lock, held open: one flock call per line
        self._lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def write(self, record: RequestRecord, messages: list | None = None) -> None:
        entry = {
            "time": record.started_at.isoformat(),
            "request_id": record.id,
            "user": record.user,
            "ip": record.client_ip,
            "action": record.endpoint,
            "model": record.model,
            "backend": record.backend,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "status": record.status,
            "outcome": record.outcome,
            # the rest of the ledger row, so that the row can be rebuilt from the line
            "stream": record.stream,
            "queued_ms": record.queued_ms,
            "eta_ms": record.eta_ms,
            "ttft_ms": record.ttft_ms,
            "duration_ms": record.duration_ms,
        }
        if self.include_prompts and messages is not None:
            entry["messages"] = messages
        line = json.dumps(entry, default=str)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            self.logger.info(line)
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
