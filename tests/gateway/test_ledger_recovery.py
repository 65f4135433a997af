"""Ledger rows rebuilt from the audit log at the gateway's start (sporthub/gateway/recovery.py),
on a real SQLite ledger and audit log; the kill of a real gateway is in test_gateway_queue.py."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from sporthub.gateway import recovery
from sporthub.gateway.audit import AuditLog
from sporthub.gateway.ledger import Ledger, RequestRecord, migrate


@pytest.fixture
def books(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    migrate(url)
    ledger = Ledger(url)
    audit = AuditLog(tmp_path / "audit.jsonl", include_prompts=False)
    yield ledger, audit, tmp_path / "audit.jsonl"
    ledger.close()


def record(i: int) -> RequestRecord:
    return RequestRecord(
        id=f"req-{i:05d}", user=f"user{i % 3}", endpoint="chat/completions", client_ip="10.0.0.7",
        started_at=datetime(2026, 12, 7, 9, tzinfo=UTC) + timedelta(seconds=i), model="m",
        backend="b", stream=i % 2 == 0, prompt_tokens=9, completion_tokens=i, queued_ms=1.5,
        eta_ms=None if i % 2 else 2000.0, ttft_ms=12.25 if i % 2 == 0 else None,
        duration_ms=40.5, status=200 if i % 5 else 502, outcome="ok" if i % 5 else "stalled")


def stored(ledger: Ledger) -> dict[str, dict]:
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM llm_requests").mappings().all()
    return {r["id"]: dict(r) for r in rows}


def as_row(rec: RequestRecord) -> dict:
    row = dataclasses.asdict(rec)
    row["started_at"] = rec.started_at.replace(tzinfo=None)
    return row


def test_the_rows_after_the_last_written_one_are_rebuilt_whole_and_once(books, monkeypatch):
    ledger, audit, path = books
    monkeypatch.setattr(recovery, "CHUNK", 7)  # the lost lines span several look-ups
    monkeypatch.setattr(recovery, "BLOCK_BYTES", 333)  # lines cut across the blocks read
    records = [record(i) for i in range(60)]
    for rec in records:
        audit.write(rec)
    ledger.insert_missing(records[:35])  # the batches written before the kill
    assert recovery.recover(ledger, path) == 25
    rows = stored(ledger)
    assert len(rows) == 60
    for rec in records:
        row = rows[rec.id]
        row["started_at"] = datetime.fromisoformat(row["started_at"])
        assert row == {**as_row(rec), "stream": int(rec.stream)}
    assert recovery.recover(ledger, path) == 0  # a second start: nothing twice
    assert len(stored(ledger)) == 60


def test_a_torn_last_line_an_erased_address_and_old_lines(books):
    ledger, audit, path = books
    old = record(0)
    entry = {k: v for k, v in json.loads(json.dumps(dataclasses.asdict(old), default=str)).items()}
    # a line written before lines held the whole row: its row was written before the answer
    with path.open("a") as f:
        f.write(json.dumps({"time": entry["started_at"], "request_id": old.id, "user": old.user,
                            "action": old.endpoint, "status": 200, "outcome": "ok"}) + "\n")
    erased = dataclasses.replace(record(1), user="anon-1f2e", client_ip=None)
    audit.write(erased)
    with path.open("a") as f:
        f.write(json.dumps({"time": "2026-12-07T09:00:02+00:00", "request_id": "torn"})[:30])
    assert recovery.recover(ledger, path) == 1
    (row,) = stored(ledger).values()
    assert (row["id"], row["user"], row["client_ip"]) == (erased.id, "anon-1f2e", None)


def test_no_audit_log_no_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    migrate(url)
    ledger = Ledger(url)
    assert recovery.recover(ledger, tmp_path / "absent.jsonl") == 0
    ledger.close()


def test_lines_that_ended_long_before_the_last_one_are_not_taken_in(books):
    """An empty ledger beside an old audit log (a move to PostgreSQL): only the lines of the
    last moments before the gateway stopped can lack their rows."""
    ledger, audit, path = books
    old, recent = record(1), record(2)
    old.started_at -= timedelta(seconds=recovery.LOOKBACK_S + 60)
    for rec in (old, recent):
        audit.write(rec)
    assert recovery.recover(ledger, path) == 1
    assert list(stored(ledger)) == [recent.id]
