"""Start the SportHub stack the way ``make up`` does (``sporthub up``), on free ports, for tests."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import random
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]
SPORTHUB = Path(sys.prefix) / "bin" / "sporthub"
# The pytest item being set up or run (tests/conftest.py sets it; None outside pytest, as in
# benchmarks/): only a test marked `stack` may start a stack, so `make test-unit` (-m 'not stack')
# cannot start one unseen.
CURRENT_TEST = None


AUDIT_LOG = "gateway-audit.jsonl"  # in the data dir


def rows_of_audited_requests(read: Callable[[], list[dict]], audit_log: Path,
                             timeout: float = 10) -> list[dict]:
    """The ledger's rows as ``read`` gives them, once each request in the audit log has its row:
    the gateway writes the rows in batches, up to half a second after the answers (its
    bookkeeping's ``BATCH_S``). After ``timeout``, the rows there are."""
    deadline = time.monotonic() + timeout
    while True:
        rows = read()
        try:
            lines = audit_log.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        audited = {json.loads(line)["request_id"] for line in lines if line.endswith("}")}
        if audited <= {row["id"] for row in rows} or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def free_port() -> int:
    """A port free now and, very likely, still free when the process that needs it binds it.

    Chosen below the kernel's ephemeral range: ports there are handed out by the kernel itself
    (outgoing connections, a spawned JupyterLab binding port 0), and one of those once took a
    stack's llama-server port between choosing it and starting the server."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    if ephemeral_low > 20_000:
        for _ in range(200):
            port = random.randrange(20_000, ephemeral_low)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    admin_user: str = "admin"
    admin_password: str = "tempo-test-harbour-61"
    descendants: list[psutil.Process] = field(default_factory=list)
    # a process group of its own, as `make up` has in a terminal: a test can then press Ctrl-C
    # (SIGINT to the group) without reaching pytest
    session: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['SPORTHUB_PORT']}"

    @property
    def llm_url(self) -> str:
        return f"http://127.0.0.1:{self.env['SPORTHUB_EMBEDDED_LLM_PORT']}"

    @property
    def gateway(self) -> str:
        return f"{self.url}/services/llm"

    def ledger_rows(self) -> list[dict]:
        """The gateway's ledger (SQLite in the data dir), oldest first, once every request in
        the audit log has its row."""
        def read() -> list[dict]:
            with sqlite3.connect(self.data_dir / "gateway.sqlite") as db:
                db.row_factory = sqlite3.Row
                return [dict(r) for r in db.execute(
                    "SELECT * FROM llm_requests ORDER BY started_at")]

        return rows_of_audited_requests(read, self.data_dir / AUDIT_LOG)

    def system_user(self, name: str) -> pwd.struct_passwd:
        """The system user a person's server runs as (local profile, hub as root)."""
        return pwd.getpwnam(self.env["SPORTHUB_LOCAL_USER_PREFIX"] + name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self, timeout: float = 240) -> None:
        if CURRENT_TEST is not None and CURRENT_TEST.get_closest_marker("stack") is None:
            raise RuntimeError(f"{CURRENT_TEST.nodeid} starts a SportHub stack: mark it "
                               "`stack` (pytest.mark.stack), which make test-unit leaves out")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(SPORTHUB), "up"], cwd=self.data_dir.parent, env=self.env,
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=self.session,
        )
        deadline = time.monotonic() + timeout
        while "SportHub is running at" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sporthub up did not start:\n{self.log()[-5000:]}")
            time.sleep(0.5)
        # the banner means the hub answers; the model needs a moment more to load
        while True:
            try:
                if httpx.get(f"{self.gateway}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no LLM backend came up:\n{self.log()[-5000:]}")
            time.sleep(0.5)

    def processes(self) -> list[psutil.Process]:
        """The ``sporthub up`` process and everything it started (hub, proxy, services, servers)."""
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def interrupt(self, timeout: float = 60) -> tuple[float, list[psutil.Process]]:
        """Ctrl-C in the terminal: SIGINT to the process group (needs ``session``). Returns the
        seconds until every process was gone (or ``timeout``) and the processes left alive."""
        assert self.session, "interrupt() needs Stack.session: its own process group"
        processes = self.descendants or self.processes()
        start = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        _, alive = psutil.wait_procs(processes, timeout=timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(1)
        return time.monotonic() - start, alive

    def stop(self, timeout: float = 60) -> list[psutil.Process]:
        """SIGTERM, as an admin's service manager would; returns processes left alive."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        _, alive = psutil.wait_procs(self.descendants, timeout=10)
        return alive


def make_stack(tmp: Path, **settings: str) -> Stack:
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPORTHUB_")}
    env.update({
        "SPORTHUB_DATA_DIR": str(data_dir),
        "SPORTHUB_PORT": str(free_port()),
        "SPORTHUB_HUB_PORT": str(free_port()),
        "SPORTHUB_PROXY_API_PORT": str(free_port()),
        "SPORTHUB_GATEWAY_PORT": str(free_port()),
        "SPORTHUB_EMBEDDED_LLM_PORT": str(free_port()),
        "SPORTHUB_USAGE_PORT": str(free_port()),
        "SPORTHUB_SQUAD_PORT": str(free_port()),
        "SPORTHUB_ADMIN_PASSWORD": Stack.admin_password,
        **{f"SPORTHUB_{k.upper()}": v for k, v in settings.items()},
    })
    if os.geteuid() == 0 and env.get("SPORTHUB_PROFILE", "local") == "local":
        # people's servers run as system users <prefix><name>: a prefix of this stack's own, so
        # that parallel test runs never share, or delete, each other's users
        prefix = env.setdefault("SPORTHUB_LOCAL_USER_PREFIX", f"t{secrets.token_hex(3)}-")
        atexit.register(remove_system_users, prefix)
    return Stack(data_dir=data_dir, env=env, log_path=tmp / "sporthub-up.log")


def remove_system_users(prefix: str) -> None:
    """Delete the system users (and homes) a stack made, after stopping what still runs as them."""
    users = [u for u in pwd.getpwall() if u.pw_name.startswith(prefix)]
    for user in users:
        leftovers = [p for p in psutil.process_iter(["uids"]) if p.info["uids"]
                     and p.info["uids"].real == user.pw_uid]
        for process in leftovers:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(leftovers, timeout=10)
        subprocess.run(["userdel", "--remove", user.pw_name], capture_output=True, check=False)


@contextmanager
def started(stack: Stack) -> Iterator[Stack]:
    """The stack, running; stopped afterwards (unless a test stopped it already)."""
    stack.start()
    try:
        yield stack
    finally:
        if stack.proc.poll() is None:
            stack.descendants = stack.processes()
            stack.stop()


class HubClient:
    """An HTTP client of the hub, logged in through the login form like a person."""

    def __init__(self, stack: Stack, address: str | None = None):
        """``address``: a loopback source address (127.0.0.x) to appear as another client."""
        self.stack = stack
        transport = httpx.HTTPTransport(local_address=address) if address else None
        self.http = httpx.Client(base_url=stack.url, timeout=30, follow_redirects=True,
                                 transport=transport)
        self.token: str | None = None

    def login(self, username: str, password: str) -> httpx.Response:
        """Post the login form; not following the redirect, which would spawn a server."""
        self.http.get("/hub/login")
        return self.http.post("/hub/login", follow_redirects=False, data={
            "username": username, "password": password,
            "_xsrf": self.http.cookies.get("_xsrf", path="/hub/"),
        })

    @classmethod
    def admin(cls, stack: Stack) -> HubClient:
        """The stack's admin, logged in through the login form, with an API token."""
        client = cls(stack)
        assert client.login(stack.admin_user, stack.admin_password).status_code == 302
        client.token_from_session(stack.admin_user)
        return client

    def token_from_session(self, user: str) -> str:
        """An API token made with the session cookie, as the hub's token page does."""
        response = self.http.post(f"/hub/api/users/{user}/tokens", json={"note": "tests"},
                                  headers={"X-XSRFToken": self.http.cookies.get("_xsrf", path="/hub/")})
        response.raise_for_status()
        self.token = response.json()["token"]
        return self.token

    def new_token(self, user: str, **body) -> str:
        response = self.api("POST", f"/users/{user}/tokens", json=body)
        response.raise_for_status()
        return response.json()["token"]

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.stack.url}/hub/api{path}", timeout=30,
                             headers={"Authorization": f"token {self.token}"}, **kwargs)

    def start_server(self, user: str, timeout: float = 120) -> None:
        response = self.api("POST", f"/users/{user}/server")
        assert response.status_code in (201, 202), response.text
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{user}").json()["servers"].get("", {})
            if server.get("ready"):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{user}'s server did not become ready")


def create_account(admin: HubClient, name: str, group: str | None = None) -> str:
    """An account made like the admin panel does (REST API), in a group; returns its invite URL."""
    response = admin.api("POST", f"/users/{name}")
    assert response.status_code == 201, response.text
    if group:
        response = admin.api("POST", f"/groups/{group}/users", json={"users": [name]})
        assert response.status_code == 200, response.text
    return new_invite(admin, name)


def new_invite(admin: HubClient, name: str) -> str:
    response = admin.api("POST", f"/sporthub/invites/{name}")
    assert response.status_code == 201, response.text
    return response.json()["url"]


def set_password(url: str, password: str, again: str | None = None) -> httpx.Response:
    """Open an invite link and submit its form, as the invited person's browser does."""
    with httpx.Client(timeout=30) as browser:
        page = browser.get(url)
        if page.status_code != 200:
            return page
        form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
        return browser.post(url.split("?")[0], follow_redirects=False, data={
            **form, "password": password, "password2": password if again is None else again})


def add_rows(stack, rows: list[dict]) -> None:
    """Ledger rows as the gateway writes them (naive UTC timestamps, as SQLAlchemy stores them).

    Endpoint ``completions`` by default: the skeleton's chat test owns the ``chat/completions``
    rows of the shared session stack."""
    with sqlite3.connect(stack.data_dir / "gateway.sqlite") as db:
        for row in rows:
            row = {"id": str(uuid.uuid4()), "client_ip": "127.0.0.1", "endpoint": "completions",
                   "model": "smollm2-135m-instruct", "backend": "embedded", "stream": 1,
                   "ttft_ms": None, "duration_ms": 100.0, "status": 200, "outcome": "ok",
                   "queued_ms": None, **row}
            row["started_at"] = row["started_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            names = ", ".join(f'"{k}"' for k in row)
            db.execute(f"INSERT INTO llm_requests ({names}) VALUES "
                       f"({', '.join('?' for _ in row)})", list(row.values()))
