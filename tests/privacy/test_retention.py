"""Names out of the ledger and the audit log: erase of one person, and retention by age.

Real SQLite and the real PostgreSQL; the gateway's own AuditLog writes the lines; the clock is
moved forward instead of waiting 90 days."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from sporthub.gateway.audit import AuditLog
from sporthub.gateway.ledger import Ledger, RequestRecord, RequestRow, migrate
from sporthub.gateway.retention import (
    RetentionTask,
    apply_retention,
    ledger_engine,
    pseudonymise_person,
)
from sporthub.pseudonym import Pseudonyms, is_pseudonym

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _fill(url, audit_path, rows):
    migrate(url)
    ledger = Ledger(url)
    audit = AuditLog(audit_path, include_prompts=True)
    for i, (user, age_days, ip) in enumerate(rows):
        rec = RequestRecord(id=f"r{i}", user=user, endpoint="chat/completions", client_ip=ip,
                            started_at=NOW - timedelta(days=age_days), prompt_tokens=10 + i,
                            completion_tokens=5)
        asyncio.run(ledger.record(rec))
        audit.write(rec, [{"role": "user", "content": f"my knee hurts, says {user}"}])
    ledger.close()


def _rows(url):
    engine = ledger_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(RequestRow.id, RequestRow.user, RequestRow.client_ip,
                                   RequestRow.prompt_tokens)).all()
    engine.dispose()
    return {r.id: r for r in rows}


def _lines(path):
    return {e["request_id"]: e for e in map(json.loads, path.read_text().splitlines())}


def test_an_erased_person_keeps_counts_under_one_pseudonym(ledger_url, tmp_path):
    audit_path = tmp_path / "gateway-audit.jsonl"
    _fill(ledger_url, audit_path, [("alice", 1, "10.0.0.7"), ("bob", 1, "10.0.0.8"),
                                   ("alice", 0, "10.0.0.7")])
    pseudonyms = Pseudonyms("k" * 32)
    engine = ledger_engine(ledger_url)
    changed = pseudonymise_person(engine, audit_path, "alice", pseudonyms)
    engine.dispose()
    assert (changed.ledger_rows, changed.audit_lines) == (2, 2)
    rows, lines = _rows(ledger_url), _lines(audit_path)
    alias = pseudonyms("alice")
    assert is_pseudonym(alias) and "alice" not in alias
    for rid in ("r0", "r2"):
        assert rows[rid].user == alias == lines[rid]["user"]  # the same in both
        assert rows[rid].client_ip is None and lines[rid]["ip"] is None
        assert lines[rid]["messages"] is None  # the prompt text is the person's own words
    assert rows["r0"].prompt_tokens == 10 and lines["r2"]["prompt_tokens"] == 12  # counts kept
    assert rows["r1"].user == "bob" and rows["r1"].client_ip == "10.0.0.8"
    assert lines["r1"]["user"] == "bob" and "bob" in lines["r1"]["messages"][0]["content"]
    assert "alice" not in audit_path.read_text()


def test_retention_with_the_clock_moved_forward(ledger_url, tmp_path):
    audit_path = tmp_path / "gateway-audit.jsonl"
    _fill(ledger_url, audit_path, [("alice", 100, "10.0.0.7"), ("bob", 95, "10.0.0.8"),
                                   ("alice", 10, "10.0.0.7"), ("bob", 0, "10.0.0.8")])
    pseudonyms = Pseudonyms("k" * 32)
    engine = ledger_engine(ledger_url)
    # at NOW, 90 days: the two old rows lose name and address, the recent ones keep them
    changed = apply_retention(engine, audit_path, 90, pseudonyms, now=NOW)
    assert (changed.ledger_rows, changed.audit_lines) == (2, 2)
    rows, lines = _rows(ledger_url), _lines(audit_path)
    assert rows["r0"].user == pseudonyms("alice") == lines["r0"]["user"]
    assert rows["r1"].user == pseudonyms("bob") and rows["r1"].client_ip is None
    assert lines["r1"]["ip"] is None and lines["r1"]["messages"] is None
    assert rows["r2"].user == "alice" and rows["r2"].client_ip == "10.0.0.7"
    assert lines["r3"]["user"] == "bob" and lines["r3"]["ip"] == "10.0.0.8"
    assert rows["r0"].prompt_tokens == 10 and lines["r1"]["prompt_tokens"] == 11
    # a second run the same day changes nothing
    again = apply_retention(engine, audit_path, 90, pseudonyms, now=NOW)
    assert (again.ledger_rows, again.audit_lines) == (0, 0)
    # 85 days later, through the gateway's daily task with a fake clock: r2 (then 95 days)
    # goes too, r3 (85 days) stays
    clock = [NOW + timedelta(days=85)]
    task = RetentionTask(ledger_url, audit_path, 90, pseudonyms, clock=lambda: clock[0])
    assert task.run_once().ledger_rows == 1
    rows, lines = _rows(ledger_url), _lines(audit_path)
    assert rows["r2"].user == pseudonyms("alice") and lines["r2"]["ip"] is None
    assert rows["r3"].user == "bob" and lines["r3"]["user"] == "bob"
    engine.dispose()


def test_the_daily_task_runs_again_after_a_day(tmp_path):
    url = f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    audit_path = tmp_path / "gateway-audit.jsonl"
    _fill(url, audit_path, [("alice", 0, "10.0.0.7")])
    clock = [NOW]
    sleeps, seen = [], []

    async def sleep(seconds):
        sleeps.append(seconds)
        seen.append(_rows(url)["r0"].user)
        clock[0] += timedelta(seconds=seconds)  # a day passes
        if len(sleeps) == 3:
            raise asyncio.CancelledError

    task = RetentionTask(url, audit_path, 1, Pseudonyms("k" * 32), clock=lambda: clock[0],
                         sleep=sleep)
    try:
        asyncio.run(task.forever())
    except asyncio.CancelledError:
        pass
    assert sleeps == [86400.0] * 3 and task.runs == 3
    # a 1-day retention: at the start and a day later the row keeps its name (not older than
    # a day); on the third run, two days later, it has lost it
    assert seen[:2] == ["alice", "alice"] and seen[2].startswith("~")


def test_lines_written_during_a_rewrite_are_kept(tmp_path):
    """The gateway appends under the same lock, and reopens the replaced file."""
    url = f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    audit_path = tmp_path / "gateway-audit.jsonl"
    _fill(url, audit_path, [("alice", 0, "10.0.0.7")])
    audit = AuditLog(audit_path, include_prompts=False)
    engine = ledger_engine(url)
    pseudonymise_person(engine, audit_path, "alice", Pseudonyms("k" * 32))
    audit.write(RequestRecord(id="after", user="bob", endpoint="chat/completions"))
    lines = _lines(audit_path)
    assert set(lines) == {"r0", "after"} and lines["after"]["user"] == "bob"
    engine.dispose()
