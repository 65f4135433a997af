"""Issue 17, item 11: every absolute URL the hub prints is on the public address people type.

Behind a TLS front (Caddy in Compose, autohttps or an ingress in k8s) the hub itself is reached
over plain HTTP: a link built from the request it answers (``http://``) would carry a one-time
invite token, or an OAuth code, across the network in clear text. ``SPORTHUB_PUBLIC_URL`` names
the address; without it, ``https`` comes only from a trusted proxy's ``X-Forwarded-Proto``.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from sporthub.hub.auth import SportHubOIDCAuthenticator
from sporthub.settings import SettingsError, load_settings
from tests.hub.test_k8s_profile import hub_config as k8s_hub_config
from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.stack import REPO, SPORTHUB, HubClient, make_stack, set_password, started

PUBLIC = "https://hub.club.example/"
OIDC = {"SPORTHUB_AUTH": "oidc", "SPORTHUB_OIDC_AUTHORIZE_URL": "https://id.club.example/auth",
        "SPORTHUB_OIDC_TOKEN_URL": "https://id.club.example/token",
        "SPORTHUB_OIDC_USERDATA_URL": "https://id.club.example/userinfo",
        "SPORTHUB_OIDC_CLIENT_ID": "sporthub", "SPORTHUB_OIDC_CLIENT_SECRET": "club-secret"}


@pytest.mark.parametrize("given, base_url, expected", [
    ("https://hub.club.example", "/", PUBLIC),
    ("https://hub.club.example/", "/", PUBLIC),
    ("https://hub.club.example:8443", "/sh/", "https://hub.club.example:8443/sh/"),
    ("https://club.example/sh", "/sh/", "https://club.example/sh/"),
])
def test_the_public_url_is_the_address_and_the_hubs_prefix(tmp_path, given, base_url, expected):
    settings = load_settings(data_dir=tmp_path, public_url=given, base_url=base_url)
    assert settings.public_url == settings.people_url == expected
    assert settings.local_url == f"http://127.0.0.1:8000{base_url}"


@pytest.mark.parametrize("given, problem", [
    ("hub.club.example", "must be http"),
    ("ftp://hub.club.example/", "must be http"),
    ("https://hub.club.example/other/", "path must be SPORTHUB_BASE_URL"),
    ("https://hub.club.example/?next=x", "no query"),
    ("https://user:pw@hub.club.example/", "credentials"),
])
def test_a_public_url_that_would_lead_elsewhere_is_refused(tmp_path, given, problem):
    with pytest.raises(SettingsError, match=f"SPORTHUB_PUBLIC_URL.*{problem}"):
        load_settings(data_dir=tmp_path, public_url=given)


def test_the_oauth_callback_is_on_the_public_url_in_the_k8s_profile(tmp_path):
    config = k8s_hub_config(tmp_path, SPORTHUB_PUBLIC_URL=PUBLIC, **OIDC)
    assert config["SportHubOIDCAuthenticator"]["oauth_callback_url"] == \
        f"{PUBLIC}hub/oauth_callback"
    assert config["JupyterHub"]["public_url"] == PUBLIC


def test_without_a_public_url_the_k8s_callback_follows_each_request(tmp_path):
    # the chart's proxy.https.hosts name the hub: the callback is built from the request's Host
    config = k8s_hub_config(tmp_path, SPORTHUB_PUBLIC_URL=None, **OIDC)
    assert config["SportHubOIDCAuthenticator"]["client_id"] == "sporthub"
    assert "oauth_callback_url" not in config["SportHubOIDCAuthenticator"]


def test_the_deployments_name_their_public_url():
    k8s = yaml.safe_load((REPO / "deploy/k8s/values.yaml").read_text())
    public = k8s["hub"]["extraEnv"]["SPORTHUB_PUBLIC_URL"]
    assert public == f"https://{k8s['proxy']['https']['hosts'][0]}/"
    compose = yaml.safe_load((REPO / "deploy/compose/compose.yaml").read_text())
    assert compose["services"]["hub"]["environment"]["SPORTHUB_PUBLIC_URL"] == \
        "https://${SPORTHUB_DOMAIN:?set SPORTHUB_DOMAIN in .env}/"


class _Context:
    def __init__(self, peer: str, port: int):
        self.address, self.protocol, self._orig_protocol = (peer, port), "http", "http"


class _Connection:
    def __init__(self, peer: str, port: int):
        self.context = _Context(peer, port)

    def set_close_callback(self, callback):
        pass


class _Handler:
    """What get_callback_url reads of a hub handler: the request (tornado's own) and the hub."""

    def __init__(self, peer: str, headers: dict):
        self.request = HTTPServerRequest(
            start_line=RequestStartLine("GET", "/hub/oauth_login", "HTTP/1.1"),
            headers=HTTPHeaders(headers), connection=_Connection(peer, 40000))
        # what tornado's xheaders make of the headers: the last X-Forwarded-Proto, from anyone
        self.request.protocol = headers.get("X-Forwarded-Proto", "http").split(",")[-1].strip()
        self.hub = type("Hub", (), {"server": type("Server", (), {"base_url": "/hub/"})})


def test_without_a_public_url_the_callback_scheme_comes_from_trusted_proxies_only():
    """k8s without SPORTHUB_PUBLIC_URL: OAuthenticator's guess believed anyone's header."""
    auth = SportHubOIDCAuthenticator(trusted_proxies=["10.0.0.0/8"], forwarded_hops=2)
    through_front = _Handler("10.1.2.3", {"Host": "hub.club.example",
                                          "X-Forwarded-For": "203.0.113.5, 10.1.2.4",
                                          "X-Forwarded-Proto": "https,http"})
    assert auth.get_callback_url(through_front) == "https://hub.club.example/hub/oauth_callback"
    stranger = _Handler("192.0.2.9", {"Host": "hub.club.example", "X-Forwarded-For": "1.2.3.4",
                                      "X-Forwarded-Proto": "https"})
    assert auth.get_callback_url(stranger) == "http://hub.club.example/hub/oauth_callback"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # no chat here: a backend that answers like one, so no model needs loading
    with FakeBackend() as backend:
        backends = json.dumps([{"name": "fake", "url": backend.url, "api_key": KEY,
                                "models": [MODEL]}])
        stack = make_stack(tmp_path_factory.mktemp("public-url"), public_url=PUBLIC,
                           llm_backends=backends)
        with started(stack):
            yield stack


@pytest.mark.stack
def test_an_invite_link_is_on_the_public_url_whoever_asks(stack):
    """The admin's CLI calls the hub on this machine (http://127.0.0.1): the link it prints is
    still the public https one, and its token opens the page once it reaches the hub."""
    done = subprocess.run([str(SPORTHUB), "users", "add", "ivan", "--group", "athletes"],
                          cwd=stack.data_dir.parent, env=stack.env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "SportHub" not in done.stderr
    [url] = [line.split(": ", 1)[1] for line in done.stdout.splitlines()
             if "/hub/invite?token=" in line]
    assert url.startswith(f"{PUBLIC}hub/invite?token="), url
    # the same link, as the front hands it to the hub: the person sets a password with it
    assert set_password(url.replace(PUBLIC, f"{stack.url}/"), "river-stone-lantern-42"
                        ).status_code == 302
    # the sign-in cookie is for https only (the public address is https): a browser sends it
    # back only over TLS
    login = HubClient(stack).login("ivan", "river-stone-lantern-42")
    assert login.status_code == 302
    assert any(c.lower().startswith("jupyterhub-hub-login=") and "; secure" in c.lower()
               for c in login.headers.get_list("set-cookie")), login.headers
