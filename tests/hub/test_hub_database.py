"""The hub's own database on the real PostgreSQL (``SPORTHUB_HUB_DB_URL``): accounts, groups and
servers live there and survive a restart; nothing is written to SQLite."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.stack import HubClient, make_stack

pytestmark = pytest.mark.stack

ADMIN_DSN = "host=127.0.0.1 dbname=test user=postgres"


@pytest.fixture
def hub_database():
    name = f"sporthub_hub_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def backend():
    fake = FakeBackend().start()
    yield json.dumps([{"name": "fake", "url": fake.url, "api_key": KEY, "models": [MODEL]}])
    fake.stop()


def test_the_hub_keeps_its_state_in_postgresql(tmp_path, hub_database, backend):
    stack = make_stack(tmp_path, llm_backends=backend,
                       hub_db_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{hub_database}")
    stack.start()
    try:
        admin = HubClient.admin(stack)
        assert admin.api("POST", "/users/pia").status_code == 201
        assert admin.api("POST", "/groups/athletes/users",
                         json={"users": ["pia"]}).status_code == 200
        admin.start_server("pia")
    finally:
        stack.descendants = stack.processes()
        assert stack.stop() == []
    with psycopg.connect(f"host=127.0.0.1 dbname={hub_database} user=postgres") as db:
        users = {name for (name,) in db.execute("SELECT name FROM users")}
        members = db.execute("SELECT u.name FROM users u JOIN user_group_map m ON m.user_id = u.id"
                             " JOIN groups g ON g.id = m.group_id WHERE g.name = 'athletes'")
        assert users == {stack.admin_user, "pia"}
        assert [name for (name,) in members] == ["pia"]
    assert not (stack.data_dir / "jupyterhub.sqlite").exists()

    # a restart reads the same database: the account and its group are still there
    stack.start()
    try:
        admin = HubClient.admin(stack)
        pia = admin.api("GET", "/users/pia").json()
        assert pia["groups"] == ["athletes"]
    finally:
        stack.descendants = stack.processes()
        stack.stop()
