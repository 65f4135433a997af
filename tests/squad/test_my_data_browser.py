"""``/hub/my-data`` in Chromium, in English and in Russian: the athlete sees whether they share,
switches sharing on and off on the page, and sees who read their data.

A real stack (hub, proxy, squad service); the athlete signs in through the hub's login page
straight to ``/hub/my-data`` (no JupyterLab server is started: the page is the hub's own). While
sharing is on, a ride arrives as the athlete's server would send it (their own token) and the
scientist reads it with ``sportlab.squad``; the page must then list that read. Chromium is
Debian's, driven by Playwright, as in tests/e2e.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

import sportlab
from tests.squad.test_squad_service import RIDE, Person, backends, set_properties
from tests.support.fake_backend import FakeBackend
from tests.support.squad import stored_files, stored_rows, until, wait_for_squad
from tests.support.stack import HubClient, make_stack, new_invite, set_password, started

pytestmark = pytest.mark.stack
PASSWORD = "saddle-cadence-harbour-31"

# what the athlete reads on the page, in each language (sporthub/i18n.py's catalogue)
TEXT = {
    "en-US": {"title": "My training data", "on": "on", "off": "off",
              "share": "Share my training data with the club's staff",
              "stop": "Stop sharing and delete the shared copies",
              "done_on": "Sharing is on.",
              "done_off": "Sharing is off: your shared files and rows were deleted.",
              "reads": "Who read your data", "nobody": "nobody yet",
              "change_on": "share on", "change_off": "share off",
              "stored_none": "0 files, 0 sessions, 0 daily log lines."},
    "ru-RU": {"title": "Мои тренировочные данные", "on": "открыт", "off": "закрыт",
              "share": "Открыть доступ тренерскому штабу к моим данным",
              "stop": "Закрыть доступ и удалить переданные копии",
              "done_on": "Доступ открыт.",
              "done_off": "Доступ закрыт: переданные файлы и записи удалены.",
              "reads": "Кто смотрел ваши данные", "nobody": "пока никто",
              "change_on": "доступ открыт", "change_off": "доступ закрыт",
              "stored_none": "Файлов: 0, тренировок: 0, строк дневника: 0."},
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    fake = FakeBackend().start()
    stack = make_stack(tmp_path_factory.mktemp("my-data"), llm_backends=backends(fake))
    try:
        with started(stack) as stack:
            stack.admin = HubClient.admin(stack)
            wait_for_squad(stack)
            yield stack
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def scientist(hub):
    return Person(hub, "md-sofia", "scientists")


def posted(response) -> bool:
    return response.request.method == "POST" and response.url.endswith("/hub/my-data")


def athlete(hub, name: str, *groups: str) -> Person:
    """An athlete with a password of their own (the invite link), and a token as their server
    holds one."""
    person = Person(hub, name, "athletes", *groups)
    assert set_password(new_invite(hub.admin, name), PASSWORD).status_code == 302
    # a password set through the invite ends the account's earlier tokens: a new one
    person.token = hub.admin.new_token(name, note="tests")
    return person


@pytest.mark.parametrize("locale", ["en-US", "ru-RU"])
def test_the_athlete_switches_sharing_and_sees_who_read_on_the_page(hub, browser, scientist,
                                                                    activities, locale):
    text = TEXT[locale]
    name = "md-anna" if locale == "en-US" else "md-olga"
    me = athlete(hub, name)
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{hub.url}/hub/login?next=/hub/my-data")
        page.fill("#username_input", name)
        page.fill("#password_input", PASSWORD)
        page.click("#login_submit")
        page.wait_for_url("**/hub/my-data")
        expect(page.locator("h1")).to_have_text(text["title"])
        state = page.locator("#sporthub-sharing-state")
        # private by default, and the page says so
        expect(state).to_have_attribute("data-sharing", "off")
        expect(state).to_contain_text(text["off"])
        expect(page.locator("#sporthub-reads")).to_contain_text(text["nobody"])

        with page.expect_response(posted) as switch:
            page.get_by_role("button", name=text["share"]).click()
        assert switch.value.status == 303  # POST, redirect, GET
        expect(state).to_have_attribute("data-sharing", "on", timeout=30_000)
        expect(state).to_contain_text(text["on"])
        expect(page.locator("#sporthub-my-data-done")).to_have_text(text["done_on"])
        record = page.locator("#sporthub-consent-record tbody tr")
        expect(record.last).to_contain_text(text["change_on"])
        expect(record.last).to_contain_text("127.0.0.1")  # the address the decision came from

        # a reload shows the page again: nothing is posted, the record does not grow, and the
        # confirmation was for once
        decisions = record.count()
        posts = []
        page.on("request", lambda request: request.method == "POST" and posts.append(request))
        page.reload()
        expect(state).to_have_attribute("data-sharing", "on")
        expect(page.locator("#sporthub-my-data-done")).to_have_count(0)
        expect(record).to_have_count(decisions)
        assert posts == []
        assert [e["change"] for e in me.call("GET", "me").json()["consent_record"]] == \
            ["share on"]

        # the athlete's server sends a ride; the scientist reads it
        assert me.upload(RIDE, (activities / RIDE).read_bytes()).status_code == 201
        squad = sportlab.squad.connect(f"{hub.url}/services/squad/api", scientist.token)
        assert list(squad.sessions(name)["file"]) == [RIDE]
        page.reload()
        expect(page.locator("#sporthub-stored")).to_have_attribute("data-files", "1")
        reads = page.locator("#sporthub-reads tbody tr[data-reader='md-sofia']")
        expect(reads.first).to_contain_text("sessions")
        expect(page.get_by_role("heading", name=text["reads"])).to_be_visible()
        assert re.search(r"\d{4}-\d\d-\d\d|\d", reads.first.inner_text())  # when it happened

        with page.expect_response(posted) as switch:
            page.get_by_role("button", name=text["stop"]).click()
        assert switch.value.status == 303
        expect(state).to_have_attribute("data-sharing", "off", timeout=30_000)
        expect(page.locator("#sporthub-my-data-done")).to_have_text(text["done_off"])
        expect(page.locator("#sporthub-stored")).to_have_text(text["stored_none"])
        expect(record.last).to_contain_text(text["change_off"])
        # the read log stays the athlete's to see after the copies are gone
        expect(page.locator("#sporthub-reads tbody tr[data-reader='md-sofia']").first
               ).to_be_visible()
        # and the copies are gone at once: the scientist gets 404, storage holds nothing
        with pytest.raises(sportlab.squad.SquadError, match="404"):
            squad.sessions(name)
        assert stored_rows(hub, "squad_files", name) == 0
        assert stored_rows(hub, "squad_sessions", name) == 0
        assert stored_files(hub) == []
        posts.clear()  # the switch-off's own
        page.reload()  # nor does a reload after the switch-off post it (or anything) again
        expect(state).to_have_attribute("data-sharing", "off")
        assert posts == []
        assert [e["change"] for e in me.call("GET", "me").json()["consent_record"]] == \
            ["share on", "share off"]
    finally:
        context.close()


def test_a_minor_is_refused_on_the_page_until_the_guardians_consent_is_recorded(hub):
    """The page's refusal is the page again with the reason (nothing changed, so nothing to
    redirect from); once the admin has recorded the guardian's consent the switch goes through
    and answers 303 like any other."""
    minor = athlete(hub, "md-mila", "md-juniors")
    set_properties(hub, "md-juniors", squad_minor=True)
    # the service knows the groups as they were when it last asked (SPORTHUB_GATEWAY_AUTH_CACHE_S)
    until(lambda: minor.call("GET", "me").json()["minor"], what="the service to see a minor")
    browser = HubClient(hub)
    assert browser.login("md-mila", PASSWORD).status_code == 302
    xsrf = browser.http.cookies.get("_xsrf", path="/hub/")
    refused = browser.http.post("/hub/my-data", data={"share": "on", "_xsrf": xsrf})
    assert refused.status_code == 403
    assert 'id="sporthub-my-data-error"' in refused.text and "guardian" in refused.text
    assert 'data-sharing="off"' in refused.text and 'id="sporthub-minor"' in refused.text
    assert minor.call("GET", "me").json()["consent_record"] == []

    recorded = httpx.put(f"{hub.url}/services/squad/api/athletes/md-mila/guardian",
                         json={"guardian": "Olga Petrova (mother)"}, timeout=30,
                         headers={"Authorization": f"token {hub.admin.token}"})
    assert recorded.status_code == 200, recorded.text
    turned = browser.http.post("/hub/my-data", follow_redirects=False,
                               data={"share": "on", "_xsrf": xsrf})
    assert turned.status_code == 303 and turned.headers["location"] == "/hub/my-data"
    page = browser.http.get("/hub/my-data")
    assert 'data-sharing="on"' in page.text and 'id="sporthub-my-data-done"' in page.text
    assert "Olga Petrova (mother)" in page.text
    # the confirmation was for that one answer
    assert 'id="sporthub-my-data-done"' not in browser.http.get("/hub/my-data").text
    assert [e["change"] for e in minor.call("GET", "me").json()["consent_record"]] == [
        "guardian consent", "share on"]
