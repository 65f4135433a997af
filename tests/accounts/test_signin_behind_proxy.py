"""Issue 17: sign-in throttling behind a TLS front (Caddy in Compose, an ingress in k8s).

The test plays Caddy: it connects to the hub's proxy (CHP) from its own loopback address, listed
in SPORTHUB_TRUSTED_PROXIES, with the headers Caddy sends (X-Forwarded-For with the client's
address, X-Forwarded-Proto, X-Forwarded-Host). CHP appends Caddy's address: two hops.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import time

import httpx
import pytest

from sporthub.forwarded import (
    _diag_owner,
    client_address,
    client_scheme,
    from_this_machines_user,
    socket_owner,
)
from sporthub.settings import SettingsError, load_settings
from tests.support.stack import HubClient, create_account, make_stack, set_password, started

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
    with started(stack):
        stack.admin = HubClient.admin(stack)
        yield stack


@pytest.mark.stack
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


@pytest.mark.stack
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


@pytest.mark.stack
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



@pytest.mark.stack
def test_an_invite_link_made_behind_the_front_is_https(stack):
    """Issue 17, item 11: the one-time token must not cross the network in clear text."""
    stack.admin.api("POST", "/users/iris")
    headers = {"Authorization": f"token {stack.admin.token}", "Host": "hub.club.example"}
    with httpx.Client(transport=httpx.HTTPTransport(local_address=CADDY), timeout=30) as caddy:
        made = caddy.post(f"{stack.url}/hub/api/sporthub/invites/iris", headers={
            **headers, "X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"})
    assert made.status_code == 201, made.text
    assert made.json()["url"].startswith("https://hub.club.example/hub/invite?token=")
    # a caller that is not the front cannot make the hub print https (nor anything else)
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.91"),
                      timeout=30) as other:
        made = other.post(f"{stack.url}/hub/api/sporthub/invites/iris", headers={
            **headers, "X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"})
    assert made.json()["url"].startswith("http://hub.club.example/hub/invite?token=")


@pytest.mark.parametrize("forwarded, proto, expected", [
    ("203.0.113.5, 10.89.0.5", "https,http", "https"),  # Caddy's https, then CHP's http
    ("10.90.0.7", "https,http", "http"),  # not through the front: CHP's own entry
    ("203.0.113.5, 10.89.0.5", "gopher,http", "http"),
    (None, "https", "http"),
])
def test_the_scheme_is_the_one_at_the_believed_hop(forwarded, proto, expected):
    assert client_scheme("127.0.0.1", forwarded, proto, ["127.0.0.1", "10.89.0.0/24"], 2,
                         "http") == expected


# -- item 3: on loopback, only the proxy's own connection may name the client -------------------

# a person's process (its own system user in the local profile as root) signing in straight at
# the hub's port, a new X-Forwarded-For each time; /usr/bin/python3: the test's venv may not be
# readable by that user
GUESSER = """
import sys, urllib.error, urllib.parse, urllib.request
url, tries = sys.argv[1], int(sys.argv[2])
for i in range(tries):
    forged = {"X-Forwarded-For": f"10.7.7.{i}"}  # the hub's XSRF token is tied to it too
    page = urllib.request.urlopen(urllib.request.Request(url, headers=forged))
    cookies = dict(c.split(";")[0].split("=", 1) for c in page.headers.get_all("Set-Cookie"))
    data = urllib.parse.urlencode({"username": "admin", "password": "wrong-password-x",
                                   "_xsrf": cookies["_xsrf"].strip('"')}).encode()
    request = urllib.request.Request(url, data, {
        **forged, "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
    try:
        status = urllib.request.urlopen(request).status
    except urllib.error.HTTPError as e:
        status = e.code
    print(status)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to run a process as another user")
@pytest.mark.stack
def test_a_local_person_cannot_name_an_address_straight_at_the_hub(stack):
    hub_login = f"http://127.0.0.1:{stack.env['SPORTHUB_HUB_PORT']}/hub/login"
    done = subprocess.run(["/usr/bin/python3", "-c", GUESSER, hub_login, "6"], user="nobody",
                          cwd="/", capture_output=True, text=True, timeout=120, check=False)
    statuses = done.stdout.split()
    assert done.returncode == 0, done.stderr[-2000:]
    # counted as 127.0.0.1 (its own connection), not as six addresses: held up after three
    assert statuses[:3] == ["403"] * 3 and "429" in statuses[3:], statuses
    assert "from 10.7.7." not in stack.log()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to run a process as another user")
def test_the_owner_of_a_loopback_connection_is_known():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        connect = f"import socket, time; s = socket.create_connection(('127.0.0.1', {port})); " \
            "time.sleep(3)"
        child = subprocess.Popen(["/usr/bin/python3", "-c", connect], user="nobody", cwd="/")
        try:
            connection, (address, peer_port) = server.accept()
            with connection:
                local = connection.getsockname()
                nobody = pwd.getpwnam("nobody").pw_uid
                assert socket_owner(address, peer_port) == nobody
                # the kernel's exact lookup (netlink), what the gateway does for every request
                assert socket_owner(address, peer_port, local) == nobody
                started = time.perf_counter()
                for _ in range(20):
                    socket_owner(address, peer_port, local)
                assert (time.perf_counter() - started) / 20 < 0.005  # /proc: ~43 ms here
                assert _diag_owner(address, peer_port ^ 1, *local) is None  # no such connection
                assert not from_this_machines_user(address, peer_port, os.geteuid())
                assert not from_this_machines_user(address, peer_port, os.geteuid(), local)
                assert client_address(address, "10.7.7.7", ["127.0.0.1"], 1, peer_port,
                                      local) == "127.0.0.1"
                assert client_address(address, "10.7.7.7", ["127.0.0.1"], 1, peer_port) \
                    == "127.0.0.1"
        finally:
            child.kill()
            child.wait()
        with socket.create_connection(("127.0.0.1", port)) as own:
            connection, (address, peer_port) = server.accept()
            with connection:
                assert own.getsockname()[1] == peer_port
                assert client_address(address, "10.7.7.7", ["127.0.0.1"], 1, peer_port) \
                    == "10.7.7.7"
