"""Ledger rows rebuilt from the audit log when the gateway starts.

A request's audit line is in the file before its answer ends; its ledger row follows a moment
later, in one transaction with the rows of the same batch (bookkeeping.py). A gateway killed in
between (kill -9, the out-of-memory killer) leaves lines without rows, and they are the last lines
of the log: rows are written in the order of their lines. So at start, before the first request,
the log is read from its end back to the newest line whose row is in the ledger, and the rows of
the lines after it are written from them. A line carries every value of its row (audit.py): a
rebuilt row is the row the gateway would have written, and its id, the ledger's primary key, is
checked first, so no row is written twice. A row is pending for ``LOOKBACK_S`` at most (the
batch's wait, then the retries while the database is away): lines that ended longer before the
last one are not read, so a ledger started empty beside an old audit log (a move to PostgreSQL)
does not take in the log's history.

Not covered: a line still in the kernel's cache when the machine itself goes down (the audit log
is not synced to the disk for each request), and a line in a file logrotate moved away in the
moment between a request's end and the kill.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from sporthub.gateway.bookkeeping import BATCH_S
from sporthub.gateway.ledger import RETRY_FOR_S, Ledger, RequestRecord
from sporthub.gateway.retention import audit_entry

log = logging.getLogger("sporthub.gateway")
LOOKBACK_S = BATCH_S + RETRY_FOR_S + 30.0
BLOCK_BYTES = 64 * 1024
# ids asked of the ledger at once
CHUNK = 256
# what a line must hold to give a whole row (the address may have been erased: it stays empty);
# lines written before rows could be rebuilt lack some, and their rows were written before them
_ROW_KEYS = ("time", "request_id", "user", "action", "model", "backend", "prompt_tokens",
             "completion_tokens", "status", "outcome", "stream", "queued_ms", "eta_ms",
             "ttft_ms", "duration_ms")


def recover(ledger: Ledger, audit_path: Path) -> int:
    """Write the rows of the audit log's last lines that have none; how many were written."""
    lost: list[RequestRecord] = []
    chunk: list[RequestRecord] = []
    done, last_end = False, None
    for entry in _entries_from_end(audit_path):
        record = _record(entry)
        if record is not None:
            end = record.started_at + timedelta(milliseconds=record.duration_ms or 0)
            last_end = last_end or end
            if (last_end - end).total_seconds() > LOOKBACK_S:
                record = None
        done = record is None
        if not done:
            chunk.append(record)
        if chunk and (done or len(chunk) == CHUNK):
            done = _take_until_present(ledger, chunk, lost) or done
            chunk = []
        if done:
            break
    if chunk:
        _take_until_present(ledger, chunk, lost)
    if not lost:
        return 0
    written = ledger.insert_missing(lost[::-1])  # oldest first
    log.warning("%d ledger rows rebuilt from the audit log: the gateway had stopped before "
                "writing them", written)
    return written


def _take_until_present(ledger: Ledger, newest_first: list[RequestRecord],
                        lost: list[RequestRecord]) -> bool:
    """Add the records newer than the newest one with a row to ``lost``; True once it is met."""
    present = ledger.ids_present([r.id for r in newest_first])
    for record in newest_first:
        if record.id in present:
            return True
        lost.append(record)
    return False


def _record(entry: dict | None) -> RequestRecord | None:
    if entry is None or any(key not in entry for key in _ROW_KEYS):
        return None
    return RequestRecord(
        id=entry["request_id"], user=entry["user"], endpoint=entry["action"],
        client_ip=entry.get("ip"), started_at=datetime.fromisoformat(entry["time"]),
        model=entry["model"], backend=entry["backend"], stream=entry["stream"],
        prompt_tokens=entry["prompt_tokens"], completion_tokens=entry["completion_tokens"],
        queued_ms=entry["queued_ms"], eta_ms=entry["eta_ms"], ttft_ms=entry["ttft_ms"],
        duration_ms=entry["duration_ms"], status=entry["status"], outcome=entry["outcome"])


def _entries_from_end(path: Path) -> Iterator[dict | None]:
    """The log's lines as JSON, last first; a torn line (the gateway killed while writing it:
    its request had not ended) is skipped, any other that is not a JSON object is None."""
    lines = _lines_from_end(path)
    last = next(lines, None)
    if last is not None and last.endswith(b"\n"):
        yield audit_entry(last)
    for line in lines:
        yield audit_entry(line)


def _lines_from_end(path: Path) -> Iterator[bytes]:
    """The file's non-empty lines (with their newline, if any), last first, read backwards in
    blocks: only the end of a long log is read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        position = os.fstat(fd).st_size
        rest = b""
        while position > 0:
            size = min(BLOCK_BYTES, position)
            position -= size
            data = os.pread(fd, size, position) + rest
            lines = data.splitlines(keepends=True)
            # the first piece may be the end of a line that starts in the previous block
            rest = lines.pop(0) if position > 0 and lines else b""
            for line in reversed(lines):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest
    finally:
        os.close(fd)
