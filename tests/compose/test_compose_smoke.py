"""The production Compose stack for real, under podman, with the CPU model: a smoke run.

compose.yaml + compose.cpu.yaml (llama-server with SmolLM2 instead of vLLM, what a club without
a GPU runs) + compose.smoke.yaml (this machine's stand-ins for public images, a loopback port),
brought up by podman-compose with the secrets of ``sporthub secrets``. Through the TLS front
(Caddy, internal CA, trusted here from Caddy's own root): a login, a person's JupyterLab
container spawned by the hub, a chat answer through the gateway with the person's own token;
and Prometheus scrapes every target. Whatever happens, everything the run started goes away.

``make test-compose`` (marker ``compose``): images built from a Debian base made here, cached by
their inputs; the engine is podman with SportHub's own storage and API socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from sporthub.containers import engine as engines
from sporthub.containers import images
from tests.compose.conftest import TIMINGS
from tests.containers import kernel
from tests.support.stack import REPO, SPORTHUB

pytestmark = [pytest.mark.compose, pytest.mark.timeout(3600), pytest.mark.stack]

HERE = Path(__file__).parent
COMPOSE = REPO / "deploy" / "compose"
PODMAN_COMPOSE = REPO / ".venv-deploy" / "bin" / "podman-compose"
SERVICES_IMAGE = "localhost/sporthub-smoke-services:latest"
FILES = ("compose.yaml", "compose.cpu.yaml", "compose.smoke.yaml")
# every scrape job of prometheus.cpu.yml; none may be left down
JOBS = {"hub", "gateway", "llm", "node", "prometheus"}
PASSWORD = "long-enough-pass-42"


def say(message: str) -> None:
    print(f"[compose smoke] {message}", flush=True)


@dataclass
class Stack:
    directory: Path
    project: str
    url: str
    tls: ssl.SSLContext
    env: dict[str, str]
    users_network: str

    def compose(self, *args: str, timeout: float = 600,
                check: bool = True) -> subprocess.CompletedProcess:
        command = [str(PODMAN_COMPOSE), "-p", self.project,
                   *[a for f in FILES for a in ("-f", f)], *args]
        done = subprocess.run(command, cwd=self.directory, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"podman-compose {' '.join(args)} failed "
                                 f"({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return done

    def exec(self, service: str, *command: str) -> str:
        return self.compose("exec", "-T", service, *command, timeout=120).stdout

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.tls, timeout=60)


def podman(engine: engines.Engine, *args: str, check: bool = True) -> str:
    return engine.run(*args, check=check, capture_output=True).stdout


def build_services_image(engine: engines.Engine) -> bool:
    """The Debian stand-ins for the public images, rebuilt only when their inputs change."""
    base = images.debian_base(engine, say)
    digest = hashlib.sha256(images.image_id(engine, base).encode())
    for file in sorted((HERE / "services").iterdir()):
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    label = digest.hexdigest()[:16]
    if images.image_label(engine, SERVICES_IMAGE) == label:
        return False
    engine.run("build", "--network", "host", "--label", f"{images.INPUTS_LABEL}={label}",
               "--build-arg", f"BASE_IMAGE={base}", "-t", SERVICES_IMAGE, str(HERE / "services"))
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_env(directory: Path, values: dict[str, str]) -> None:
    """.env from .env.example (as an admin makes it), with this run's values."""
    lines = (directory / ".env.example").read_text().splitlines()
    done = set()
    for i, line in enumerate(lines):
        name = line.split("=", 1)[0]
        if "=" in line and not line.startswith("#") and name in values:
            lines[i] = f"{name}={values[name]}"
            done.add(name)
    lines += [f"{k}={v}" for k, v in values.items() if k not in done]
    (directory / ".env").write_text("\n".join(lines) + "\n")


def wait_for(what: str, check, timeout: float, interval: float = 2):
    """``check()`` until it returns something true; its last failure is in the error."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except (httpx.HTTPError, AssertionError, OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


@pytest.fixture(scope="module")
def engine():
    """podman's API on a socket of this run's own, which the compose hub mounts: another run's
    service may stop while this one runs (its socket goes; Compose would then bind-mount a new,
    empty directory in its place). Same storage, so the same images."""
    found = engines.find(progress=say, serve=False)
    if found.kind == "docker":
        yield found
        return
    engine = engines.Engine("podman", engines.RUN_DIR / f"smoke-{uuid.uuid4().hex[:8]}.sock",
                            env=found.env)
    engine.service = engines.start_service(engine, progress=say)
    yield engine
    engine.stop()
    engine.socket.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def built(engine) -> None:
    for name in ("hub", "singleuser", "llm"):
        started = time.monotonic()
        _, fresh = images.build(engine, name, base="debian", progress=say)
        TIMINGS[f"image {name} ({'built' if fresh else 'cached'})"] = time.monotonic() - started
    started = time.monotonic()
    fresh = build_services_image(engine)
    TIMINGS[f"image services ({'built' if fresh else 'cached'})"] = time.monotonic() - started


def bridged_traffic_dropped() -> bool:
    """Whether the host drops traffic between containers of one bridge: a FORWARD policy of DROP
    with br_netfilter on, as a Docker Engine leaves them, and netavark gives podman's internal
    networks no ACCEPT rule (the hub then never reaches PostgreSQL)."""
    sysctl = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if not sysctl.exists() or sysctl.read_text().strip() != "1":
        return False
    try:
        listed = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True,
                                check=False)
    except FileNotFoundError:
        return False  # no iptables: nothing set a policy
    return listed.stdout.startswith("-P FORWARD DROP")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, engine, built):
    assert not bridged_traffic_dropped(), (
        "this host drops bridged traffic (iptables' FORWARD policy is DROP and "
        "net.bridge.bridge-nf-call-iptables is 1, as a Docker Engine leaves them): the stack's "
        "internal networks would carry nothing. `iptables -P FORWARD ACCEPT` (or stop the other "
        "engine's rules) and run again")
    run = uuid.uuid4().hex[:8]
    directory = tmp_path_factory.mktemp("compose") / "compose"
    shutil.copytree(COMPOSE, directory)
    done = subprocess.run([str(SPORTHUB), "secrets", str(directory / "secrets")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    port = free_port()
    smoke = (HERE / "compose.smoke.yaml").read_text().replace("${SMOKE_HTTPS_PORT}", str(port))
    (directory / "compose.smoke.yaml").write_text(smoke)
    users_network = f"sporthub-smoke-{run}-users"
    write_env(directory, {
        "SPORTHUB_DOMAIN": "localhost",
        "SPORTHUB_TLS": "internal",
        "SPORTHUB_VERSION": "latest",  # the tags `images.build` gives
        "SPORTHUB_ENGINE_SOCKET": str(engine.socket),
        "SPORTHUB_USER_MEM_LIMIT": "1G",
        "SPORTHUB_USER_CPU_LIMIT": "1",
        "SPORTHUB_LLM_MAX_CONCURRENCY": "2",
        "LLM_CTX_SIZE": "8192",
        # answers no longer than the Coach's own: SmolLM2 on a busy 2-core machine
        "SPORTHUB_LLM_MAX_TOKENS": "300",
        "SMOKE_SERVICES_IMAGE": SERVICES_IMAGE,
        "SMOKE_USERS_NETWORK": users_network,
    })
    stack = Stack(directory, f"sporthub-smoke-{run}", f"https://localhost:{port}",
                  ssl.create_default_context(), {**os.environ, **engine.env}, users_network)
    try:
        started = time.monotonic()
        stack.compose("up", "-d", "--no-build", timeout=900)
        TIMINGS["podman-compose up -d"] = time.monotonic() - started
        # Caddy makes its internal CA at start: trust its root, as the members' devices do
        root = wait_for("Caddy's internal root", lambda: stack.exec(
            "caddy", "cat", "/data/caddy/pki/authorities/local/root.crt"), timeout=120)
        stack.tls = ssl.create_default_context(cadata=root)
        with stack.client() as http:
            try:
                wait_for("the hub's login page through Caddy",
                         lambda: http.get("/hub/login").status_code == 200, timeout=600)
            except AssertionError as e:
                hub = stack.compose("logs", "--tail", "30", "hub", check=False, timeout=120)
                raise AssertionError(f"{e}\nthe hub's last lines:\n{hub.stdout[-4000:]}") from None
        TIMINGS["stack up to the login page"] = time.monotonic() - started
        yield stack
    finally:
        teardown(stack, engine)


def teardown(stack: Stack, engine: engines.Engine) -> None:
    """Everything this run started: the people's containers and homes, then the project."""
    log = stack.compose("logs", "--tail", "200", check=False, timeout=120)
    (stack.directory / "stack.log").write_text(log.stdout + log.stderr)
    say(f"the stack's last log lines: {stack.directory / 'stack.log'}")
    users_network = stack.users_network
    people = podman(engine, "ps", "-a", "--filter", f"network={users_network}", "--format",
                    "{{.Names}}", check=False).split()
    for name in people:
        podman(engine, "rm", "-f", "-t", "10", name, check=False)
        podman(engine, "volume", "rm", "-f", name.replace("sporthub-", "sporthub-home-", 1),
               check=False)
    stack.compose("down", "-v", "-t", "10", check=False, timeout=600)
    podman(engine, "network", "rm", "-f", users_network, check=False)
    label = f"label=io.podman.compose.project={stack.project}"
    left = {kind: podman(engine, kind, "ls", "-q", "--filter", label, check=False).split()
            for kind in ("container", "volume", "network")}
    left["container"] += podman(engine, "ps", "-aq", "--filter", f"network={users_network}",
                                check=False).split()
    assert not any(left.values()), f"left behind: {left}"


class Person:
    """A browser's session through the TLS front: the login form, then an API token."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.http = stack.client()
        self.token: str | None = None

    def login(self, name: str, password: str) -> httpx.Response:
        self.http.get("/hub/login")
        return self.http.post("/hub/login", data={
            "username": name, "password": password,
            "_xsrf": self.http.cookies.get("_xsrf", path="/hub/")})

    def token_from_session(self, name: str) -> str:
        response = self.http.post(f"/hub/api/users/{name}/tokens", json={"note": "smoke"},
                                  headers={"X-XSRFToken": self.http.cookies.get("_xsrf",
                                                                                path="/hub/")})
        response.raise_for_status()
        self.token = response.json()["token"]
        return self.token

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.http.request(method, f"/hub/api{path}", **kwargs,
                                 headers={"Authorization": f"token {self.token}"})


@pytest.fixture(scope="module")
def admin(stack) -> Person:
    person = Person(stack)
    password = (stack.directory / "secrets" / "admin-password").read_text().strip()
    assert person.login("admin", password).status_code == 302
    person.token_from_session("admin")
    return person


@pytest.fixture(scope="module")
def athlete(stack, admin) -> Person:
    """An athlete invited by the admin, who set a password and signed in through Caddy."""
    name = "smokeathlete"
    assert admin.api("POST", f"/users/{name}").status_code == 201
    assert admin.api("POST", "/groups/athletes/users", json={"users": [name]}).status_code == 200
    invite = admin.api("POST", f"/sporthub/invites/{name}")
    assert invite.status_code == 201, invite.text
    target = urlsplit(invite.json()["url"])
    person = Person(stack)
    page = person.http.get(f"{target.path}?{target.query}")
    assert page.status_code == 200, page.text
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
    done = person.http.post(target.path, data={**form, "password": PASSWORD,
                                               "password2": PASSWORD})
    assert done.status_code == 302, done.text
    person.http.cookies.clear()
    assert person.login(name, PASSWORD).status_code == 302
    person.token_from_session(name)
    person.name = name
    return person


def test_login_through_the_tls_front(stack, admin):
    # the certificate is Caddy's internal CA's, which nothing trusts by default
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{stack.url}/hub/login", timeout=30)
    page = admin.http.get("/hub/login")
    assert page.headers["strict-transport-security"].startswith("max-age=31536000")
    me = admin.api("GET", "/user")
    assert me.status_code == 200 and me.json()["name"] == "admin" and me.json()["admin"]
    # metrics are for Prometheus on the internal network only
    assert admin.http.get("/hub/metrics").status_code == 404


def test_chat_answer_through_the_gateway_with_the_persons_own_token(stack, athlete):
    started = time.monotonic()
    response = athlete.http.post(
        "/services/llm/v1/chat/completions", timeout=300,
        headers={"Authorization": f"Bearer {athlete.token}"},
        json={"model": "smollm2-135m-instruct", "max_tokens": 32,
              "messages": [{"role": "user", "content": "Say hello to a runner."}]})
    TIMINGS["chat answer through Caddy and the gateway"] = time.monotonic() - started
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["message"]["content"].strip()
    assert answer["usage"]["completion_tokens"] > 0
    # no token, no model
    refused = athlete.http.post("/services/llm/v1/chat/completions", json={
        "model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code in (401, 403)


def test_the_hub_spawns_the_persons_container_on_the_peoples_network(stack, athlete, engine):
    started = time.monotonic()
    response = athlete.api("POST", f"/users/{athlete.name}/server")
    assert response.status_code in (201, 202), response.text
    wait_for("the athlete's JupyterLab", lambda: athlete.api(
        "GET", f"/users/{athlete.name}").json()["servers"].get("", {}).get("ready"), timeout=300)
    TIMINGS["spawn through the compose hub"] = time.monotonic() - started
    status = athlete.http.get(f"/user/{athlete.name}/api/status",
                              headers={"Authorization": f"token {athlete.token}"})
    assert status.status_code == 200, status.text
    box = json.loads(podman(engine, "inspect", f"sporthub-{athlete.name}"))[0]
    assert box["Config"]["User"] == "1000:1000"
    assert box["HostConfig"]["Privileged"] is False
    # on the people's network alone: no way to the model, PostgreSQL or Prometheus
    assert list(box["NetworkSettings"]["Networks"]) == [stack.users_network]


def test_a_chat_from_inside_the_persons_container(stack, athlete):
    """What Jupyter AI does: the server's own token, to the gateway the hub set for it, over the
    people's network (hub:8000, the hub's proxy), from there to llama-server on the llm network."""
    started = time.monotonic()
    seen = json.loads(asyncio.run(kernel.run(stack.url, athlete.name, athlete.token, """
import json, os, urllib.request
request = urllib.request.Request(
    os.environ["OPENAI_API_BASE"] + "/chat/completions",
    headers={"Authorization": "Bearer " + os.environ["JUPYTERHUB_API_TOKEN"],
             "Content-Type": "application/json"},
    data=json.dumps({"model": "smollm2-135m-instruct", "max_tokens": 32,
                     "messages": [{"role": "user", "content": "One tip for a long run?"}]}).encode())
answer = json.load(urllib.request.urlopen(request, timeout=300))
print(json.dumps({"base": os.environ["OPENAI_API_BASE"], "answer": answer}))
""", timeout=360, tls=stack.tls)))
    TIMINGS["chat from inside the person's container"] = time.monotonic() - started
    assert seen["base"] == "http://hub:8000/services/llm/v1"
    assert seen["answer"]["choices"][0]["message"]["content"].strip()
    assert seen["answer"]["usage"]["completion_tokens"] > 0


def test_a_backup_taken_inside_the_running_hub_container(stack, athlete):
    """What the README tells the admin to run: `sporthub backup` in the hub container, with its
    settings and engine socket; PostgreSQL dumped with the image's pg_dump, the homes by volume."""
    # compose.yaml's ./backups bind mount: the archive lands on the server, off the data volume
    archive = "/srv/sporthub/backups/smoke-backup.tar.gz"
    started = time.monotonic()
    said = stack.exec("hub", "sporthub", "backup", archive)
    TIMINGS["sporthub backup in the hub container"] = time.monotonic() - started
    assert "NOT encrypted" in said, said
    names = json.loads(stack.exec("hub", "python3", "-c", (
        "import json, tarfile; "
        f"print(json.dumps(tarfile.open('{archive}').getnames()))")))
    assert {"databases/hub.pgdump", "databases/ledger.pgdump"} <= set(names), names
    # the athlete's home came out of their volume (the server was spawned above)
    assert any(n.startswith(f"homes/{athlete.name}/") for n in names), names
    on_the_server = stack.directory / "backups" / "smoke-backup.tar.gz"
    assert on_the_server.stat().st_mode & 0o777 == 0o600
    on_the_server.unlink()


def test_prometheus_sees_every_target_up(stack):
    query = ("import json, urllib.request; print(json.dumps(json.load(urllib.request.urlopen("
             "'http://prometheus:9090/api/v1/targets'))['data']['activeTargets']))")

    def targets():
        seen = {t["labels"]["job"]: t for t in json.loads(stack.exec("hub", "python3", "-c",
                                                                      query))}
        return seen if set(seen) == JOBS and all(
            t["health"] == "up" for t in seen.values()) else None

    started = time.monotonic()
    try:
        seen = wait_for("every Prometheus target up", targets, timeout=180, interval=5)
    finally:
        TIMINGS["Prometheus targets up"] = time.monotonic() - started
    assert {job: t["scrapeUrl"] for job, t in seen.items()} == {
        "hub": "http://hub:8000/hub/metrics",
        "gateway": "http://hub:8000/services/llm/metrics",
        "llm": "http://llm:8080/metrics",
        "node": "http://node-exporter:9100/metrics",
        "prometheus": "http://localhost:9090/metrics",
    }

