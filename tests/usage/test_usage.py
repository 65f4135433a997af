"""The admin's usage page (hub-managed service ``usage``): access, figures, chart and CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.stack import HubClient, add_rows, create_account, set_password

PASSWORD = "steady-cadence-180"


@pytest.fixture(scope="module")
def known_usage(stack, admin):
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    during_today = today + (now - today) / 2
    for name in ("usage-ann", "usage-ben", "usage-cid"):
        assert admin.api("POST", f"/users/{name}").status_code == 201
    assert admin.api("POST", "/groups/athletes/users",
                     json={"users": ["usage-ann"]}).status_code == 200
    # a group the admin made, with its budget in the hub's group properties
    assert admin.api("POST", "/groups/usage-vip").status_code == 201
    assert admin.api("PUT", "/groups/usage-vip/properties",
                     json={"llm_tokens_per_day": 90000}).status_code == 200
    assert admin.api("POST", "/groups/usage-vip/users",
                     json={"users": ["usage-ben"]}).status_code == 200
    add_rows(stack, [
        {"user": "usage-ann", "started_at": during_today, "prompt_tokens": 100,
         "completion_tokens": 50, "queued_ms": 10.0},
        {"user": "usage-ann", "started_at": during_today, "prompt_tokens": 200,
         "completion_tokens": 150, "queued_ms": 30.0},
        {"user": "usage-ann", "started_at": during_today, "prompt_tokens": 0,
         "completion_tokens": 0, "queued_ms": 50.0, "status": 502, "outcome": "upstream_error"},
        {"user": "usage-ann", "started_at": today - timedelta(days=3) + timedelta(hours=5),
         "prompt_tokens": 1000, "completion_tokens": 0},
        {"user": "usage-ann", "started_at": today - timedelta(days=10) + timedelta(hours=5),
         "prompt_tokens": 4000, "completion_tokens": 1000, "queued_ms": 9999.0},
        {"user": "usage-ben", "started_at": today - timedelta(days=1) + timedelta(hours=5),
         "prompt_tokens": 250, "completion_tokens": 50, "queued_ms": 100.0},
    ])
    return today


def cells(page: str, user: str) -> dict[str, str]:
    row = re.search(rf'<tr data-user="{re.escape(user)}">(.*?)</tr>', page).group(1)
    return dict(re.findall(r'<td class="(\w+)">([^<]*)</td>', row))


@pytest.mark.stack
def test_admin_sees_per_user_figures_chart_and_errors(stack, admin, known_usage):
    page = admin.http.get("/services/usage/")
    assert page.status_code == 200, page.text
    assert page.url.path == "/services/usage/"
    ann = cells(page.text, "usage-ann")
    # today 150 + 350 + 0; week adds the 1000 of 3 days ago, not the 5000 of 10 days ago
    # numbers as the page's language writes them (English here; the CSV keeps them plain)
    assert ann == {"today": "500", "week": "1,500", "requests": "4", "mean": "30", "p95": "50",
                   "errors": "1"}
    assert '<td>500</td><td>50,000</td>' in page.text.replace('<td class="today">', '<td>')
    ben = cells(page.text, "usage-ben")
    assert ben == {"today": "0", "week": "300", "requests": "1", "mean": "100", "p95": "100",
                   "errors": "0"}
    ten_days_ago = (known_usage - timedelta(days=10)).date().isoformat()
    assert f'data-day="{ten_days_ago}" data-tokens="5000"' in page.text
    assert page.text.count("<rect ") == 14 and "<script" not in page.text
    errors = page.text.split('id="errors-table"', 1)[1]
    assert "usage-ann" in errors and "upstream_error" in errors and "502" in errors


@pytest.mark.stack
def test_csv_export_has_the_same_numbers(stack, admin, known_usage):
    response = admin.http.get("/services/usage/usage.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = {r["user"]: r for r in csv.DictReader(io.StringIO(response.text))}
    assert rows["usage-ben"] == {
        "user": "usage-ben", "groups": "usage-vip", "budget_per_day": "90000",
        "tokens_today": "0", "tokens_week": "300", "budget_week": "630000",
        "requests_week": "1", "mean_queue_ms": "100.0", "p95_queue_ms": "100.0",
        "errors_week": "0"}
    assert rows["usage-ann"]["budget_per_day"] == "50000"
    assert rows["usage-ann"]["p95_queue_ms"] == "50.0"
    # a user with no requests has empty waits, not zeros
    assert rows["usage-cid"]["mean_queue_ms"] == ""


@pytest.mark.stack
def test_usage_page_is_refused_to_non_admins(stack, admin, known_usage):
    assert set_password(create_account(admin, "usage-kim", "athletes"), PASSWORD).status_code == 302
    kim = HubClient(stack)
    assert kim.login("usage-kim", PASSWORD).status_code == 302
    assert kim.http.get("/services/usage/").status_code == 403
    assert kim.http.get("/services/usage/usage.csv").status_code == 403
    anonymous = HubClient(stack).http.get("/services/usage/")
    assert anonymous.url.path == "/hub/login"


@pytest.mark.stack
def test_usage_service_is_in_the_services_menu_with_least_scopes(stack, admin):
    service = admin.api("GET", "/services/usage").json()
    assert service["display"] is True
    assert service["roles"] == ["sporthub-usage"]
    home = admin.http.get("/hub/home").text
    assert "/services/usage/" in home


async def test_the_service_itself_refuses_a_signed_in_non_admin():
    """Second line of defence: the hub already refuses non-admins (no access:services), but the
    service must not rely on how roles happen to be configured."""
    from tornado import web

    from sporthub.usage.app import UsageHandler

    class FakeAPI:
        async def get_all(self, path):
            assert path == "users"
            return [{"name": "kim", "admin": False, "groups": ["athletes"]},
                    {"name": "boss", "admin": True, "groups": []}]

    handler = type("Fake", (), {"api": FakeAPI(), "current_user": {"name": "kim"}})()
    with pytest.raises(web.HTTPError) as refused:
        await UsageHandler._admin_report(handler)
    assert refused.value.status_code == 403


@pytest.mark.stack
def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(stack, admin, known_usage):
    """Names come from the hub and the ledger; a cell like =HYPERLINK(...) must stay text."""
    names = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tusage-tab", "\rusage-cr"]
    add_rows(stack, [{"user": name, "started_at": datetime.now(UTC), "prompt_tokens": 5,
                      "completion_tokens": 5} for name in names])
    response = admin.http.get("/services/usage/usage.csv")
    assert response.status_code == 200
    users = [r["user"] for r in csv.DictReader(io.StringIO(response.text, newline=""))]
    for name in names:
        assert "'" + name in users and name not in users, name
    # numbers stay numbers: nothing else in the file was touched
    assert all(r["tokens_week"].isdigit() for r in csv.DictReader(io.StringIO(response.text)))
