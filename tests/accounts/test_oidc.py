"""Sign-in with OpenID Connect, end to end against the real ``oidc-provider-mock`` (own venv)."""

from __future__ import annotations

import json
import subprocess
import time
from urllib.parse import quote

import httpx
import pytest

from tests.support.stack import REPO, HubClient, free_port, make_stack, started

pytestmark = pytest.mark.stack

MOCK_PYTHON = REPO / ".venv-oidc" / "bin" / "python"


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    proc = subprocess.Popen([str(MOCK_PYTHON), "-m", "oidc_provider_mock", "--port", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/.well-known/openid-configuration").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def oidc_stack(tmp_path_factory, provider):
    stack = make_stack(
        tmp_path_factory.mktemp("oidc-stack"), auth="oidc", max_accounts="3",
        oidc_authorize_url=f"{provider}/oauth2/authorize",
        oidc_token_url=f"{provider}/oauth2/token", oidc_userdata_url=f"{provider}/userinfo",
        oidc_client_id="sporthub", oidc_client_secret="club-secret",
        oidc_group_map=json.dumps({"athletes": "athletes", "scientists": "scientists",
                                   "club-admins": "hub-admins"}),
        oidc_admin_groups='["hub-admins"]')
    with started(stack):
        yield stack


def sign_in(stack, provider: str, sub: str, headers: dict | None = None,
            **claims) -> tuple[HubClient, httpx.Response]:
    """The browser's round trip: hub -> provider's form -> hub's callback."""
    assert httpx.put(f"{provider}/users/{quote(sub)}",
                     json={"preferred_username": sub, **claims}).status_code == 204
    person = HubClient(stack)
    person.http.headers.update(headers or {})
    to_provider = person.http.get("/hub/oauth_login", follow_redirects=False)
    assert to_provider.status_code == 302
    assert to_provider.headers["location"].startswith(f"{provider}/oauth2/authorize")
    back = httpx.post(to_provider.headers["location"], data={"sub": sub})
    assert back.status_code == 302, back.text
    callback = back.headers["location"]
    assert callback.startswith(f"{stack.url}/hub/oauth_callback")
    return person, person.http.get(callback, follow_redirects=False)


def test_provider_groups_decide_access_groups_and_admin(oidc_stack, provider):
    boss, done = sign_in(oidc_stack, provider, "boss", groups=["club-admins"])
    assert done.status_code == 302, done.text
    boss.token_from_session("boss")
    assert boss.api("GET", "/users/boss").json()["admin"] is True

    olga, done = sign_in(oidc_stack, provider, "olga", groups=["athletes", "club-board"])
    assert done.status_code == 302, done.text
    model = boss.api("GET", "/users/olga").json()
    assert model["groups"] == ["athletes"] and model["admin"] is False
    token = olga.token_from_session("olga")
    models = httpx.get(f"{oidc_stack.gateway}/v1/models",
                       headers={"Authorization": f"Bearer {token}"})
    assert models.status_code == 200, models.text
    # the role groups were made at start, with their default budgets
    athletes = boss.api("GET", "/groups/athletes").json()
    assert athletes["properties"] == {"llm_tokens_per_day": 50000, "llm_priority": 0}

    _, refused = sign_in(oidc_stack, provider, "visitor", groups=["club-board"])
    assert refused.status_code == 403
    assert boss.api("GET", "/users/visitor").status_code == 404


def test_first_sign_in_over_the_cap_is_refused(oidc_stack, provider):
    _, done = sign_in(oidc_stack, provider, "pete", groups=["scientists"])
    assert done.status_code == 302, done.text  # account 3 of 3
    _, refused = sign_in(oidc_stack, provider, "quinn", groups=["athletes"])
    assert refused.status_code == 403
    assert "limited to 3 accounts" in refused.text
    # a Russian browser reads it in Russian (sporthub/i18n.py)
    _, russian = sign_in(oidc_stack, provider, "rita", headers={"Accept-Language": "ru"},
                         groups=["athletes"])
    assert russian.status_code == 403
    assert "SportHub рассчитан на 3 учётные записи, и все они заняты" in russian.text
    assert "limited to" not in russian.text
    # refused before the hub made the account: no half-made account that a retry would let in
    boss, _ = sign_in(oidc_stack, provider, "boss", groups=["club-admins"])
    boss.token_from_session("boss")
    assert boss.api("GET", "/users/quinn").status_code == 404
    assert len(boss.api("GET", "/users").json()) == 3
    _, retry = sign_in(oidc_stack, provider, "quinn", groups=["athletes"])
    assert retry.status_code == 403
    _, again = sign_in(oidc_stack, provider, "olga", groups=["athletes"])
    assert again.status_code == 302, again.text


def test_people_removed_at_the_provider_no_longer_sign_in(oidc_stack, provider):
    """Known accounts get no pass: the provider's groups decide at every sign-in."""
    _, before = sign_in(oidc_stack, provider, "olga", groups=["athletes"])
    assert before.status_code == 302, before.text
    _, left = sign_in(oidc_stack, provider, "olga", groups=["club-board"])
    assert left.status_code == 403
    _, no_groups = sign_in(oidc_stack, provider, "olga")
    assert no_groups.status_code == 403
    # back in an allowed group, back in
    _, back = sign_in(oidc_stack, provider, "olga", groups=["athletes"])
    assert back.status_code == 302, back.text
    # an admin who left the admin group (and every allowed one) is out as well
    _, ex_admin = sign_in(oidc_stack, provider, "boss", groups=["club-board"])
    assert ex_admin.status_code == 403
