"""The local profile is safe by construction: run as root, each person's server is a system user of
its own that cannot read another person's files, the hub's secrets, ledger or service environments;
run as anyone else, the hub is a single-person trial on loopback only."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest
import websockets
from traitlets.config import Config

from sporthub.hub.config import configure
from sporthub.hub.localusers import (
    ensure_system_user,
    prepare_user_environment,
    system_username,
    user_environment_variables,
)
from sporthub.settings import load_settings
from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.stack import SPORTHUB, HubClient, create_account, free_port, set_password

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="system users need a hub run as root")
NOBODY = pwd.getpwnam("nobody")

PROBE = """#!/bin/bash
# what a curious person tries from their own terminal
check() { if cat "$1" >/dev/null 2>&1; then echo "READ $1"; else echo "DENIED $1"; fi; }
if ls "$OTHER_HOME" >/dev/null 2>&1; then echo "READ $OTHER_HOME"; else echo "DENIED $OTHER_HOME"; fi
for path in "$@"; do check "$path"; done
echo "USER $(id -un)"
echo "SETTINGS $(env | grep -c '^SPORTHUB_')"
grep -l -a -F -f ~/needles.txt /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null \\
    | sed 's/^/LEAK /'
echo FINISHED
"""


class Person:
    """Someone invited by the admin who set a password and logged in through the form."""

    def __init__(self, stack, admin, name: str, group: str):
        self.stack, self.name = stack, name
        password = "long-intervals-on-tuesday"
        assert set_password(create_account(admin, name, group), password).status_code == 302
        self.client = HubClient(stack)
        assert self.client.login(name, password).status_code == 302
        self.token = self.client.token_from_session(name)
        self.client.start_server(name)

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.stack.url}/user/{self.name}/api{path}", timeout=30,
                             headers={"Authorization": f"token {self.token}"}, **kwargs)

    def write(self, path: str, text: str) -> None:
        response = self.api("PUT", f"/contents/{path}",
                            json={"type": "file", "format": "text", "content": text})
        assert response.status_code in (200, 201), response.text

    async def terminal(self, command: str, end: str = "FINISHED", timeout: float = 60) -> list[str]:
        """Type ``command`` into a new JupyterLab terminal; the output lines up to ``end``."""
        name = self.api("POST", "/terminals").json()["name"]
        url = f"ws://127.0.0.1:{self.stack.env['SPORTHUB_PORT']}/user/{self.name}/terminals/" \
              f"websocket/{name}"
        output = ""
        async with websockets.connect(
                url, additional_headers={"Authorization": f"token {self.token}"}) as ws:
            await ws.send(json.dumps(["stdin", command + "\r"]))
            async with asyncio.timeout(timeout):
                while f"\n{end}" not in output:
                    kind, *data = json.loads(await ws.recv())
                    if kind == "stdout":
                        output += data[0]
        self.api("DELETE", f"/terminals/{name}")
        return [line.strip() for line in output.splitlines()]


@pytest.fixture(scope="module")
def people(stack, admin):
    everyone = {"athlete": Person(stack, admin, "ath", "athletes"),
                "scientist": Person(stack, admin, "sci", "scientists")}
    yield everyone
    # the shared stack admits five servers at once: give the places back
    for person in everyone.values():
        admin.api("DELETE", f"/users/{person.name}/server")


def server_process(name: str) -> psutil.Process:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "jupyterhub-singleuser" in cmdline and process.environ().get("JUPYTERHUB_USER") == name:
            return process
    raise AssertionError(f"no server process of {name}")


@pytest.mark.stack
@as_root
def test_each_person_gets_a_system_user_with_a_private_home(stack, people):
    users = {stack.system_user(p.name).pw_uid for p in people.values()}
    assert len(users) == 2 and min(users) >= 1000
    for person in people.values():
        user = stack.system_user(person.name)
        home = Path(user.pw_dir).stat()
        assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (user.pw_uid, 0o700)
        process = server_process(person.name)
        assert process.uids().real == process.uids().effective == user.pw_uid
        assert process.environ()["HOME"] == user.pw_dir
        # user servers get none of the hub's settings (backend keys, passwords)
        assert not [k for k in process.environ() if k.startswith("SPORTHUB_")]


@pytest.mark.stack
@as_root
def test_from_her_terminal_a_person_reads_nothing_of_another_person_or_of_the_hub(stack, people):
    athlete, scientist = people["athlete"], people["scientist"]
    scientist.write("private.txt", "the scientist's unpublished results")
    athlete.write("own.txt", "mine")
    other_home = stack.system_user(scientist.name).pw_dir
    data = stack.data_dir.resolve()
    secrets = sorted((data / "secrets").iterdir())
    assert {p.name for p in secrets} >= {"cli-api-token", "proxy-token", "jupyterhub_cookie_secret"}
    # the hub, the gateway (which holds the backends' keys) and the rest of the stack
    commands = {p.pid: " ".join(p.cmdline()) for p in stack.processes()}
    pids = [pid for pid, command in commands.items() if "singleuser" not in command]
    assert any("-m sporthub.gateway" in commands[pid] for pid in pids)
    targets = [f"{other_home}/private.txt", str(data / "secrets"), *map(str, secrets),
               str(data / "gateway.sqlite"), str(data / "jupyterhub.sqlite"),
               str(data / "accounts.sqlite"), str(data / "gateway-audit.jsonl"),
               *(f"/proc/{pid}/environ" for pid in pids)]
    # every secret the hub holds, to look for in every process environment and command line
    needles = [p.read_text().strip() for p in secrets] + [stack.admin_password]
    athlete.write("needles.txt", "\n".join(needles) + "\n")
    athlete.write("probe.sh", PROBE)

    own_home = stack.system_user(athlete.name).pw_dir
    lines = asyncio.run(athlete.terminal(
        f"OTHER_HOME={other_home} bash ~/probe.sh {own_home}/own.txt {' '.join(targets)}"))
    results = dict(line.split(" ", 1)[::-1] for line in lines
                   if line.startswith(("READ ", "DENIED ")))
    assert results[f"{own_home}/own.txt"] == "READ", lines  # the probe can read what it may
    assert {p: results.get(p) for p in [other_home, *targets]} == \
        {p: "DENIED" for p in [other_home, *targets]}, lines
    assert f"USER {stack.system_user(athlete.name).pw_name}" in lines
    assert "SETTINGS 0" in lines
    assert not [line for line in lines if line.startswith("LEAK ")], lines


# what a person's process can reach on this machine's loopback ports, and what each answers;
# run from a JupyterLab terminal (the person's own system user), with the person's own token
PORT_PROBE = """
import json, os, urllib.error, urllib.request

class Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None  # a redirect is an answer: report it, do not follow it

opener = urllib.request.build_opener(Stay)
token = os.environ["JUPYTERHUB_API_TOKEN"]
for name, method, url, body, headers in json.load(open(os.path.expanduser("~/targets.json"))):
    headers = {k: v.replace("$TOKEN", token) for k, v in headers.items()}
    request = urllib.request.Request(url, body.encode() if body else None, headers, method=method)
    try:
        status = opener.open(request, timeout=120).status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError as e:
        status = "unreachable"
    print("PORT", name, status)
print("FINISHED")
"""


@pytest.mark.stack
@as_root
def test_from_her_terminal_each_loopback_port_answers_only_what_it_may(stack, people):
    """Issue 17, item 3: every service on 127.0.0.1, called straight from a person's process.

    Reachable is not the question on one machine (loopback is everyone's): each port must answer
    a person without credentials as it answers a stranger, and no port may take the client's
    address from a header a local process wrote: the gateway's audit log names the connection's
    own address, not the forged X-Forwarded-For."""
    athlete = people["athlete"]
    env = stack.env
    at = "http://127.0.0.1:{}".format
    # the embedded model, or the stack's configured backend
    configured = json.loads(env.get("SPORTHUB_LLM_BACKENDS") or "[]")
    backend = configured[0]["url"] if configured else at(env["SPORTHUB_EMBEDDED_LLM_PORT"])
    model = configured[0]["models"][0] if configured else "smollm2-135m-instruct"
    chat = json.dumps({"model": model, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "Hi"}]})
    own, forged = {"Authorization": "Bearer $TOKEN", "Content-Type": "application/json"}, \
        {"X-Forwarded-For": "10.6.6.6"}
    gateway = f"{at(env['SPORTHUB_GATEWAY_PORT'])}/services/llm/v1/chat/completions"
    targets = [
        ("proxy", "GET", f"{at(env['SPORTHUB_PORT'])}/hub/login", None, {}),
        ("proxy-api", "GET", f"{at(env['SPORTHUB_PROXY_API_PORT'])}/api/routes", None, {}),
        ("hub-api", "GET", f"{at(env['SPORTHUB_HUB_PORT'])}/hub/api/users", None, {}),
        ("hub-api-own-token", "GET", f"{at(env['SPORTHUB_HUB_PORT'])}/hub/api/users", None,
         {"Authorization": "token $TOKEN"}),
        ("gateway-no-token", "POST", gateway, chat, {"Content-Type": "application/json"}),
        ("gateway-forged-address", "POST", gateway, chat, {**own, **forged}),
        ("backend-no-key", "POST", f"{backend}/v1/chat/completions", chat,
         {"Content-Type": "application/json"}),
        ("backend-own-token", "POST", f"{backend}/v1/chat/completions", chat, own),
        ("usage", "GET", f"{at(env['SPORTHUB_USAGE_PORT'])}/services/usage/", None, {}),
        ("usage-own-token", "GET", f"{at(env['SPORTHUB_USAGE_PORT'])}/services/usage/", None,
         {"Authorization": "token $TOKEN"}),
    ]
    athlete.write("targets.json", json.dumps(targets))
    athlete.write("ports.py", PORT_PROBE)
    audit = stack.data_dir / "gateway-audit.jsonl"
    before = audit.read_text().count("\n") if audit.exists() else 0
    lines = asyncio.run(athlete.terminal("python3 ~/ports.py", timeout=180))
    answers = dict(line.split()[1:3] for line in lines if line.startswith("PORT "))
    assert answers == {
        "proxy": "200",  # the way in, as for everybody
        "proxy-api": "403",  # the proxy's routes need the hub's proxy token
        "hub-api": "403", "hub-api-own-token": "403",  # a person may not list the accounts
        "gateway-no-token": "401",
        "gateway-forged-address": "200",  # her own chat, on her own budget
        "backend-no-key": "401", "backend-own-token": "401",  # only the gateway has its key
        "usage": "302", "usage-own-token": "403",  # the usage page: admins only
    }, lines
    entries = [json.loads(line) for line in audit.read_text().splitlines()[before:]]
    hers = [e for e in entries if e["user"] == athlete.name]
    assert hers and {e["ip"] for e in hers} == {"127.0.0.1"}, hers


@pytest.mark.stack
@as_root
def test_the_data_directory_is_root_only(stack, people):
    data = stack.data_dir.resolve()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700 and data.stat().st_uid == 0
    loose = [(str(p), oct(p.stat().st_mode)) for p in data.rglob("*")
             if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert loose == []


@pytest.mark.stack
@as_root
def test_services_hold_only_the_secrets_they_need(stack, people):
    """Checked on the running processes: the stack sets SPORTHUB_ADMIN_PASSWORD for the hub."""
    environments = {}
    for process in stack.processes():
        env = process.environ()
        if "JUPYTERHUB_SERVICE_NAME" in env:
            environments[env["JUPYTERHUB_SERVICE_NAME"]] = env
    embedded = "SPORTHUB_LLM_BACKENDS" not in stack.env
    assert set(environments) == {"llm", "usage", "squad", "idle-culler"} | (
        {"llm-backend"} if embedded else set())
    for name, env in environments.items():
        assert stack.admin_password not in env.values(), name
        assert "SPORTHUB_ADMIN_PASSWORD" not in env
    assert not [k for k in environments["idle-culler"] if k.startswith("SPORTHUB_")]
    assert environments["usage"]["SPORTHUB_DATA_DIR"] == str(stack.data_dir.resolve())


def test_service_environments_carry_each_secret_only_where_it_is_needed(tmp_path, monkeypatch):
    key, password, metrics, client_secret = "backend-key-1", "admin-pw-1", "metrics-1", "oidc-1"
    ledger = "postgresql+psycopg://ledger:ledger-pw@db/sporthub"
    hub_db = "postgresql+psycopg://hub:hub-pw@db/hub"
    monkeypatch.setenv("SPORTHUB_DATA_DIR", str(tmp_path))
    settings = load_settings(
        admin_password=password, gateway_metrics_token=metrics, db_url=ledger, hub_db_url=hub_db,
        llm_backends=[{"name": "gpu", "url": "http://127.0.0.1:9", "api_key": key,
                       "models": ["m"]}],
        auth="oidc", oidc_authorize_url="http://idp/a", oidc_token_url="http://idp/t",
        oidc_userdata_url="http://idp/u", oidc_client_id="sporthub", oidc_client_secret=client_secret)
    c = Config()
    configure(c, settings)
    assert c.JupyterHub.db_url == hub_db
    services = {s["name"]: json.dumps(s.get("environment", {})) for s in c.JupyterHub.services}
    holders = {secret: {name for name, env in services.items() if secret in env}
               for secret in (key, password, metrics, client_secret, ledger, hub_db)}
    assert holders == {key: {"llm"}, password: set(), metrics: {"llm"}, client_secret: set(),
                       # the squad keeps its tables on the ledger's server (issue 20)
                       ledger: {"llm", "usage", "squad"}, hub_db: set()}
    gateway = json.loads(services["llm"])
    assert json.loads(gateway["SPORTHUB_LLM_BACKENDS"])[0]["api_key"] == key
    # and each service can read its settings back (OIDC ones are only valid together)
    for name in ("llm", "usage", "squad"):
        monkeypatch.setattr(os, "environ", json.loads(services[name]))
        assert load_settings().data_dir == tmp_path, name


def test_system_user_names_are_valid_and_distinct():
    assert system_username("ann", "jupyter-") == "jupyter-ann"
    long = "a-very-long-name-from-the-club-provider"
    assert len(system_username(long, "jupyter-")) <= 32
    assert system_username(long, "jupyter-") != system_username(long + "x", "jupyter-")
    # an e-mail address from OIDC: characters useradd refuses are replaced, a hash keeps it unique
    mail = system_username("Ann@Club.org", "jupyter-")
    assert mail.startswith("jupyter-ann-club.org-") and mail != system_username("ann.club.org",
                                                                                  "jupyter-")


@as_root
def test_a_system_account_is_never_used_for_a_person():
    with pytest.raises(RuntimeError, match="system account"):
        ensure_system_user("nobody" if NOBODY.pw_uid < 1000 else "root", "nobody")


def up_command(home: Path, as_nobody: bool, **settings: str) -> tuple[list[str], dict, dict]:
    """``sporthub up`` with only these settings; as nobody, the hub of a single-person trial."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "SPORTHUB_DATA_DIR": str(home / "data"),
           **{f"SPORTHUB_{k.upper()}": v for k, v in settings.items()}}
    if not as_nobody:
        return [str(SPORTHUB), "up"], env, {}
    # the hub's own interpreter may be one nobody cannot run (pyenv's, in /root): use the
    # environment prepared for people's servers, which sees the same packages
    python = prepare_user_environment() / "bin" / "python"
    env |= user_environment_variables()
    ids = {"user": NOBODY.pw_uid, "group": NOBODY.pw_gid, "extra_groups": []}
    return [str(python), "-m", "sporthub.cli", "up"], env, ids


def run_up(home: Path, as_nobody: bool = False, **settings: str) -> subprocess.CompletedProcess:
    command, env, ids = up_command(home, as_nobody, **settings)
    return subprocess.run(command, cwd=home, env=env, capture_output=True, text=True,
                          timeout=120, check=False, **ids)


def start_up(home: Path, log: Path, **settings: str) -> subprocess.Popen:
    command, env, ids = up_command(home, True, **settings)
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT,
                                **ids)


@as_root
def test_a_hub_not_run_as_root_refuses_to_listen_beyond_this_machine(tmp_path):
    tmp_path.chmod(0o777)
    result = run_up(tmp_path, as_nobody=True, ip="0.0.0.0")
    assert result.returncode == 2, result.stderr
    assert "SPORTHUB_IP=0.0.0.0" in result.stderr and "SPORTHUB_PROFILE=docker" in result.stderr
    assert not (tmp_path / "data").exists(), "refused before anything was written"


@as_root
def test_a_hub_not_run_as_root_refuses_a_memory_limit_it_could_not_hold(tmp_path):
    tmp_path.chmod(0o777)
    result = run_up(tmp_path, as_nobody=True, user_mem_limit="1G")
    assert result.returncode == 2, result.stderr
    assert "SPORTHUB_USER_MEM_LIMIT" in result.stderr and "root" in result.stderr
    assert not (tmp_path / "data").exists(), "refused before anything was written"


@pytest.mark.stack
@as_root
def test_a_hub_not_run_as_root_says_it_is_a_single_person_trial():
    fake = FakeBackend().start()
    home = Path(tempfile.mkdtemp(prefix="sporthub-trial-"))
    os.chown(home, NOBODY.pw_uid, NOBODY.pw_gid)
    backends = json.dumps([{"name": "fake", "url": fake.url, "api_key": KEY, "models": [MODEL]}])
    settings = {"port": str(free_port()), "hub_port": str(free_port()),
                "proxy_api_port": str(free_port()), "gateway_port": str(free_port()),
                "usage_port": str(free_port()), "llm_backends": backends}
    log = home / "up.log"
    hub = start_up(home, log, **settings)
    try:
        deadline = time.monotonic() + 240
        while "SportHub is running at" not in log.read_text():
            assert hub.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert "single-person trial" in log.read_text()
        assert {p.uids().real for p in psutil.Process(hub.pid).children(recursive=True)} == \
            {NOBODY.pw_uid}
    finally:
        hub.terminate()
        hub.wait(60)
        fake.stop()
        shutil.rmtree(home)
