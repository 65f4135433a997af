"""The admin's ``sporthub`` commands against the running hub: add, invite, import, list, usage."""

from __future__ import annotations

import stat
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.stack import SPORTHUB, HubClient, add_rows, make_stack, set_password

pytestmark = pytest.mark.stack

PASSWORD = "long-run-sunday-21k"


def sporthub(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SPORTHUB), *args], cwd=stack.data_dir.parent, env=stack.env,
                          capture_output=True, text=True, timeout=60, check=False)


def links(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.splitlines() if "/hub/invite?token=" in line)


def groups_of(admin, name: str) -> list[str]:
    return admin.api("GET", f"/users/{name}").json()["groups"]


def test_users_add_prints_a_working_invite_link(stack, admin):
    result = sporthub(stack, "users", "add", "lena", "--group", "athletes")
    assert result.returncode == 0, result.stderr
    link = links(result.stdout)["lena"]
    assert link.startswith(f"{stack.url}/hub/invite?token=")
    assert groups_of(admin, "lena") == ["athletes"]
    assert set_password(link, PASSWORD).status_code == 302
    assert HubClient(stack).login("lena", PASSWORD).status_code == 302
    token = stack.data_dir / "secrets" / "cli-api-token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert token.read_text().strip() not in result.stdout + result.stderr + stack.log()


def test_users_add_refuses_duplicates_and_unknown_groups(stack, admin):
    assert sporthub(stack, "users", "add", "lena2").returncode == 0
    again = sporthub(stack, "users", "add", "lena2")
    assert again.returncode == 1 and "exists already" in again.stderr
    unknown = sporthub(stack, "users", "add", "milo", "--group", "coaches")
    assert unknown.returncode == 1 and "no group 'coaches'" in unknown.stderr
    assert admin.api("GET", "/users/milo").status_code == 404
    # a new link for an existing account, the admin's reset
    fresh = sporthub(stack, "users", "invite", "lena2")
    assert fresh.returncode == 0 and set_password(links(fresh.stdout)["lena2"],
                                                  PASSWORD).status_code == 302


def test_users_import_creates_good_rows_and_reports_bad_ones(stack, admin, tmp_path):
    assert sporthub(stack, "users", "add", "pia").returncode == 0
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("username,group\n"
                        "mia,athletes\n"          # line 2: fine
                        ",athletes\n"             # 3: no username
                        "Bad Name,athletes\n"     # 4: not a valid name
                        "nils,nosuchgroup\n"      # 5: unknown group
                        "mia,scientists\n"        # 6: twice in the file
                        " Olaf ,\n"               # 7: fine, no group, name normalised
                        "pia,athletes\n")         # 8: exists already
    result = sporthub(stack, "users", "import", str(csv_file))
    assert result.returncode == 1, result.stderr
    assert set(links(result.stdout)) == {"mia", "olaf"}
    skipped = [line for line in result.stdout.splitlines() if line.startswith("skipped")]
    assert [s.split(":")[0] for s in skipped] == [
        "skipped line 3", "skipped line 4", "skipped line 5", "skipped line 6", "skipped line 8"]
    assert "exists already" in skipped[-1] and "nosuchgroup" in skipped[2]
    assert "2 account(s) created, 5 row(s) skipped" in result.stdout
    assert groups_of(admin, "mia") == ["athletes"] and groups_of(admin, "olaf") == []
    assert admin.api("GET", "/users/nils").status_code == 404


def test_users_import_refuses_a_file_without_the_header(stack, tmp_path):
    csv_file = tmp_path / "no-header.csv"
    csv_file.write_text("quinn,athletes\n")
    result = sporthub(stack, "users", "import", str(csv_file))
    assert result.returncode == 1 and "header 'username,group'" in result.stderr


def test_users_list_shows_state_and_groups(stack, admin):
    assert sporthub(stack, "users", "add", "rosa", "--group", "scientists").returncode == 0
    result = sporthub(stack, "users", "list")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "scientists" in lines["rosa"] and "invited until" in lines["rosa"]
    assert "admin password from settings" in lines[stack.admin_user]


def test_usage_since_sums_the_ledger_per_user(stack):
    now = datetime.now(UTC)
    add_rows(stack, [
        {"user": "cli-usage", "started_at": now - timedelta(hours=1), "prompt_tokens": 30,
         "completion_tokens": 12, "queued_ms": 20.0},
        {"user": "cli-usage", "started_at": now - timedelta(days=2), "prompt_tokens": 100,
         "completion_tokens": 0, "status": 504, "outcome": "timeout"},
        {"user": "cli-usage", "started_at": now - timedelta(days=9), "prompt_tokens": 5000,
         "completion_tokens": 5000},
    ])
    week = sporthub(stack, "usage", "--since", "7d")
    assert week.returncode == 0, week.stderr
    row = next(line.split() for line in week.stdout.splitlines() if line.startswith("cli-usage"))
    assert row == ["cli-usage", "2", "130", "12", "142", "1", "20", "20"]
    day = sporthub(stack, "usage", "--since", "12h")
    row = next(line.split() for line in day.stdout.splitlines() if line.startswith("cli-usage"))
    assert row[1:5] == ["1", "30", "12", "42"]
    bad = sporthub(stack, "usage", "--since", "a week")
    assert bad.returncode == 1 and "7d, 12h or 30m" in bad.stderr


def test_a_weak_admin_password_stops_the_start_and_names_the_setting(tmp_path):
    """The invite rules apply to SPORTHUB_ADMIN_PASSWORD too; nothing starts with a weak one."""
    stack = make_stack(tmp_path)
    for weak, reason in [("short-1", "at least 10 characters"),
                         ("password123", "too common"),
                         ("Admin-2026-strong", "must not contain your user name")]:
        result = subprocess.run([str(SPORTHUB), "up"], cwd=stack.data_dir.parent, timeout=60,
                                env={**stack.env, "SPORTHUB_ADMIN_PASSWORD": weak},
                                capture_output=True, text=True, check=False)
        assert result.returncode == 2, result.stdout
        assert "SPORTHUB_ADMIN_PASSWORD" in result.stderr and reason in result.stderr
        assert weak not in result.stdout + result.stderr
    assert not (stack.data_dir / "jupyterhub.sqlite").exists()
