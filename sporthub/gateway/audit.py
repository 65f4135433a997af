"""The audit log: one JSON line per request. Never a token; prompt text only when enabled.

Lines are appended with one ``write`` each, not through ``logging`` (its record, formatting and
handler cost as much again as the line itself, on every request). A line holds every value of the
request's ledger row and is in the file (the OS's page cache) before the answer ends, while the
row is written a moment later, in a batch: a gateway killed in between gets the row back from
its line when it starts again (``recovery.py``).

Each line is appended under the log's lock (``retention.audit_lock``): an erase or the daily
retention rewrites the file under the same lock, so a line is never lost between its reading and
the rename; the file is reopened once it was replaced (as logging's WatchedFileHandler does).
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from sporthub.gateway.ledger import RequestRecord


class AuditLog:
    def __init__(self, path: Path, include_prompts: bool):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.include_prompts = include_prompts
        # who asked what, from where: for the admin only (0600, whatever the umask)
        self._fd = self._open()
        os.chmod(path, 0o600)
        # the lock file of retention.audit_lock, held open: one flock call per line
        self._lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

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
        line = (json.dumps(entry, default=str) + "\n").encode()
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            self._reopen_if_replaced()
            # one write of the whole line: appended whole (O_APPEND), in the kernel's hands when
            # the call returns (a gateway killed right after keeps it)
            while line:
                line = line[os.write(self._fd, line):]
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def _reopen_if_replaced(self) -> None:
        """After a rewrite (retention, an erase) or logrotate's move, write to the new file."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        mine = os.fstat(self._fd)
        if now is None or (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            os.close(self._fd)
            self._fd = self._open()
