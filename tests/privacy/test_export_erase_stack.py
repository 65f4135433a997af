"""A person's export and erase on a real stack (hub, proxy, gateway, usage page), with the
ledger and the hub's database in SQLite and, once more, in the real PostgreSQL.

The person has a home file, a chat, a password, a failed sign-in, ledger rows and audit lines
(prompt texts recorded); another person has the same. The export must hold each item of the one
(checksums right), nothing of the other, no secret. After the erase, run while the person's
server runs, neither the name nor the person's words may be left in the raw bytes of any file of
the data directory (freed SQLite pages count) or in any table of the PostgreSQL databases,
except as the pseudonym; the other person's budget and the usage page are as before."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import subprocess
import uuid
import zipfile

import httpx
import psycopg
import pytest

from sporthub.pseudonym import Pseudonyms
from tests.privacy.test_compaction import pg_pages_holding
from tests.support.athletes import athlete
from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.stack import SPORTHUB, HubClient, create_account, make_stack, started

pytestmark = pytest.mark.stack

ADMIN_DSN = "host=127.0.0.1 dbname=test user=postgres"
PASSWORD = "orbit-lantern-maple-77"


@pytest.fixture(scope="module")
def backend():
    with FakeBackend() as fake:
        yield fake


def _new_pg_database() -> str:
    name = f"sporthub_privacy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, backend, tmp_path_factory):
    settings = {
        "llm_backends": json.dumps([{"name": "fake", "url": backend.url, "api_key": KEY,
                                     "models": [MODEL]}]),
        "gateway_audit_prompts": "true", "gateway_auth_cache_s": "1",
    }
    databases = []
    if request.param == "postgresql":
        databases = [_new_pg_database(), _new_pg_database()]
        settings["hub_db_url"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{databases[0]}"
        settings["db_url"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{databases[1]}"
    stack = make_stack(tmp_path_factory.mktemp(f"privacy-{request.param}"), **settings)
    stack.databases = databases
    try:
        with started(stack):
            stack.admin = HubClient.admin(stack)
            yield stack
    finally:
        for name in databases:
            _drop(name)


def _cli(stack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SPORTHUB), *args], env=stack.env, cwd=stack.data_dir.parent,
                          capture_output=True, text=True, input=stdin, timeout=300, check=False)


def _person(stack, name: str, words: str) -> dict:
    """An athlete with a password, a running server, a home file, a chat, LLM use, a failed
    sign-in; returns what the test looks for afterwards."""
    home_text = f"date,hrv,note\n2026-02-01,61,{words} home\n"
    chat_text = json.dumps({"messages": [{"body": f"{words} chat"}]})
    token = athlete(stack, name, {"activities/log.csv": home_text.encode(),
                                  "coach.chat": chat_text.encode()}, password=PASSWORD)
    client = HubClient(stack)
    assert client.login(name, "not-the-password-1").status_code == 403  # a failed sign-in
    for _ in range(2):
        response = httpx.post(f"{stack.gateway}/v1/chat/completions", timeout=60,
                              headers={"Authorization": f"Bearer {token}"},
                              json={"model": MODEL, "messages": [
                                  {"role": "user", "content": f"{words} prompt tokens=4"}]})
        assert response.status_code == 200, response.text
    return {"name": name, "token": token, "home": home_text, "chat": chat_text,
            "prompt": f"{words} prompt", "words": words}


def _used_today(stack, token: str) -> int:
    response = httpx.get(f"{stack.gateway}/queue", headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["budget"]["used_tokens"]


def _data_dir_bytes(stack) -> dict[str, bytes]:
    found = {}
    for folder, _, files in os.walk(stack.data_dir):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    found[path] = f.read()
    return found


def _pg_rows(database: str) -> list[str]:
    """Every row of every table of a PostgreSQL database, as text."""
    rows = []
    with psycopg.connect(f"host=127.0.0.1 dbname={database} user=postgres") as db:
        tables = db.execute("SELECT table_schema, table_name FROM information_schema.tables "
                            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                            "AND table_type = 'BASE TABLE'").fetchall()
        for schema, table in tables:
            for row in db.execute(f'SELECT * FROM "{schema}"."{table}"'):
                rows.append(f"{table}: {row!r}")
    return rows


def test_export_then_erase_of_a_person_whose_server_runs(stack):
    tag = uuid.uuid4().hex[:6]
    erin = _person(stack, f"erin{tag}", f"erinwords{tag}")
    finn = _person(stack, f"finn{tag}", f"finnwords{tag}")
    finn_used = _used_today(stack, finn["token"])
    assert finn_used > 0

    # -- the export --------------------------------------------------------------------------
    target = stack.data_dir.parent / f"export-{tag}.zip"
    result = _cli(stack, "users", "export", erin["name"], str(target))
    assert result.returncode == 0, result.stderr
    assert os.stat(target).st_mode & 0o777 == 0o600
    archive = zipfile.ZipFile(target)
    members = {n: archive.read(n) for n in archive.namelist()}
    sums = dict(reversed(line.split("  ", 1)) for line in
                members["SHA256SUMS"].decode().splitlines())
    for name, data in members.items():
        if name != "SHA256SUMS":
            assert sums[name] == hashlib.sha256(data).hexdigest(), name
    assert members["home/activities/log.csv"].decode() == erin["home"]
    assert members["chats/coach.chat"].decode() == erin["chat"]
    account = json.loads(members["account.json"])
    assert account["name"] == erin["name"] and account["groups"] == ["athletes"]
    assert json.loads(members["sign-in.json"])["password_set"] is True
    ledger = members["ledger.csv"].decode().splitlines()
    assert len(ledger) == 3 and all(erin["name"] in line for line in ledger[1:])
    audit = [json.loads(line) for line in members["audit.jsonl"].decode().splitlines()]
    assert len(audit) == 2 and {a["user"] for a in audit} == {erin["name"]}
    assert erin["prompt"] in json.dumps(audit)
    assert "README.txt" in members and "ledger.csv" in members["README.txt"].decode()
    everything = b"".join(members.values())
    assert finn["name"].encode() not in everything and finn["words"].encode() not in everything
    secrets = [p.read_bytes().strip() for p in (stack.data_dir / "secrets").iterdir()
               if p.is_file()]
    for secret in [*secrets, erin["token"].encode(), finn["token"].encode(), b"$argon2"]:
        assert secret not in everything
    # the page's download is the same archive
    page = stack.admin.http.get(f"/hub/people/{erin['name']}/export")
    assert page.status_code == 200 and page.headers["content-type"] == "application/zip"
    assert set(zipfile.ZipFile(io.BytesIO(page.content)).namelist()) == set(members)
    # the k8s profile's way, through the person's running server (Jupyter's contents API)
    through = stack.admin.api("GET", f"/sporthub/people/{erin['name']}/export",
                              params={"home": "server"})
    assert through.status_code == 200, through.text
    served = zipfile.ZipFile(io.BytesIO(through.content))
    assert served.read("home/activities/log.csv").decode() == erin["home"]
    assert served.read("chats/coach.chat").decode() == erin["chat"]

    # -- the erase, while erin's server runs -------------------------------------------------
    assert stack.admin.api("GET", f"/users/{erin['name']}").json()["servers"][""]["ready"]
    result = _cli(stack, "users", "erase", erin["name"], "--yes")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "removed: running server (stopped)" in out and "removed: 1 chats" in out
    assert "system user" in out and "kept:" in out and "ledger rows" in out
    assert stack.admin.api("GET", f"/users/{erin['name']}").status_code == 404
    with pytest.raises(KeyError):
        pwd.getpwnam(stack.env["SPORTHUB_LOCAL_USER_PREFIX"] + erin["name"])

    needles = [erin["name"], erin["words"]]
    for path, data in _data_dir_bytes(stack).items():
        for needle in needles:
            assert needle.encode() not in data, f"{needle} left in {path}"
    for database in stack.databases:
        for row in _pg_rows(database):
            for needle in needles:
                assert needle not in row, f"{needle} left in {database}: {row}"
        # nor in the pages: no dead row version of the hub's tables or the ledger keeps them
        assert pg_pages_holding(database, *needles) == [], database

    # the pseudonym: the same in the ledger and the audit log, counts kept, no address
    lines = [json.loads(x) for x in stack.data_dir.joinpath("gateway-audit.jsonl")
             .read_text().splitlines()]
    aliases = {x["user"] for x in lines if x["user"].startswith("~")}
    assert len(aliases) == 1
    alias = aliases.pop()
    assert sum(x["user"] == alias for x in lines) == 2
    assert all(x["ip"] is None and x["messages"] is None for x in lines if x["user"] == alias)
    if stack.databases:
        with psycopg.connect(f"host=127.0.0.1 dbname={stack.databases[1]} user=postgres") as db:
            ledger_rows = db.execute('SELECT "user", client_ip, prompt_tokens FROM llm_requests'
                                     ).fetchall()
    else:
        ledger_rows = [(r["user"], r["client_ip"], r["prompt_tokens"]) for r in
                       stack.ledger_rows()]
    mine = [r for r in ledger_rows if r[0] == alias]
    assert len(mine) == 2 and all(r[1] is None and r[2] > 0 for r in mine)
    assert len([r for r in ledger_rows if r[0] == finn["name"]]) == 2

    # the others: budget as before, home and account untouched; the usage page still renders
    assert _used_today(stack, finn["token"]) == finn_used
    assert stack.admin.api("GET", f"/users/{finn['name']}").status_code == 200
    home = stack.system_user(finn["name"]).pw_dir
    with open(os.path.join(home, "activities", "log.csv")) as f:
        assert f.read() == finn["home"]
    # Prometheus never sees a name: the gateway labels tokens with the pseudonym
    metrics = httpx.get(f"{stack.gateway}/metrics", timeout=30,
                        headers={"Authorization": f"Bearer {stack.admin.token}"}).text
    key = (stack.data_dir / "secrets" / "pseudonym-key").read_text().strip()
    assert f'user="{Pseudonyms(key)(finn["name"])}"' in metrics
    assert f'user="{alias}"' in metrics and Pseudonyms(key)(erin["name"]) == alias
    assert finn["name"] not in metrics and erin["name"] not in metrics
    usage = stack.admin.http.get("/services/usage/")
    assert usage.status_code == 200 and finn["name"] in usage.text


def test_an_unknown_name_is_refused_clearly(stack):
    result = _cli(stack, "users", "erase", "nobody-here", "--yes")
    assert result.returncode == 1 and "no account named 'nobody-here'" in result.stderr
    result = _cli(stack, "users", "export", "nobody-here", str(stack.data_dir.parent / "x.zip"))
    assert result.returncode == 1 and "nobody-here" in result.stderr
    assert not (stack.data_dir.parent / "x.zip").exists()
    assert stack.admin.http.get("/hub/people/nobody-here").status_code == 404


def test_the_page_erases_only_after_the_name_is_typed_again(stack):
    name = f"gail{uuid.uuid4().hex[:6]}"
    create_account(stack.admin, name, "athletes")
    page = stack.admin.http.get(f"/hub/people/{name}")
    assert page.status_code == 200 and 'id="sporthub-erase"' in page.text
    xsrf = stack.admin.http.cookies.get("_xsrf", path="/hub/")
    wrong = stack.admin.http.post(f"/hub/people/{name}", data={"_xsrf": xsrf, "confirm": "gail"})
    assert wrong.status_code == 400
    assert stack.admin.api("GET", f"/users/{name}").status_code == 200
    right = stack.admin.http.post(f"/hub/people/{name}", data={"_xsrf": xsrf, "confirm": name})
    assert right.status_code == 200 and 'id="sporthub-erased"' in right.text
    assert stack.admin.api("GET", f"/users/{name}").status_code == 404
    # the admin cannot erase their own account
    own = stack.admin.api("POST", f"/sporthub/people/{stack.admin_user}/erase")
    assert own.status_code == 400
