"""Issue 17: sign-in throttling behind a TLS front (Caddy in Compose, an ingress in k8s).

The test plays Caddy: it connects to the hub's proxy (CHP) from its own loopback address, listed
in SPORTHUB_TRUSTED_PROXIES, with the headers Caddy sends (X-Forwarded-For with the client's
address, X-Forwarded-Proto, X-Forwarded-Host). CHP appends Caddy's address: two hops.
"""

from __future__ import annotations

import json

import pytest

from sporthub.forwarded import client_address
from sporthub.settings import SettingsError, load_settings
from tests.stack import HubClient, create_account, make_stack, set_password

CADDY = "127.0.0.90"  # the TLS front's address, as CHP sees it
GOOD_PASSWORD = "river-stone-lantern-42"


def through_caddy(stack, client: str) -> HubClient:
    """A browser at ``client`` whose requests come through the TLS front."""
    browser = HubClient(stack, address=CADDY)
    browser.http.headers.update({"X-Forwarded-For": client, "X-Forwarded-Proto": "https",
                                 "X-Forwarded-Host": "hub.club.example"})
    return browser


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = make_stack(tmp_path_factory.mktemp("behind-caddy"), forwarded_hops="2",
                       trusted_proxies=json.dumps(["127.0.0.1", "::1", CADDY]),
                       login_max_failures="3")
    stack.start()
    stack.admin = HubClient.admin(stack)
    yield stack
    stack.descendants = stack.processes()
    stack.stop()


def test_a_stranger_behind_the_front_does_not_hold_up_the_admin(stack):
    stranger = through_caddy(stack, "203.0.113.5")
    for _ in range(3):
        assert stranger.login(stack.admin_user, "wrong-password-x").status_code == 403
    for i in range(20):  # and across many accounts: the address-wide count fills
        stranger.login(f"nobody{i}", "wrong-password-x")
    assert stranger.login(stack.admin_user, stack.admin_password).status_code == 429
    # the admin, another client behind the same front, signs in
    admin = through_caddy(stack, "198.51.100.7")
    assert admin.login(stack.admin_user, stack.admin_password).status_code == 302
    log = stack.log()
    assert "from 203.0.113.5" in log and f"from {CADDY}" not in log


def test_people_behind_one_address_are_not_held_up_by_strangers_there(stack):
    """A club's network: one address for everybody; strangers fill its address-wide count."""
    url = create_account(stack.admin, "hana", group="athletes")
    assert set_password(url, GOOD_PASSWORD).status_code == 302
    stranger = through_caddy(stack, "192.0.2.44")
    for i in range(15):
        stranger.login(f"guess{i}", "wrong-password-x")
    # the address is slowed down: a second try at an account that failed from it waits
    assert stranger.login("guess0", "wrong-password-x").status_code == 429
    # hana, at the same address, with her password: her first try is checked, and succeeds
    assert through_caddy(stack, "192.0.2.44").login("hana", GOOD_PASSWORD).status_code == 302


def test_a_local_process_bypassing_the_front_cannot_name_its_address(stack):
    """Only the front's hop is read: anyone else reaching CHP directly is its own address."""
    forger = HubClient(stack, address="127.0.0.91")
    for i in range(4):
        forger.http.headers.update({"X-Forwarded-For": f"10.9.9.{i}, 10.8.8.{i}"})
        forger.login("hana", "wrong-password-x")
    assert forger.login("hana", GOOD_PASSWORD).status_code == 429
    assert "from 127.0.0.91" in stack.log()


FRONT = "10.89.0.5"  # a TLS front on a network of its own, trusted by range


@pytest.mark.parametrize("peer, forwarded, expected", [
    ("127.0.0.1", f"203.0.113.5, {FRONT}", "203.0.113.5"),  # through the front
    ("127.0.0.1", "6.6.6.6, 10.90.0.7", "10.90.0.7"),  # straight at CHP: not the front
    ("127.0.0.1", f"6.6.6.6, 203.0.113.5, {FRONT}", "203.0.113.5"),  # forged left of the front
    ("192.0.2.1", f"203.0.113.5, {FRONT}", "192.0.2.1"),  # not from our proxy at all
    ("127.0.0.1", f"not-an-address, {FRONT}", FRONT),
    ("127.0.0.1", "203.0.113.5", "203.0.113.5"),  # fewer entries than hops
    ("::ffff:127.0.0.1", f"203.0.113.5, {FRONT}", "203.0.113.5"),  # dual-stack socket
])
def test_the_client_is_read_through_trusted_hops_only(peer, forwarded, expected):
    assert client_address(peer, forwarded, ["127.0.0.1", "::1", "10.89.0.0/24"], 2) == expected


def test_the_renamed_settings_are_refused_with_their_new_names(monkeypatch, tmp_path):
    monkeypatch.setenv("SPORTHUB_GATEWAY_FORWARDED_HOPS", "2")
    with pytest.raises(SettingsError, match="SPORTHUB_FORWARDED_HOPS"):
        load_settings(data_dir=tmp_path)
    monkeypatch.delenv("SPORTHUB_GATEWAY_FORWARDED_HOPS")
    with pytest.raises(SettingsError, match="SPORTHUB_TRUSTED_PROXIES.*not an IP address"):
        load_settings(data_dir=tmp_path, trusted_proxies=["caddy"])
    assert load_settings(data_dir=tmp_path, trusted_proxies=["10.0.0.0/8"]).trusted_proxies

