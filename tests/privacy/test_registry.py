"""Every store that holds a person's name or data is in the registry, with export and erase.

A store added to sporthub.privacy without either fails here; so does a store the privacy guide
(docs/privacy.md) does not describe, or a place the issue names that has no store."""

from __future__ import annotations

import asyncio
import inspect
import io
import sys
import types
import zipfile
from pathlib import Path

import pytest

from sporthub import privacy
from sporthub.pseudonym import Pseudonyms
from sporthub.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
# issue 23: the hub database, accounts.sqlite, the ledger, the audit log, the logs, Prometheus,
# the home / volume / system user, chats, and the squad service
REQUIRED = {"hub", "accounts", "ledger", "audit", "logs", "metrics", "home", "chats", "squad"}


class FakeHub:
    """What the hub does for a person, for stores exercised without a hub."""

    def __init__(self):
        self.deleted = False

    async def account(self):
        return {"name": "zoe", "groups": ["athletes"]}

    async def stop_server(self):
        return False

    async def delete_account(self):
        self.deleted = True
        return ["account"]


@pytest.fixture
def person(tmp_path, monkeypatch):
    settings = load_settings(data_dir=tmp_path / "data", local_user_prefix="tprivacy-")
    return privacy.Person("zoe", settings, FakeHub(), Pseudonyms("k" * 32))


def test_the_registry_covers_every_place_a_person_lives():
    names = [s.name for s in privacy.STORES]
    assert len(names) == len(set(names))
    assert REQUIRED <= set(names), REQUIRED - set(names)


@pytest.mark.parametrize("store", privacy.STORES, ids=lambda s: s.name)
def test_each_store_exports_and_erases(store, person):
    assert inspect.iscoroutinefunction(store.export), f"{store.name}: no export"
    assert inspect.iscoroutinefunction(store.erase), f"{store.name}: no erase"
    assert store.where
    # both run on an installation where the person has nothing yet, without error
    buffer = io.BytesIO()
    archive = privacy.Archive(buffer)
    asyncio.run(store.export(person, archive))
    archive.close("readme")
    outcome = asyncio.run(store.erase(person))
    assert isinstance(outcome, privacy.Outcome)
    assert zipfile.ZipFile(buffer).testzip() is None


@pytest.mark.parametrize("store", privacy.STORES, ids=lambda s: s.name)
def test_the_privacy_guide_describes_each_store(store):
    guide = (REPO / "docs" / "privacy.md").read_text()
    assert f"`{store.name}`" in guide, f"docs/privacy.md does not describe the {store.name} store"


def test_the_squad_store_uses_the_squad_service_when_installed(person, monkeypatch):
    calls = []
    fake = types.ModuleType("sporthub.squad")
    fake.export_person = lambda name: calls.append(("export", name)) or {
        "consent.json": {"sharing": True}, "files/log.csv": b"date,rpe\n",
        "squad/record.json": b"{}"}
    fake.erase_person = lambda name: calls.append(("erase", name)) or {
        "removed": ["2 shared files", "consent record"], "kept": []}

    def erase_as_the_squad_does(name, settings=None, pseudonym=None):
        calls.append(("erase", name, settings is person.settings, pseudonym))

    squad_store = next(s for s in privacy.STORES if s.name == "squad")
    monkeypatch.setitem(sys.modules, "sporthub.squad", fake)
    squad = next(s for s in privacy.STORES if s.name == "squad")
    buffer = io.BytesIO()
    archive = privacy.Archive(buffer)
    asyncio.run(squad.export(person, archive))
    archive.close("readme")
    members = zipfile.ZipFile(buffer).namelist()
    assert {"squad/consent.json", "squad/files/log.csv", "squad/record.json"} <= set(members)
    outcome = asyncio.run(squad.erase(person))
    assert outcome.removed == ["2 shared files", "consent record"]
    assert calls == [("export", "zoe"), ("erase", "zoe")]
    # the squad helper's own signature (issue 20): settings and a pseudonym, returns None
    fake.erase_person = erase_as_the_squad_does
    outcome = asyncio.run(squad_store.erase(person))
    assert calls[-1] == ("erase", "zoe", True, person.pseudonyms("zoe")) and outcome.removed


def test_without_a_squad_service_the_squad_store_says_so(person, monkeypatch):
    monkeypatch.setitem(sys.modules, "sporthub.squad", None)  # import fails
    assert privacy._squad() is None
    squad = next(s for s in privacy.STORES if s.name == "squad")
    archive = privacy.Archive(io.BytesIO())
    asyncio.run(squad.export(person, archive))
    assert "no squad service" in archive.contents[0]


def test_the_squad_services_own_rows_are_erased_under_our_pseudonym(person):
    """The real squad service's store (issue 20): consent and a staff read of zoe's data."""
    from sporthub.squad import _store

    store = _store(person.settings)
    store.set_share("zoe", True, by="zoe", address="10.1.2.3")
    store.log_read("coachkim", "zoe", "sessions", "10.1.2.4")
    store.engine.dispose()
    squad = next(s for s in privacy.STORES if s.name == "squad")
    buffer = io.BytesIO()
    archive = privacy.Archive(buffer)
    asyncio.run(squad.export(person, archive))
    archive.close("readme")
    assert "squad/record.json" in zipfile.ZipFile(buffer).namelist()
    asyncio.run(squad.erase(person))
    raw = (person.settings.data_dir / "squad.sqlite").read_bytes()
    assert b"zoe" not in raw and b"10.1.2.3" not in raw
    assert person.pseudonyms("zoe").encode() in raw  # the kept rows, under our pseudonym


def test_a_ledger_row_committed_during_the_erase_is_taken_too(person, monkeypatch):
    """The gateway commits a request's row up to half a second after its answer (batched): a
    request cut when the erase stopped the server lands after the first pass, under the name."""
    from sporthub.gateway.ledger import Ledger, RequestRecord, migrate
    from sporthub.gateway.retention import ledger_engine, ledger_rows_of

    migrate(person.settings.ledger_url)
    ledger = Ledger(person.settings.ledger_url)
    asyncio.run(ledger.record(RequestRecord(id="before", user="zoe", endpoint="chat")))

    async def gateway_commits_late():
        await ledger.record(RequestRecord(id="late", user="zoe", endpoint="chat"))

    monkeypatch.setattr(privacy, "_wait_for_pending_rows", gateway_commits_late)
    outcome = asyncio.run(privacy._erase_ledger(person))
    ledger.close()
    engine = ledger_engine(person.settings.ledger_url)
    assert ledger_rows_of(engine, "zoe") == []
    alias = person.pseudonyms("zoe")
    assert {row["id"] for row in ledger_rows_of(engine, alias)} == {"before", "late"}
    engine.dispose()
    assert outcome.kept and outcome.kept[0].startswith("2 ledger rows")
