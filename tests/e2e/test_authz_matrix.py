"""Who may call what: every endpoint SportHub serves x every kind of caller, on a real stack.

One table, one row per endpoint, one expected status per caller. People call pages with their
browser session (following redirects, as a browser does; ``LOGIN`` = they end on the login page)
and APIs with a token of their own; services call everything with the token the hub gave them.
Then every log that stack wrote is searched for the secrets the test knows or the data directory
holds: passwords (right and wrong ones), tokens, invite tokens, the backend key.

The stack is this module's own: its logs then hold only what this suite did, and nothing another
module does can change a cell (budgets, groups, accounts).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.stack import HubClient, Stack, create_account, make_stack, set_password, started

pytestmark = pytest.mark.stack

MODEL = "smollm2-135m-instruct"
PEOPLE = ("plain", "athlete", "scientist", "admin")
SERVICES = ("cli", "gateway", "usage", "culler")
CALLERS = ("anonymous", *PEOPLE, *SERVICES)
LOGIN = "login"  # a page that sends the caller to the hub's login page
PASSWORDS = {"plain": "granite-harbour-71", "athlete": "swift-relay-baton-4",
             "scientist": "lactate-curve-mesa-9"}
WRONG_PASSWORDS = ("tried-and-wrong-55", "another-bad-guess-8")

# the model's answer is not the point: one token keeps the chats quick
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
COMPLETION = {"model": MODEL, "prompt": "Hi", "max_tokens": 1}


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # "{caller}" is replaced by the caller's name, for calls that make something
    json: dict | None = None
    page: bool = False  # a page people open in the browser, not an API

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


# anonymous, plain, athlete, scientist, admin | cli, gateway, usage, culler
MATRIX: list[tuple[Call, tuple]] = [
    # the gateway: the LLM scope for people in a beta group (and the admin); never for a service
    (Call("GET", "/services/llm/v1/models"), (401, 403, 200, 200, 200, 401, 401, 401, 401)),
    (Call("POST", "/services/llm/v1/chat/completions", CHAT),
     (401, 403, 200, 200, 200, 401, 401, 401, 401)),
    (Call("POST", "/services/llm/v1/completions", COMPLETION),
     (401, 403, 200, 200, 200, 401, 401, 401, 401)),
    (Call("GET", "/services/llm/queue"), (401, 403, 200, 200, 200, 401, 401, 401, 401)),
    (Call("GET", "/services/llm/metrics"), (401, 403, 403, 403, 200, 401, 401, 401, 401)),
    (Call("GET", "/services/llm/health"), (200, 200, 200, 200, 200, 200, 200, 200, 200)),
    # the usage page: hub admins only
    (Call("GET", "/services/usage/", page=True),
     (LOGIN, 403, 403, 403, 200, 403, 403, 403, 403)),
    (Call("GET", "/services/usage/usage.csv", page=True),
     (LOGIN, 403, 403, 403, 200, 403, 403, 403, 403)),
    # the squad (issue 20): the squad scope for people in a role group (and the admin); staff
    # (scientists, club-wide by default) read; an athlete who does not share is 404; the admin
    # records a guardian's consent but is not staff; services have no person to act for
    (Call("GET", "/services/squad/api/athletes"), (401, 403, 403, 200, 403, 401, 401, 401, 401)),
    (Call("GET", "/services/squad/api/athletes/mx-athlete/sessions"),
     (401, 403, 403, 404, 403, 401, 401, 401, 401)),
    (Call("GET", "/services/squad/api/me"), (401, 403, 200, 200, 200, 401, 401, 401, 401)),
    (Call("PUT", "/services/squad/api/me/consent", {"share": False}),
     (401, 403, 200, 200, 200, 401, 401, 401, 401)),
    (Call("PUT", "/services/squad/api/athletes/mx-target/guardian", {"guardian": "G. Parent"}),
     (401, 403, 403, 403, 200, 401, 401, 401, 401)),
    (Call("GET", "/hub/my-data", page=True),
     (LOGIN, 200, 200, 200, 200, LOGIN, LOGIN, LOGIN, LOGIN)),
    # SportHub's pages and API in the hub: admin:users (the admin, the CLI)
    # a hub page takes no service token: services use the API
    (Call("GET", "/hub/invites", page=True),
     (LOGIN, 403, 403, 403, 200, LOGIN, LOGIN, LOGIN, LOGIN)),
    (Call("GET", "/hub/api/sporthub/invites"), (403, 403, 403, 403, 200, 200, 403, 403, 403)),
    (Call("POST", "/hub/api/sporthub/invites/mx-target"),
     (403, 403, 403, 403, 201, 201, 403, 403, 403)),
    # the hub's own API, as SportHub uses it: accounts and groups (admin panel, CLI), group
    # budgets, the gateway's reading of a person's groups, the usage page's and culler's lists
    (Call("POST", "/hub/api/users/mx-new-{caller}"), (403, 403, 403, 403, 201, 201, 403, 403, 403)),
    (Call("POST", "/hub/api/groups/athletes/users", {"users": ["mx-target"]}),
     (403, 403, 403, 403, 200, 200, 403, 403, 403)),
    (Call("PUT", "/hub/api/groups/priority/properties", {"llm_priority": 10}),
     (403, 403, 403, 403, 200, 200, 403, 403, 403)),
    (Call("DELETE", "/hub/api/users/mx-doomed-{caller}"),
     (403, 403, 403, 403, 204, 204, 403, 403, 403)),
    (Call("GET", "/hub/api/users"), (403, 403, 403, 403, 200, 200, 403, 200, 200)),
    # the culler's (and the admin panel's) stop; mx-target has no server to stop. People who may
    # not see another account get 404 from the hub, not a hint that it exists; the CLI needs no
    # servers and has no such scope
    (Call("DELETE", "/hub/api/users/mx-target/server"),
     (403, 404, 404, 404, 204, 403, 403, 403, 204)),
    (Call("GET", "/hub/api/users/mx-athlete"), (403, 404, 200, 404, 200, 200, 200, 200, 200)),
    (Call("GET", "/hub/api/groups/athletes"), (403, 403, 403, 403, 200, 200, 200, 200, 403)),
]


@dataclass
class Caller:
    name: str
    token: str | None = None
    session: HubClient | None = None


@pytest.fixture(scope="module")
def matrix_stack(tmp_path_factory) -> Stack:
    with started(make_stack(tmp_path_factory.mktemp("authz"))) as stack:
        yield stack


@pytest.fixture(scope="module")
def known_secrets() -> set[str]:
    """Every secret value the suite handles; the log scan looks for each."""
    return {*PASSWORDS.values(), *WRONG_PASSWORDS}


def _service_token(stack: Stack, marker: str) -> str:
    """The token the hub handed to a managed service (in its environment, as the hub starts it)."""
    for process in stack.processes():
        if any(marker in part for part in process.cmdline()):
            return process.environ()["JUPYTERHUB_API_TOKEN"]
    raise AssertionError(f"no process of {marker} in the stack")


@pytest.fixture(scope="module")
def callers(matrix_stack, known_secrets) -> dict[str, Caller]:
    stack = matrix_stack
    admin = HubClient.admin(stack)
    known_secrets |= {stack.admin_password, admin.token}
    result = {"anonymous": Caller("anonymous"), "admin": Caller(stack.admin_user, admin.token, admin)}
    groups = {"plain": None, "athlete": "athletes", "scientist": "scientists"}
    for role, group in groups.items():
        name = f"mx-{role}"
        url = create_account(admin, name, group)
        known_secrets.add(url.split("token=", 1)[1])
        assert set_password(url, PASSWORDS[role]).status_code == 302
        person = HubClient(stack)
        # failed sign-ins first: their passwords must not reach a log either
        for wrong in WRONG_PASSWORDS:
            assert person.login(name, wrong).status_code == 403
        assert person.login(name, PASSWORDS[role]).status_code == 302
        token = person.token_from_session(name)
        known_secrets.add(token)
        result[role] = Caller(name, token, person)
    for account in ("mx-target", *(f"mx-doomed-{c}" for c in CALLERS)):
        assert admin.api("POST", f"/users/{account}").status_code == 201
    result["cli"] = Caller("sporthub-cli", (stack.data_dir / "secrets" / "cli-api-token")
                           .read_text().strip())
    result["gateway"] = Caller("llm", _service_token(stack, "sporthub.gateway"))
    result["usage"] = Caller("usage", _service_token(stack, "sporthub.usage"))
    result["culler"] = Caller("idle-culler", _service_token(stack, "sporthub.hub.culler"))
    known_secrets |= {c.token for c in result.values() if c.token}
    for session in (c.session for c in result.values() if c.session):
        known_secrets |= {c.value for c in session.http.cookies.jar if len(c.value or "") >= 16}
    return result


def call(stack: Stack, who: str, caller: Caller, what: Call) -> int | str:
    path = what.path.format(caller=who)
    if what.page and caller.session is not None:
        response = caller.session.http.request(what.method, path, json=what.json)
    else:
        headers = {"Authorization": f"token {caller.token}"} if caller.token else {}
        response = httpx.request(what.method, f"{stack.url}{path}", json=what.json,
                                 headers=headers, timeout=120, follow_redirects=what.page)
    if what.page and response.url.path == "/hub/login":
        return LOGIN
    return response.status_code


def test_every_caller_gets_exactly_the_expected_answer_from_every_endpoint(matrix_stack, callers,
                                                                           known_secrets):
    expected = {(str(c), who): status for c, row in MATRIX
                for who, status in zip(CALLERS, row, strict=True)}
    seen = {}
    for what, _ in MATRIX:
        for who in CALLERS:
            seen[(str(what), who)] = call(matrix_stack, who, callers[who], what)
    # what the admin and the CLI issued are secrets too
    known_secrets |= _issued_invite_tokens(matrix_stack, callers)
    wrong = {cell: (seen[cell], status) for cell, status in expected.items()
             if seen[cell] != status}
    assert not wrong, "cells (endpoint, caller): (got, expected)\n" + "\n".join(
        f"  {cell}: {got}" for cell, got in sorted(wrong.items()))


def _issued_invite_tokens(stack: Stack, callers: dict[str, Caller]) -> set[str]:
    issued = set()
    for who in ("admin", "cli"):
        response = httpx.post(f"{stack.url}/hub/api/sporthub/invites/mx-target", timeout=30,
                              headers={"Authorization": f"token {callers[who].token}"})
        assert response.status_code == 201
        issued.add(response.json()["url"].split("token=", 1)[1])
    return issued


def _logs(stack: Stack) -> dict[Path, str]:
    """``sporthub up``'s output (the hub, proxy and services log there) and every log file in
    the data directory (the gateway's audit log)."""
    files = [stack.log_path, *(p for p in stack.data_dir.rglob("*")
                               if p.is_file() and p.suffix in (".log", ".jsonl"))]
    return {p: p.read_text(errors="replace") for p in files}


def test_no_log_holds_a_password_token_or_key(matrix_stack, callers, known_secrets):
    """Best after the matrix (its chats and invites are then in the logs too); on its own it
    still has the callers' invites and failed sign-ins, and makes one chat of its own."""
    stack = matrix_stack
    chat = httpx.post(f"{stack.gateway}/v1/chat/completions", json=CHAT, timeout=120,
                      headers={"Authorization": f"Bearer {callers['athlete'].token}"})
    assert chat.status_code == 200, chat.text
    secrets_dir = stack.data_dir / "secrets"
    on_disk = {p.name: p.read_text().strip() for p in secrets_dir.iterdir() if p.is_file()}
    assert {"embedded-llm-key", "cli-api-token", "proxy-token"} <= set(on_disk)
    stack.descendants = stack.processes()
    assert not stack.stop()  # everything written and flushed
    # what every login cookie carries (the hub logged it at INFO before SportHub filtered it)
    with sqlite3.connect(stack.data_dir / "jupyterhub.sqlite") as db:
        cookie_ids = {row[0] for row in db.execute("SELECT cookie_id FROM users")}
    logs = _logs(stack)
    audit = stack.data_dir / "gateway-audit.jsonl"
    # the scan reads real logs: the hub's failed sign-ins and the gateway's requests are there
    assert "Failed login for 'mx-plain'" in logs[stack.log_path]
    assert audit in logs and callers["athlete"].name in logs[audit]
    secrets = {s for s in (known_secrets | set(on_disk.values()) | cookie_ids) if len(s) >= 8}
    assert len(secrets) >= 20
    found = [(path.name, secret[:4] + "...") for path, text in logs.items()
             for secret in secrets if secret in text]
    assert not found, f"secrets in logs: {found}"
