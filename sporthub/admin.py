"""``sporthub users ...`` and ``sporthub usage``: the admin's commands against the running hub.

The CLI is a hub service of its own (``sporthub-cli``, token-only): its token is generated once into
``<data>/secrets/cli-api-token`` (0600) and the hub gives it a role with exactly what these commands
need. Accounts go through the hub's REST API, so the account cap and everything else the hub checks
apply as in the admin panel.
"""

from __future__ import annotations

import csv
import os
import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from sporthub.hub.common import CLI_SERVICE
from sporthub.settings import Settings

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class AdminError(Exception):
    """Something the admin should read; the command exits non-zero."""


class Hub:
    def __init__(self, settings: Settings):
        # on this machine; the invite links the hub builds are on SPORTHUB_PUBLIC_URL when set
        self.http = httpx.Client(
            base_url=f"{settings.local_url}hub/api/", timeout=30,
            headers={"Authorization": f"token {settings.secret('cli-api-token')}"})

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise AdminError(f"the hub is not reachable at {self.http.base_url} ({e}); "
                             "is SportHub running (sporthub up)?") from None

    def groups(self) -> set[str]:
        return {g["name"] for g in self._all("groups")}

    def _all(self, path: str) -> list[dict]:
        items, offset = [], 0
        while True:
            response = self.request("GET", path, params={"offset": offset, "limit": 200},
                                    headers={"Accept": "application/jupyterhub-pagination+json"})
            _check(response)
            page = response.json()
            items.extend(page["items"])
            if not page["_pagination"]["next"]:
                return items
            offset = page["_pagination"]["next"]["offset"]

    def add_user(self, name: str, group: str | None) -> str:
        """Create the account (in ``group``) and return its invite link."""
        response = self.request("POST", "users", json={"usernames": [name]})
        if response.status_code == 409:
            raise AdminError(f"{name}: the account exists already "
                             f"(a new link: sporthub users invite {name})")
        _check(response)
        if group:
            _check(self.request("POST", f"groups/{group}/users", json={"users": [name]}))
        return self.invite(name)

    def invite(self, name: str) -> str:
        response = self.request("POST", f"sporthub/invites/{name}")
        _check(response)
        return response.json()["url"]

    def accounts(self) -> list[dict]:
        response = self.request("GET", "sporthub/invites")
        _check(response)
        return response.json()


def _check(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        message = response.json().get("message") or response.text
    except ValueError:
        message = response.text
    if response.status_code == 403:
        message += f" (the {CLI_SERVICE} token lacks permission: was the hub restarted?)"
    raise AdminError(message)


def add(settings: Settings, name: str, group: str | None) -> int:
    hub = Hub(settings)
    name = name.strip().lower()
    if not USERNAME.match(name):
        raise AdminError(f"{name!r} is not a valid user name (a-z, 0-9, '.', '_', '-')")
    if group and group not in hub.groups():
        raise AdminError(f"no group {group!r}; groups: {', '.join(sorted(hub.groups()))}")
    print(f"{name}: {hub.add_user(name, group)}")
    return 0


def invite(settings: Settings, name: str) -> int:
    print(f"{name}: {Hub(settings).invite(name)}")
    return 0


def import_csv(settings: Settings, path: Path) -> int:
    """Create an account per row (``username,group``); skip and report bad rows."""
    hub = Hub(settings)
    groups = hub.groups()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise AdminError(f"cannot read {path}: {e.strerror}") from None
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "username" not in [f.strip() for f in reader.fieldnames]:
        raise AdminError(f"{path}: the first line must be the header 'username,group'")
    created, skipped, seen = 0, [], set()
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        name, group = row.get("username", "").lower(), row.get("group", "") or None
        if not name:
            skipped.append(f"line {line}: no username")
        elif not USERNAME.match(name):
            skipped.append(f"line {line}: {name!r} is not a valid user name")
        elif name in seen:
            skipped.append(f"line {line}: {name} appears twice")
        elif group and group not in groups:
            skipped.append(f"line {line}: {name}: no group {group!r}")
        else:
            seen.add(name)
            try:
                link = hub.add_user(name, group)
            except AdminError as e:
                skipped.append(f"line {line}: {e}")
                continue
            created += 1
            print(f"{name}: {link}")
    for problem in skipped:
        print(f"skipped {problem}")
    print(f"{created} account(s) created, {len(skipped)} row(s) skipped")
    return 1 if skipped else 0


def list_users(settings: Settings) -> int:
    accounts = Hub(settings).accounts()
    rows = [("user", "groups", "admin", "state")] + [
        (a["name"], ",".join(a["groups"]) or "-", "yes" if a["admin"] else "",
         a["state"] + (f" until {a['invite_expires'][:16]}" if a["invite_expires"] else ""))
        for a in accounts]
    _table(rows)
    return 0


def parse_since(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)\s*([dhm])", text.strip())
    if not match:
        raise AdminError(f"--since {text!r}: use a number and d, h or m, like 7d, 12h or 30m")
    amount, unit = int(match.group(1)), match.group(2)
    return {"d": timedelta(days=amount), "h": timedelta(hours=amount),
            "m": timedelta(minutes=amount)}[unit]


def usage(settings: Settings, since: str) -> int:
    from sporthub.usage.report import read_only_engine, summary_since

    start = datetime.now(UTC) - parse_since(since)
    engine = read_only_engine(settings.ledger_url)
    try:
        summary = summary_since(engine, start)
    finally:
        engine.dispose()
    rows = [("user", "requests", "prompt", "completion", "tokens", "errors", "mean wait ms",
             "p95 wait ms")]
    for s in summary:
        rows.append((s.user, s.requests, s.prompt_tokens, s.completion_tokens, s.tokens, s.errors,
                     _ms(s.mean_queue_ms), _ms(s.p95_queue_ms)))
    print(f"since {start:%Y-%m-%d %H:%M} UTC")
    _table(rows)
    return 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _table(rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# -- a person's data: export and erase (sporthub.privacy, run inside the hub) -------------------


def export_person(settings: Settings, name: str, target: Path, fmt: str = "zip") -> int:
    """Everything about ``name`` into ``target`` (0600), which appears only when complete."""
    target = target.resolve()
    if target.exists():
        raise AdminError(f"{target} exists already; choose a new file name")
    hub = Hub(settings)
    # a private folder beside the target: the partial file is nobody else's, then linked
    with tempfile.TemporaryDirectory(prefix=".sporthub-export-", dir=target.parent) as tmp:
        partial = Path(tmp) / "export.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            try:
                with hub.http.stream("GET", f"sporthub/people/{name}/export",
                                     params={"format": fmt}, timeout=600) as response:
                    if not response.is_success:
                        response.read()
                        _check(response)
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            except AdminError:
                raise
            except Exception as e:  # noqa: BLE001 (httpx's errors: the hub went away)
                raise AdminError(f"the export did not complete ({e}); is SportHub running?") \
                    from None
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(partial, target)
        except FileExistsError:
            raise AdminError(f"{target} appeared meanwhile; choose a new file name") from None
    print(f"{name}: everything SportHub holds is in {target} (0600; its README.txt says what "
          "is inside, SHA256SUMS checks it)")
    return 0


def erase_person(settings: Settings, name: str, yes: bool = False) -> int:
    """Erase ``name`` everywhere, after the admin typed the name again (or ``--yes``)."""
    hub = Hub(settings)
    response = hub.request("GET", f"users/{name}")
    if response.status_code == 404:
        raise AdminError(f"no account named {name!r} (sporthub users list shows them)")
    _check(response)
    if not yes:
        if not sys.stdin.isatty():
            raise AdminError("no terminal to confirm on: add --yes")
        print(f"This erases {name}: stops their server, deletes the account, the home, chats "
              "and shared copies; ledger rows and audit lines stay under a pseudonym. It cannot "
              "be undone (older backups still hold them until rotated).")
        if input("type the name again to erase: ").strip() != name:
            raise AdminError("the name typed does not match; nothing was erased")
    response = hub.request("POST", f"sporthub/people/{name}/erase", timeout=300)
    _check(response)
    result = response.json()
    print(f"{name} erased.")
    for line in result["removed"]:
        print(f"  removed: {line}")
    for line in result["kept"]:
        print(f"  kept:    {line}")
    return 0
