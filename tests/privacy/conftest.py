"""Databases for the privacy tests: a SQLite file, and a fresh database on the real PostgreSQL."""

from __future__ import annotations

import uuid

import psycopg
import pytest

ADMIN_DSN = "host=127.0.0.1 dbname=test user=postgres"


@pytest.fixture
def pg_database():
    """A new PostgreSQL database (on the server of db ``test``), dropped afterwards."""
    name = f"sporthub_privacy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.sqlite'}"
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{request.getfixturevalue('pg_database')}"
