"""The images themselves: what is in them, what is not, and that the hub image builds here."""

from __future__ import annotations

import time

import pytest

from sporthub.containers import images
from tests.containers.conftest import TAG, record

pytestmark = pytest.mark.containers


def test_the_hub_image_builds_and_carries_hub_gateway_squad_proxy_and_dockerspawner(engine):
    started = time.monotonic()
    tag, built = images.build(engine, "hub", tag=f"sporthub-hub:{TAG}", base="debian")
    record("hub image " + ("build" if built else "check (cached)"), time.monotonic() - started)
    result = engine.run("run", "--rm", "--network", "none", tag, "sh", "-c",
                        "configurable-http-proxy --version && jupyterhub --version && "
                        "python -c 'import dockerspawner, sporthub.gateway, sporthub.usage, "
                        # the squad service summarises each shared recording with sportlab
                        "sporthub.squad.app, sportlab.session, "
                        "kubespawner, sporthub.hub.profiles.k8s, tornado.curl_httpclient' && "
                        "sporthub --help >/dev/null && pg_dump --version && "
                        "pg_restore --version && echo ok", capture_output=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] == "5.1.0" and lines[1].startswith("6.1.1") and lines[-1] == "ok", lines
    # `sporthub backup` in the Compose stack dumps PostgreSQL 15 (compose.yaml)
    assert "(PostgreSQL) 15." in result.stdout, result.stdout


def test_the_user_image_runs_as_uid_1000_and_holds_no_secret(engine, image):
    names = ("admin-password", "jupyterhub_cookie_secret", "proxy-token", "cli-api-token",
             "embedded-llm-key", "pseudonym-key", "jupyterhub.sqlite", "accounts.sqlite",
             "gateway.sqlite")
    found = " -o ".join(f"-name {n}" for n in names)
    result = engine.run("run", "--rm", "--network", "none", image, "sh", "-c",
                        f"id -u; find / -xdev \\( {found} \\) -print 2>/dev/null; "
                        "ls /opt/sporthub/etc/jupyter/jupyter_server_config.py "
                        "/opt/sporthub/etc/ipython/ipython_config.py; env",
                        capture_output=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "1000"
    # Jupyter AI's configuration is installed system-wide; no secret file of the hub is inside
    assert sorted(lines[1:3]) == ["/opt/sporthub/etc/ipython/ipython_config.py",
                                  "/opt/sporthub/etc/jupyter/jupyter_server_config.py"], lines[:3]
    # and the environment names no key or token: Jupyter AI gets the person's token at run time
    assert not [line for line in lines if "=" in line and line.split("=")[0].endswith(
        ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD"))]
