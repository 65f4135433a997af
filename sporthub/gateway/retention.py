"""Names out of the ledger and the audit log: when a person is erased, and when rows grow old.

Both keep their counts (tokens, status, outcome, times) for accounting; what goes is what points
at a person: the name becomes its pseudonym (``sporthub.pseudonym``, the same in both), the client
address and the prompt texts (``SPORTHUB_GATEWAY_AUDIT_PROMPTS``) are removed.

- :func:`pseudonymise_person`: every row and line of one person (``sporthub users erase``).
- :func:`apply_retention`: every row and line older than ``SPORTHUB_AUDIT_RETENTION_DAYS``; the
  gateway runs it once a day (:class:`RetentionTask`). Budgets use the current UTC day and the
  usage page the last 14 days, so a retention of 14 days or more changes neither.

The audit log is rewritten whole (a new file, renamed over the old one) under a lock the gateway
also takes for each line it appends (:func:`audit_lock`), so no line is lost or half-written; the
gateway's handler reopens the file once it has been replaced. In SQLite, rows are rewritten with
``secure_delete`` on and the file is vacuumed after: freed pages hold no name. In PostgreSQL the
table is vacuumed, so no dead row version keeps the name either.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gzip
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, or_, select, text, update

from sporthub import compaction
from sporthub.gateway.ledger import RequestRow
from sporthub.pseudonym import PREFIX, Pseudonyms

log = logging.getLogger("sporthub.gateway")
DAY_S = 24 * 3600.0


@dataclass
class Changed:
    ledger_rows: int = 0
    audit_lines: int = 0


# -- the ledger -----------------------------------------------------------------------------


def ledger_engine(url: str) -> Engine:
    """An engine whose SQLite connections overwrite what they delete (``secure_delete``)."""
    sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {},
                           pool_pre_ping=not sqlite)
    if sqlite:
        @event.listens_for(engine, "connect")
        def _secure(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA secure_delete = ON")
    return engine


def compact(engine: Engine) -> None:
    """Old versions of rewritten rows out of the database file (SQLite) or table (PostgreSQL)."""
    statement = "VACUUM" if engine.dialect.name == "sqlite" else f"VACUUM {RequestRow.__tablename__}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(statement))


def ledger_rows_of(engine: Engine, name: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(RequestRow.__table__).where(RequestRow.user == name)
                            .order_by(RequestRow.started_at)).mappings().all()
    return [dict(r) for r in rows]


def pseudonymise_ledger(engine: Engine, name: str, pseudonyms: Pseudonyms) -> int:
    """An erase: the person's rows under the pseudonym, and the table rewritten, so that no
    old row version keeps the name (sporthub.compaction: a plain VACUUM does not wipe it)."""
    with engine.begin() as conn:
        count = conn.execute(update(RequestRow).where(RequestRow.user == name)
                             .values(user=pseudonyms(name), client_ip=None)).rowcount
    if count:
        compaction.compact_tables(engine, [RequestRow.__tablename__])
    return count


def ledger_retention(engine: Engine, cutoff: datetime, pseudonyms: Pseudonyms) -> int:
    old = (RequestRow.started_at < cutoff,
           or_(~RequestRow.user.startswith(PREFIX, autoescape=True),
               RequestRow.client_ip.is_not(None)))
    count = 0
    with engine.begin() as conn:
        names = conn.execute(select(RequestRow.user).where(*old).distinct()).scalars().all()
        for name in names:
            count += conn.execute(update(RequestRow).where(RequestRow.user == name, *old)
                                  .values(user=pseudonyms(name), client_ip=None)).rowcount
    if count:
        compact(engine)
    return count


# -- the audit log --------------------------------------------------------------------------


def audit_files(path: Path) -> list[Path]:
    """The audit log and what logrotate made of it (``.1``, ``.2.gz`` ...)."""
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir()
                  if p.name == path.name or (p.name.startswith(path.name + ".")
                                             and not p.name.endswith((".lock", ".partial"))))


@contextlib.contextmanager
def audit_lock(path: Path) -> Iterator[None]:
    """Held by the gateway while it appends a line and by whoever rewrites the log."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _open(path: Path, mode: str):
    return gzip.open(path, mode + "t", encoding="utf-8") if path.suffix == ".gz" \
        else path.open(mode, encoding="utf-8")


def audit_lines_of(path: Path, name: str) -> list[str]:
    lines = []
    for file in audit_files(path):  # none where the gateway never ran
        with audit_lock(path), _open(file, "r") as f:
            for line in f:
                entry = audit_entry(line)
                if entry is not None and entry.get("user") == name:
                    lines.append(line.rstrip("\n"))
    return lines


def audit_entry(line: str | bytes) -> dict | None:
    """One audit line as a JSON object; None for anything else (a torn line)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _needs_change(file: Path, change: Callable[[dict], bool]) -> bool:
    with _open(file, "r") as f:
        return any((entry := audit_entry(line)) is not None and change(entry) for line in f)


def _rewrite(path: Path, change: Callable[[dict], bool]) -> int:
    """Apply ``change`` (True: it changed the entry) to every line of every audit file."""
    changed = 0
    # a first look without the lock: the gateway waits for the lock to append a line, so it is
    # taken only when some file has something to change (retention runs daily, mostly idle)
    files = [file for file in audit_files(path) if _needs_change(file, change)]
    if not files:
        return 0
    with audit_lock(path):
        for file in files:
            with _open(file, "r") as f:
                lines = f.readlines()
            out, here = [], 0
            for line in lines:
                entry = audit_entry(line)
                if entry is not None and change(entry):
                    here += 1
                    out.append(json.dumps(entry, default=str) + "\n")
                else:
                    out.append(line)
            if not here:
                continue
            partial = file.with_name(file.name + ".partial")
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            with _open(partial, "w") as f:
                f.writelines(out)
                f.flush()
            with partial.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(partial, file)
            changed += here
    return changed


def _strip(entry: dict, pseudonyms: Pseudonyms) -> None:
    entry["user"] = pseudonyms(entry["user"])
    entry["ip"] = None
    if "messages" in entry:
        entry["messages"] = None  # the prompt texts: the person's own words


def pseudonymise_audit(path: Path, name: str, pseudonyms: Pseudonyms) -> int:
    def change(entry: dict) -> bool:
        if entry.get("user") != name:
            return False
        _strip(entry, pseudonyms)
        return True

    return _rewrite(path, change)


def audit_retention(path: Path, cutoff: datetime, pseudonyms: Pseudonyms) -> int:
    def change(entry: dict) -> bool:
        try:
            moment = datetime.fromisoformat(entry["time"])
        except (KeyError, TypeError, ValueError):
            return False
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        user = entry.get("user")
        done = (not user or user.startswith(PREFIX)) and entry.get("ip") is None \
            and not entry.get("messages")
        if moment >= cutoff or done:
            return False
        if user:
            _strip(entry, pseudonyms)
        else:
            entry["ip"] = None
            if "messages" in entry:
                entry["messages"] = None
        return True

    return _rewrite(path, change)


# -- both -----------------------------------------------------------------------------------


def pseudonymise_person(engine: Engine, audit_path: Path, name: str,
                        pseudonyms: Pseudonyms) -> Changed:
    return Changed(pseudonymise_ledger(engine, name, pseudonyms),
                   pseudonymise_audit(audit_path, name, pseudonyms))


def apply_retention(engine: Engine, audit_path: Path, days: int, pseudonyms: Pseudonyms,
                    now: datetime | None = None) -> Changed:
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    return Changed(ledger_retention(engine, cutoff, pseudonyms),
                   audit_retention(audit_path, cutoff, pseudonyms))


class RetentionTask:
    """Runs :func:`apply_retention` at start and then once a day, inside the gateway.

    ``clock`` (wall time) and ``sleep`` are parameters so a test can move time forward."""

    def __init__(self, ledger_url: str, audit_path: Path, days: int, pseudonyms: Pseudonyms,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], object] = asyncio.sleep, interval_s: float = DAY_S):
        self.ledger_url, self.audit_path, self.days = ledger_url, audit_path, days
        self.pseudonyms, self.clock, self.sleep, self.interval_s = pseudonyms, clock, sleep, interval_s
        self.runs = 0

    def run_once(self) -> Changed:
        engine = ledger_engine(self.ledger_url)
        try:
            started = time.monotonic()
            changed = apply_retention(engine, self.audit_path, self.days, self.pseudonyms,
                                      self.clock())
        finally:
            engine.dispose()
        self.runs += 1
        if changed.ledger_rows or changed.audit_lines:
            log.info("retention (%d days): %d ledger rows and %d audit lines lost name and "
                     "address (%.1f s)", self.days, changed.ledger_rows, changed.audit_lines,
                     time.monotonic() - started)
        return changed

    async def forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:  # a failed run is retried the next day; the gateway goes on
                log.exception("retention run failed")
            await self.sleep(self.interval_s)
