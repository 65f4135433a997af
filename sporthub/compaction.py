"""After an erase, no byte of what was deleted or replaced may stay in a database's files.

SQLite keeps a deleted row's bytes in free pages until they are reused, unless the connection
that deleted it had ``PRAGMA secure_delete`` on; ``VACUUM`` writes the whole file anew.

PostgreSQL keeps a deleted or updated row as a dead row version until a vacuum, and a plain
``VACUUM`` only marks its space free: on PostgreSQL 15 the bytes of a row at the edge of a
page's free space, and the keys in the indexes, were still in the pages after it
(tests/privacy/test_compaction.py keeps that measurement). ``VACUUM FULL`` writes the table and
its indexes to new files; ``ANALYZE`` replaces the planner's samples of column values
(``pg_statistic``), which may hold a name too.

``VACUUM FULL`` holds its table exclusively while it runs: a moment for the hub's and the
squad's small tables, longer for a big ledger. It waits at most :data:`LOCK_TIMEOUT`
for others to let go of the table; past that the table gets a plain ``VACUUM`` and the caller
is told which tables, to say so in what the erase kept.

Out of reach of any of this, and said in docs/privacy.md: PostgreSQL's write-ahead log until
its segments are recycled, the files a rewrite replaced (free blocks of the file system), and
backups.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

LOCK_TIMEOUT = "5s"
log = logging.getLogger("sporthub.compaction")


def compact_tables(engine: Engine, tables: Iterable[str]) -> list[str]:
    """Rewrite ``tables`` (SQLite: the whole file). Returns the tables that got only a plain
    ``VACUUM``, their lock not had within :data:`LOCK_TIMEOUT`."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("VACUUM"))
            return []
        conn.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
        existing = set(inspect(conn).get_table_names())
        missed = []
        for table in tables:
            if table not in existing:
                continue
            quoted = conn.dialect.identifier_preparer.quote(table)
            try:
                conn.execute(text(f"VACUUM (FULL, ANALYZE) {quoted}"))
            except OperationalError as e:  # the lock was not had in time
                log.warning("VACUUM FULL %s: %s; a plain VACUUM instead", table, e.orig)
                missed.append(table)
                try:
                    conn.execute(text(f"VACUUM (ANALYZE) {quoted}"))
                except OperationalError:
                    pass  # autovacuum comes later; the caller says what was missed
    return missed


def compact(url: str, tables: Iterable[str]) -> list[str]:
    """:func:`compact_tables` of the database at ``url``; nothing for a SQLite file that does
    not exist (connecting would create it)."""
    sqlite = url.startswith("sqlite")
    if sqlite and not Path(make_url(url).database or "").exists():
        return []
    engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {})
    try:
        return compact_tables(engine, tables)
    finally:
        engine.dispose()


def missed_note(store: str, missed: list[str]) -> list[str]:
    """What an erase says it kept when a table could not be rewritten."""
    if not missed:
        return []
    return [(f"{store}: the bytes of removed rows in {', '.join(missed)} until PostgreSQL "
             "reuses their space (the table was busy: run the erase again, or VACUUM FULL "
             "it, to rewrite it now)")]
