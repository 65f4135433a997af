"""The account cap (SPORTHUB_MAX_ACCOUNTS), on a stack of its own with a small cap, and at 100."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest
from jupyterhub import orm

from sporthub.hub.auth import AccountLimitReached, SportHubAuthenticator
from tests.support.stack import SPORTHUB, HubClient, create_account, make_stack, set_password

PASSWORD = "gold-medal-sprint-8"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Small limits: 3 accounts (the admin and two more), 1 running server, 20 s idle time."""
    stack = make_stack(tmp_path_factory.mktemp("cap"), max_accounts="3",
                       active_server_limit="1", idle_timeout_s="20")
    stack.start()
    yield stack
    if stack.proc.poll() is None:
        stack.descendants = stack.processes()
        stack.stop()


@pytest.mark.stack
def test_the_account_over_the_cap_is_refused_and_existing_ones_work(small):
    admin = HubClient.admin(small)
    for name in ("u1", "u2"):
        assert set_password(create_account(admin, name, "athletes"), PASSWORD).status_code == 302
    # the admin panel's "Add users" posts this; it shows the hub's message
    refused = admin.api("POST", "/users", json={"usernames": ["u3"]})
    assert refused.status_code == 400
    assert "limited to 3 accounts" in refused.json()["message"]
    assert admin.api("GET", "/users/u3").status_code == 404
    assert admin.api("POST", "/users/u3").status_code == 400
    assert admin.api("POST", "/sporthub/invites/u3").status_code == 404
    cli = subprocess.run([str(SPORTHUB), "users", "add", "u3", "--group", "athletes"],
                         cwd=small.data_dir.parent, env=small.env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert cli.returncode == 1 and "limited to 3 accounts" in cli.stderr
    assert "/hub/invite" not in cli.stdout
    assert HubClient(small).login("u1", PASSWORD).status_code == 302
    # deleting an account makes room again
    assert admin.api("DELETE", "/users/u2").status_code == 204
    assert admin.api("POST", "/users/u3").status_code == 201


@pytest.mark.stack
def test_a_full_hub_says_so_and_the_idle_culler_frees_the_place(small):
    admin = HubClient.admin(small)
    admin.start_server("admin")
    u1 = HubClient(small)
    assert u1.login("u1", PASSWORD).status_code == 302
    full = u1.http.get("/hub/spawn")
    assert full.status_code == 429
    assert "SportHub is full right now: 1" in full.text and "after 20 seconds without" in full.text
    russian = u1.http.get("/hub/spawn", headers={"Accept-Language": "ru"})
    assert russian.status_code == 429
    assert "Сейчас SportHub заполнен: уже работает 1 человек" in russian.text
    assert "через 20 секунд бездействия" in russian.text
    # nobody touches the admin's server: the culler stops it (timeout 20 s, checks every 10 s)
    deadline = time.monotonic() + 90
    while admin.api("GET", "/users/admin").json()["servers"]:
        assert time.monotonic() < deadline, "the idle culler did not stop the idle server"
        time.sleep(2)
    u1.token_from_session("u1")
    u1.start_server("u1")


@pytest.mark.stack
def test_a_lower_cap_after_a_restart_keeps_existing_accounts_and_admin_edits(small):
    admin = HubClient.admin(small)
    edited = {"llm_tokens_per_day": 1234, "note": "edited by the admin"}
    assert admin.api("PUT", "/groups/athletes/properties", json=edited).status_code == 200
    assert admin.api("PUT", "/groups/scientists/properties", json={}).status_code == 200

    small.descendants = small.processes()
    assert small.stop() == []
    small.env["SPORTHUB_MAX_ACCOUNTS"] = "2"  # below the 3 accounts that exist
    small.start()

    admin = HubClient.admin(small)
    names = {u["name"] for u in admin.api("GET", "/users").json()}
    assert names == {"admin", "u1", "u3"}
    assert HubClient(small).login("u1", PASSWORD).status_code == 302
    assert admin.api("POST", "/users", json={"usernames": ["u4"]}).status_code == 400
    groups = {g["name"]: g["properties"] for g in admin.api("GET", "/groups").json()}
    assert groups["athletes"] == edited
    # a group left without properties behaves as the defaults do, so they are shown again
    assert groups["scientists"] == {"llm_tokens_per_day": 200000, "llm_priority": 0}
    assert groups["priority"] == {"llm_priority": 10}
    assert httpx.get(f"{small.url}/hub/health").status_code == 200


class FakeUser:
    """What ``add_user`` sees of a hub user: a name and the hub's database session."""

    def __init__(self, name: str, db):
        self.name = name
        self.db = db


def test_the_cap_counts_the_new_account_at_100():
    db = orm.new_session_factory("sqlite://")()
    authenticator = SportHubAuthenticator(max_accounts=100, admin_users={"admin"})
    authenticator._hub_ready = True
    db.add(orm.User(name="admin"))
    for i in range(1, 100):
        db.add(orm.User(name=f"user{i}"))
        db.commit()
        authenticator.add_user(FakeUser(f"user{i}", db))  # accounts 2..100 are fine
    assert db.query(orm.User).count() == 100
    db.add(orm.User(name="user100"))
    db.commit()
    with pytest.raises(AccountLimitReached, match="limited to 100 accounts"):
        authenticator.add_user(FakeUser("user100", db))
    # while the hub loads its database, existing accounts are never refused
    authenticator._hub_ready = False
    authenticator.add_user(FakeUser("user100", db))
