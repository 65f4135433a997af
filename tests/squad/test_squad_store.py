"""The squad's store without a stack: SQLite and the real PostgreSQL (beside the ledger's
tables in one database), sharing off, and the privacy helper's export and erase."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, inspect

from sporthub.gateway.ledger import migrate as migrate_ledger
from sporthub.settings import load_settings
from sporthub.squad import erase_person, export_person
from sporthub.squad.store import Store, migrate

ADMIN_DSN = "host=127.0.0.1 dbname=test user=postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield None  # the settings' default: <data>/squad.sqlite
        return
    name = f"sporthub_squad_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(db_url, tmp_path):
    return load_settings(data_dir=tmp_path / "data", **({"db_url": db_url} if db_url else {}))


def shared(settings, name: str, files: dict[str, bytes]) -> Store:
    migrate(settings.squad_db_url)
    store = Store(settings.squad_db_url, settings.squad_store_dir)
    store.set_share(name, True, name, "10.0.0.7")
    for file, data in files.items():
        staged = settings.squad_store_dir / f".{file}"
        staged.write_bytes(data)
        store.put_file(name, file, staged, hashlib.sha256(data).hexdigest(), len(data),
                       {"file": file, "start": "2026-03-01T08:00:00+00:00"}, None)
    return store


def test_the_squad_shares_a_database_with_the_ledger(settings):
    url = settings.squad_db_url
    migrate_ledger(settings.ledger_url)
    migrate(url)
    migrate(url)  # again: nothing to do
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"squad_alembic_version", "squad_consent", "squad_consent_events", "squad_files",
            "squad_sessions", "squad_wellness", "squad_reads", "squad_refused"} <= tables
    if settings.db_url:  # one PostgreSQL database: each schema with its own version table
        assert {"llm_requests", "alembic_version"} <= tables
    else:  # SQLite: a file of its own beside the ledger's
        assert url.endswith("/squad.sqlite") and "llm_requests" not in tables


def test_sharing_off_deletes_the_files_and_rows_and_keeps_the_record(settings):
    store = shared(settings, "ann", {"a.fit": b"ride"})
    assert store.file_path("ann", "a.fit").read_bytes() == b"ride"
    store.set_share("ann", False, "ann", "10.0.0.8")
    assert store.files("ann") == [] and store.sessions("ann") == []
    assert not store.folder("ann").exists()
    assert [(e["change"], e["address"]) for e in store.consent_events("ann")] == [
        ("share on", "10.0.0.7"), ("share off", "10.0.0.8")]


def test_export_gives_the_files_and_every_row_and_erase_leaves_only_a_pseudonym(settings):
    store = shared(settings, "ann", {"a.fit": b"ride"})
    store.log_read("sam", "ann", "sessions", "10.0.0.9")
    store.log_read("ann", "bob", "sessions", "10.0.0.7")  # ann reads as staff too
    exported = export_person("ann", settings=settings)
    assert exported["squad/files/a.fit"] == b"ride"
    record = json.loads(exported["squad/record.json"])
    assert record["sharing"] is True and record["sessions"][0]["file"] == "a.fit"
    assert record["reads_of_my_data"][0]["reader"] == "sam"
    assert record["my_reads_of_others"][0]["athlete"] == "bob"

    outcome = erase_person("ann", settings=settings, pseudonym="person-7f3a")
    assert outcome["removed"] and outcome["kept"]
    assert not store.sharing("ann") and store.files("ann") == []
    assert not store.folder("ann").exists()
    assert store.consent_events("ann") == [] and store.reads_of("ann") == []
    kept = store.consent_events("person-7f3a")
    assert [e["change"] for e in kept] == ["share on"] and kept[0]["address"] is None
    assert store.reads_of("person-7f3a")[0]["reader"] == "sam"
    assert store.reads_of("bob")[0]["reader"] == "person-7f3a"
    after = json.loads(export_person("ann", settings=settings)["squad/record.json"])
    assert after["consent_record"] == after["reads_of_my_data"] == \
        after["my_reads_of_others"] == after["files"] == []


def test_an_upload_caught_by_the_switch_off_leaves_nothing(settings, monkeypatch):
    """The race of an athlete's server uploading while the athlete switches sharing off, played
    in its worst order: the upload has found sharing on, then the switch-off runs as far as it
    can, then the upload goes on. Whatever the order, nothing of the upload may be left."""
    from sqlalchemy import event

    from sporthub.squad import store as store_module

    store = shared(settings, "ann", {})
    upload_paused, upload_go = threading.Event(), threading.Event()
    off_paused, off_go = threading.Event(), threading.Event()
    threads: dict[str, threading.Thread] = {}

    @event.listens_for(store.engine, "after_cursor_execute")
    def hold_upload(conn, cursor, statement, parameters, context, executemany):
        # the upload has decided that sharing is on and begun to write: its first write
        if (threading.current_thread() is threads.get("upload") and not upload_paused.is_set()
                and statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))):
            upload_paused.set()
            assert upload_go.wait(60)

    real_rmtree = store_module.shutil.rmtree

    def hold_off(path, *args, **kwargs):
        # the switch-off, about to remove the folder of copies
        if threading.current_thread() is threads.get("off"):
            off_paused.set()
            assert off_go.wait(60)
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(store_module.shutil, "rmtree", hold_off)
    staged = settings.squad_store_dir / ".late.fit"
    staged.write_bytes(b"late ride")
    outcome: dict[str, object] = {}

    def upload():
        try:
            store.put_file("ann", "late.fit", staged, hashlib.sha256(b"late ride").hexdigest(),
                           9, {"file": "late.fit", "start": "2026-03-02T08:00:00+00:00"}, None)
            outcome["upload"] = "stored"
        except PermissionError:
            outcome["upload"] = "refused"

    def switch_off():
        store.set_share("ann", False, "ann", "10.0.0.8")
        outcome["off"] = "done"

    threads["upload"] = threading.Thread(target=upload)
    threads["off"] = threading.Thread(target=switch_off)
    threads["upload"].start()
    assert upload_paused.wait(30)
    threads["off"].start()
    # the switch-off goes as far as it may while the upload holds (a correct store makes it
    # wait for the upload's transaction; a naive one lets it reach its cleanup)
    off_paused.wait(3)
    upload_go.set()
    threads["upload"].join(60)
    off_go.set()
    threads["off"].join(60)
    assert not threads["upload"].is_alive() and not threads["off"].is_alive()
    assert outcome["off"] == "done" and outcome["upload"] in ("stored", "refused")

    assert not store.sharing("ann")
    assert store.files("ann") == [] and store.sessions("ann") == []
    assert store.counts("ann") == {"files": 0, "sessions": 0, "wellness_days": 0}
    assert not store.folder("ann").exists() or not any(store.folder("ann").iterdir())


def test_the_profile_replaces_the_rows_with_it_and_export_and_erase_cover_it(settings):
    store = shared(settings, "ann", {"a.fit": b"ride"})
    profile = b"ftp_w = 265\n"
    staged = settings.squad_store_dir / ".profile.toml"
    staged.write_bytes(profile)
    with_ftp = {"a.fit": [{"file": "a.fit", "start": "2026-03-01T08:00:00+00:00",
                           "intensity": 0.8}]}
    store.put_file("ann", "profile.toml", staged, hashlib.sha256(profile).hexdigest(),
                   len(profile), None, None, with_ftp)
    assert store.sessions("ann") == with_ftp["a.fit"]  # replaced in the same step, not added
    exported = export_person("ann", settings=settings)
    assert exported["squad/files/profile.toml"] == profile
    assert "profile.toml" in {f["name"] for f in json.loads(exported["squad/record.json"])["files"]}
    without = {"a.fit": [{"file": "a.fit", "start": "2026-03-01T08:00:00+00:00",
                          "intensity": None}]}
    assert store.delete_file("ann", "profile.toml", without)
    assert store.sessions("ann") == without["a.fit"]
    assert not (store.folder("ann") / "profile.toml").exists()

    staged.write_bytes(profile)
    store.put_file("ann", "profile.toml", staged, hashlib.sha256(profile).hexdigest(),
                   len(profile), None, None, with_ftp)
    erase_person("ann", settings=settings)
    assert store.files("ann") == [] and store.sessions("ann") == []
    assert not store.folder("ann").exists()


def test_a_refusal_is_kept_until_its_file_changes_goes_or_sharing_ends(settings):
    """The note that lets the athlete's server send a refused file only once per change."""
    store = shared(settings, "ann", {"a.fit": b"ride"})
    assert store.refuse("ann", "profile.toml", "1" * 64, "ftp_w: 5000 is outside", keep=2)
    assert [(r["name"], r["sha256"], r["reason"]) for r in store.refused("ann")] == [
        ("profile.toml", "1" * 64, "ftp_w: 5000 is outside")]
    # the same name refused again (another content): one note, the newer
    assert store.refuse("ann", "profile.toml", "2" * 64, "ftp_w: 9000 is outside", keep=2)
    assert [r["sha256"] for r in store.refused("ann")] == ["2" * 64]
    record = json.loads(export_person("ann", settings=settings)["squad/record.json"])
    assert record["refused_files"][0]["reason"] == "ftp_w: 9000 is outside"
    # stored at last: the note goes in the same step
    staged = settings.squad_store_dir / ".profile.toml"
    staged.write_bytes(b"ftp_w = 250\n")
    store.put_file("ann", "profile.toml", staged, "3" * 64, 12, None, None, {})
    assert store.refused("ann") == []
    # removed from the home: deleting the name takes its note, even with nothing stored
    assert store.refuse("ann", "b.gpx", "4" * 64, "not a readable recording", keep=2)
    assert store.delete_file("ann", "b.gpx") and store.refused("ann") == []
    assert not store.delete_file("ann", "b.gpx")  # nothing left to delete: 404 upstream
    # at most `keep` notes, the newest
    for name in ("c.gpx", "d.gpx", "e.gpx"):
        assert store.refuse("ann", name, "5" * 64, "unreadable", keep=2)
    assert [r["name"] for r in store.refused("ann")] == ["d.gpx", "e.gpx"]
    # sharing off: gone with the files, and nothing is noted while it is off
    store.set_share("ann", False, "ann", "10.0.0.8")
    assert store.refused("ann") == []
    assert not store.refuse("ann", "f.gpx", "6" * 64, "unreadable", keep=2)
    assert store.refused("ann") == []
    assert store.counts("ann") == {"files": 0, "sessions": 0, "wellness_days": 0}
