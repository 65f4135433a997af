"""Invite-only password accounts on the real hub: links, passwords, lockout, the admin's pages."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.stack import HubClient, create_account, new_invite, set_password

pytestmark = pytest.mark.stack

GOOD_PASSWORD = "blue-ocean-tempo-42"


def test_invite_link_sets_a_password_that_signs_in_and_spawns(stack, admin):
    url = create_account(admin, "bob", group="athletes")
    assert url.startswith(f"{stack.url}/hub/invite?token=")
    page = httpx.get(url)
    assert page.status_code == 200 and "bob" in page.text and 'name="password2"' in page.text

    done = set_password(url, GOOD_PASSWORD)
    assert done.status_code == 302 and done.headers["location"].endswith("/hub/login")

    bob = HubClient(stack)
    assert bob.login("bob", GOOD_PASSWORD).status_code == 302
    token = bob.token_from_session("bob")
    bob.start_server("bob")
    # athletes use the assistant with their own token
    models = httpx.get(f"{stack.gateway}/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert models.status_code == 200, models.text


def test_a_used_link_is_refused_and_the_password_is_not_changed(stack, admin):
    url = create_account(admin, "carla", group="scientists")
    assert set_password(url, GOOD_PASSWORD).status_code == 302
    again = set_password(url, "another-long-passphrase-9")
    assert again.status_code == 410 and "already used" in again.text
    assert HubClient(stack).login("carla", "another-long-passphrase-9").status_code == 403
    assert HubClient(stack).login("carla", GOOD_PASSWORD).status_code == 302


def test_an_expired_link_is_refused(stack, admin):
    url = create_account(admin, "dan")
    # age the link as time would: the store keeps only the token's hash and its expiry
    with sqlite3.connect(stack.data_dir / "accounts.sqlite") as db:
        changed = db.execute("UPDATE sporthub_accounts SET invite_expires = ? WHERE username = ?",
                             (datetime.now(UTC) - timedelta(minutes=1), "dan")).rowcount
    assert changed == 1
    response = set_password(url, GOOD_PASSWORD)
    assert response.status_code == 410 and "expired" in response.text
    assert HubClient(stack).login("dan", GOOD_PASSWORD).status_code == 403


def test_invite_tokens_are_never_stored_or_logged(stack, admin):
    url = create_account(admin, "erin")
    token = url.split("token=", 1)[1]
    assert set_password(url, "short").status_code == 400
    assert set_password(url, GOOD_PASSWORD).status_code == 302
    assert set_password(url, GOOD_PASSWORD).status_code == 410  # refusals are logged too
    raw = (stack.data_dir / "accounts.sqlite").read_bytes()
    assert token.encode() not in raw
    log = stack.log()
    assert "/hub/invite?token=[secret]" in log  # the requests were logged, scrubbed
    assert token not in log and GOOD_PASSWORD not in log


def test_weak_or_mismatched_passwords_are_refused_with_a_reason(stack, admin):
    url = create_account(admin, "frank")
    cases = {
        "short1!": "at least 10 characters",
        "password123": "too common",
        "Frank-2024!!": "must not contain your user name",
    }
    for password, reason in cases.items():
        response = set_password(url, password)
        assert response.status_code == 400 and reason in response.text, password
    response = set_password(url, GOOD_PASSWORD, again=GOOD_PASSWORD + "x")
    assert response.status_code == 400 and "differ" in response.text
    # none of those spent the link
    assert set_password(url, GOOD_PASSWORD).status_code == 302
    assert GOOD_PASSWORD not in stack.log()


def test_a_stranger_cannot_lock_the_owner_out(stack, admin):
    """Failures slow down the address they come from (127.0.0.x here); the owner signs in."""
    url = create_account(admin, "gina", group="athletes")
    assert set_password(url, GOOD_PASSWORD).status_code == 302
    stranger = HubClient(stack, address="127.0.0.77")
    for _ in range(5):
        response = stranger.login("gina", "wrong-password-x")
        assert response.status_code == 403 and "Invalid username or password" in response.text
    # the stranger must now wait, even with the right password
    refused = stranger.login("gina", GOOD_PASSWORD)
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
    # the admin sees the failures (a refused try is not one)
    listed = {a["name"]: a for a in admin.api("GET", "/sporthub/invites").json()}
    assert listed["gina"]["failed_sign_ins"] == 5
    # gina herself, from her own address, is not held up
    assert HubClient(stack, address="127.0.0.78").login("gina", GOOD_PASSWORD).status_code == 302
    # nor is the admin, whatever strangers try at the admin's name
    for _ in range(6):
        stranger.login(stack.admin_user, "wrong-password-x")
    assert HubClient(stack).login(stack.admin_user, stack.admin_password).status_code == 302
    # the hub logged where the failures came from, and never the passwords tried
    assert "from 127.0.0.77" in stack.log() and "wrong-password-x" not in stack.log()


def test_a_forged_forwarded_for_does_not_change_the_address(stack, admin):
    """Only CHP's own X-Forwarded-For entry counts; what a client claims is ignored."""
    url = create_account(admin, "gus", group="athletes")
    assert set_password(url, GOOD_PASSWORD).status_code == 302
    stranger = HubClient(stack, address="127.0.0.79")
    for i in range(6):
        stranger.http.headers.update({"X-Forwarded-For": f"10.9.9.{i}", "X-Real-Ip": f"10.8.8.{i}"})
        stranger.login("gus", "wrong-password-x")
    assert stranger.login("gus", GOOD_PASSWORD).status_code == 429


def test_a_reset_by_invite_signs_the_person_out_everywhere(stack, admin):
    url = create_account(admin, "kai", group="athletes")
    assert set_password(url, GOOD_PASSWORD).status_code == 302
    kai = HubClient(stack)
    assert kai.login("kai", GOOD_PASSWORD).status_code == 302
    kai.token_from_session("kai")
    assert kai.http.get("/hub/home", follow_redirects=False).status_code == 200
    assert kai.api("GET", "/user").status_code == 200
    # the admin's reset, used by the rightful owner
    assert set_password(new_invite(admin, "kai"), "new-river-stride-77").status_code == 302
    # the old browser session and the token are gone
    assert kai.http.get("/hub/home", follow_redirects=False).status_code == 302
    assert kai.api("GET", "/user").status_code == 403
    assert admin.api("GET", "/users/kai/tokens").json()["api_tokens"] == []
    assert HubClient(stack).login("kai", GOOD_PASSWORD).status_code == 403
    assert HubClient(stack).login("kai", "new-river-stride-77").status_code == 302


def test_admin_invites_page_lists_accounts_and_issues_links(stack, admin):
    assert admin.api("POST", "/users/hana").status_code == 201  # as in the admin panel
    page = admin.http.get("/hub/invites")
    assert page.status_code == 200
    assert 'data-account="hana"' in page.text and "no link yet" in page.text
    issued = admin.http.post("/hub/invites", data={
        "username": "hana", "_xsrf": admin.http.cookies.get("_xsrf", path="/hub/")})
    assert issued.status_code == 200
    link = issued.text.split('id="sporthub-new-invite"', 1)[1].split('value="', 1)[1].split('"')[0]
    assert link.startswith(f"{stack.url}/hub/invite?token=")
    assert set_password(link, GOOD_PASSWORD).status_code == 302
    listed = {a["name"]: a for a in admin.api("GET", "/sporthub/invites").json()}
    assert listed["hana"]["state"] == "active"


def test_invites_page_and_api_are_for_admins_only(stack, admin):
    url = create_account(admin, "ivan", group="athletes")
    assert set_password(url, GOOD_PASSWORD).status_code == 302
    ivan = HubClient(stack)
    assert ivan.login("ivan", GOOD_PASSWORD).status_code == 302
    assert ivan.http.get("/hub/invites").status_code == 403
    assert 'id="sporthub-invites-link"' not in ivan.http.get("/hub/token").text
    assert 'id="sporthub-invites-link"' in admin.http.get("/hub/token").text
    ivan.token_from_session("ivan")
    assert ivan.api("POST", "/sporthub/invites/ivan").status_code == 403
    assert ivan.api("GET", "/sporthub/invites").status_code == 403


def test_a_user_outside_the_beta_groups_cannot_use_the_assistant(stack, admin):
    url = create_account(admin, "jon")
    assert set_password(url, GOOD_PASSWORD).status_code == 302
    jon = HubClient(stack)
    assert jon.login("jon", GOOD_PASSWORD).status_code == 302
    token = jon.token_from_session("jon")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{stack.gateway}/v1/models", headers=headers).status_code == 403
    assert admin.api("POST", "/groups/scientists/users", json={"users": ["jon"]}).status_code == 200
    # a fresh token carries the scope the new group grants
    token = jon.token_from_session("jon")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{stack.gateway}/v1/models", headers=headers).status_code == 200


def test_groups_exist_with_default_properties(stack, admin):
    groups = {g["name"]: g for g in admin.api("GET", "/groups").json()}
    assert groups["athletes"]["properties"] == {"llm_tokens_per_day": 50000, "llm_priority": 0}
    assert groups["scientists"]["properties"] == {"llm_tokens_per_day": 200000, "llm_priority": 0}
    assert groups["priority"]["properties"] == {"llm_priority": 10}
