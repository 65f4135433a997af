"""An erase leaves no byte of what it removed in the databases' files (sporthub.compaction).

Raw bytes are searched, not rows: a SQLite file as it is on disk (its free pages count), and
PostgreSQL's pages as the server holds them (``get_raw_page`` of pageinspect, every table, index
and TOAST table of the database), where a deleted or replaced row lives on as a dead version.
Real SQLite and the real PostgreSQL; the squad's store, the ledger, and the measurement behind
the choice of ``VACUUM FULL``. The hub's own database is searched the same way after a real
erase in tests/privacy/test_export_erase_stack.py."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sporthub import compaction, privacy
from sporthub.gateway.retention import ledger_engine, pseudonymise_ledger
from sporthub.pseudonym import Pseudonyms
from sporthub.settings import load_settings
from sporthub.squad.store import Store, migrate
from tests.privacy.test_retention import _fill

KEY = "k" * 32


def pg_pages_holding(database: str, *needles: str) -> list[str]:
    """Every page of the database's own relations (public tables, their indexes and TOAST)
    holding one of ``needles``, as "<relation> page <n>: <needle>"."""
    found = []
    with psycopg.connect(f"host=127.0.0.1 dbname={database} user=postgres",
                         autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        relations = db.execute("""
            SELECT c.oid::regclass::text FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 'm')
            UNION
            SELECT t.oid::regclass::text FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class t ON t.oid = c.reltoastrelid
            WHERE n.nspname = 'public'""").fetchall()
        for (relation,) in relations:
            pages = db.execute("SELECT pg_relation_size(%s::regclass) / "
                               "current_setting('block_size')::int", (relation,)).fetchone()[0]
            for page in range(pages):
                raw = db.execute("SELECT get_raw_page(%s, %s)", (relation, page)).fetchone()[0]
                found += [f"{relation} page {page}: {n}" for n in needles if n.encode() in raw]
    return found


def files_holding(folder, *needles: str) -> list[str]:
    return [f"{path}: {n}" for path in folder.rglob("*") if path.is_file()
            for n in needles if n.encode() in path.read_bytes()]


def test_a_plain_vacuum_leaves_a_removed_name_in_postgresql_pages(pg_database):
    """Why erase rewrites tables: after a DELETE and a plain VACUUM, the name of a row at the
    edge of the page's free space, and its key in a unique index, are still in the pages."""
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_database}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE people (id serial PRIMARY KEY, name text UNIQUE)"))
        conn.execute(text("INSERT INTO people (name) SELECT 'person' || g "
                          "FROM generate_series(1, 50) g"))
        conn.execute(text("INSERT INTO people (name) VALUES ('zq-gone-person')"))
        conn.execute(text("DELETE FROM people WHERE name = 'zq-gone-person'"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM people"))
    assert pg_pages_holding(pg_database, "zq-gone-person")  # the plain VACUUM kept it
    assert compaction.compact_tables(engine, ["people"]) == []
    assert pg_pages_holding(pg_database, "zq-gone-person") == []
    with engine.connect() as conn:  # the others are all there
        assert conn.execute(text("SELECT count(*) FROM people")).scalar() == 50
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path):
    if request.param == "sqlite":
        return load_settings(data_dir=tmp_path / "data")
    database = request.getfixturevalue("pg_database")
    return load_settings(data_dir=tmp_path / "data",
                         db_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}")


def holding(settings, *needles: str) -> list[str]:
    found = files_holding(settings.data_dir, *needles)
    if settings.db_url:  # the squad's tables on the ledger's PostgreSQL database
        found += pg_pages_holding(make_url(settings.db_url).database, *needles)
    return found


def shared_athlete(settings, name: str, words: str) -> Store:
    """An athlete sharing a ride (its session row holding ``words``) and a daily log, whose
    data a scientist has read, and who read another athlete's as staff."""
    migrate(settings.squad_db_url)
    store = Store(settings.squad_db_url, settings.squad_store_dir)
    store.set_share(name, True, name, "10.0.0.7")
    staged = settings.squad_store_dir / ".ride.fit"
    staged.write_bytes(f"ride of {words}".encode())
    store.put_file(name, "ride.fit", staged, hashlib.sha256(b"x").hexdigest(), 9,
                   {"file": "ride.fit", "start": "2026-03-01T08:00:00+00:00",
                    "problems": [f"{words} session"]},
                   [{"date": "2026-03-01", "note": f"{words} wellness"}])
    store.log_read("sam", name, "sessions", "10.0.0.9")
    store.log_read(name, "bob", "sessions", "10.0.0.7")
    return store


def test_the_squad_erase_leaves_no_byte_of_the_athlete(settings):
    tag = uuid.uuid4().hex[:6]
    name, words = f"zqann{tag}", f"zqwords{tag}"
    store = shared_athlete(settings, name, words)
    store.engine.dispose()
    assert holding(settings, name, words)  # they are there to be found

    person = privacy.Person(name=name, settings=settings, hub=None, pseudonyms=Pseudonyms(KEY))
    outcome = asyncio.run(privacy._erase_squad(person))
    assert not any("bytes of removed rows" in k for k in outcome.kept)
    assert holding(settings, name, words) == []
    # what is kept is kept under the pseudonym
    alias = Pseudonyms(KEY)(name)
    assert [e["change"] for e in store.consent_events(alias)] == ["share on"]
    assert store.reads_of(alias)[0]["reader"] == "sam"


def test_switching_off_overwrites_the_rows_at_once_in_sqlite(tmp_path):
    """No erase, no vacuum: the athlete takes their consent back, and SQLite's free pages
    must not keep their session and wellness rows (``secure_delete`` on the squad's store)."""
    settings = load_settings(data_dir=tmp_path / "data")
    store = shared_athlete(settings, "zqbea", "zqbeawords")
    assert files_holding(settings.data_dir, "zqbeawords")
    store.set_share("zqbea", False, "zqbea", "10.0.0.8")
    store.engine.dispose()
    assert files_holding(settings.data_dir, "zqbeawords") == []


def test_the_ledgers_erase_leaves_no_old_row_version_with_the_name(pg_database, tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_database}"
    _fill(url, tmp_path / "audit.jsonl", [("zqalice", 1, "10.0.0.7"), ("bob", 1, "10.0.0.8"),
                                          ("zqalice", 0, "10.0.0.7")])
    assert pg_pages_holding(pg_database, "zqalice")
    engine = ledger_engine(url)
    assert pseudonymise_ledger(engine, "zqalice", Pseudonyms(KEY)) == 2
    engine.dispose()
    assert pg_pages_holding(pg_database, "zqalice", "10.0.0.7") == []
    assert pg_pages_holding(pg_database, "bob", "10.0.0.8")  # the others' rows untouched


def test_a_busy_table_gets_a_plain_vacuum_and_the_erase_says_so(pg_database, monkeypatch):
    """VACUUM FULL must not hang an erase behind another transaction: past the lock timeout
    the table is vacuumed plainly and named, and the others are still rewritten."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_database}"
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in ("busy", "free"):
            conn.execute(text(f"CREATE TABLE {table} (name text)"))
            conn.execute(text(f"INSERT INTO {table} VALUES ('zq-{table}-a'), ('zq-{table}-b')"))
            conn.execute(text(f"DELETE FROM {table} WHERE name = 'zq-{table}-b'"))
    monkeypatch.setattr(compaction, "LOCK_TIMEOUT", "300ms")
    with psycopg.connect(f"host=127.0.0.1 dbname={pg_database} user=postgres") as holder:
        holder.execute("SELECT * FROM busy")  # its transaction stays open: a lock on busy
        started = time.monotonic()
        missed = compaction.compact_tables(engine, ["busy", "free"])
        assert time.monotonic() - started < 10
    engine.dispose()
    assert missed == ["busy"]
    assert pg_pages_holding(pg_database, "zq-free-b") == []
    note = compaction.missed_note("hub database", missed)
    assert len(note) == 1 and "busy" in note[0] and "VACUUM FULL" in note[0]
