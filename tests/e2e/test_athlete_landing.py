"""An athlete's first minutes in Chromium: through the invite link into their Coach chat, in their
own language, told honestly that the model is a demo; a scientist keeps the Launcher.

The stack answers from tests/support/fake_backend.py marked ``"demo": true`` (the embedded model is
marked so by SportHub itself), so answers are quick and the test sees the demo notice."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.test_walking_skeleton import COACH, chat
from tests.support.browser import CHROMIUM, FLAGS
from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.stack import HubClient, create_account, make_stack, set_password, started

pytestmark = pytest.mark.stack
PASSWORD = "long-enough-passphrase-42"
DEMO_RU = "демонстрационная модель"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    backend = FakeBackend().start()
    backends = json.dumps([{"name": "fake", "url": backend.url, "api_key": KEY,
                            "models": [MODEL], "demo": True}])
    with started(make_stack(tmp_path_factory.mktemp("landing"), llm_backends=backends)) as stack:
        stack.admin = HubClient.admin(stack)
        yield stack
    backend.stop()


@pytest.fixture(scope="module")
def browser():
    # a busy 2-core machine renders a first JupyterLab slowly: wait for it, not 5 s
    expect.set_options(timeout=120_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()
    expect.set_options(timeout=5_000)


def person(hub, name: str, group: str) -> None:
    """An account in ``group`` whose owner set a password through the invite link."""
    url = create_account(hub.admin, name, group)
    assert set_password(url, PASSWORD).status_code == 302


def sign_in(hub, browser, name: str, locale: str):
    context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{name}/lab**")
    page.wait_for_selector("#jp-main-dock-panel")
    return page


def coach_tab(page):
    return page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="coach")


def say(page, text: str) -> None:
    """Type into the Coach's chat and send, once the chat has loaded: a message typed while the
    chat document still loads (its welcome shows as "Coachundefined") was lost in CI."""
    expect(page.locator(".jp-chat-message").first).to_contain_text("/share")
    before = page.locator(".jp-chat-message").count()
    box = page.locator(".jp-chat-input-container textarea").first
    box.fill(text)
    expect(box).to_have_value(text)
    box.press("Enter")
    expect(box).to_have_value("", timeout=30_000)  # sent: the box is empty again
    expect(page.locator(".jp-chat-message").nth(before)).to_be_visible()  # and in the chat


def test_a_russian_athlete_lands_in_the_coach_chat_in_russian(hub, browser):
    person(hub, "olga", "athletes")
    page = sign_in(hub, browser, "olga", "ru-RU")
    expect(coach_tab(page)).to_have_count(1)
    welcome = page.locator(".jp-chat-message").first
    expect(welcome).to_contain_text("Здравствуйте! Я Тренер")
    expect(welcome).to_contain_text("/log")
    expect(welcome).to_contain_text("/share вкл")
    expect(welcome).to_contain_text(DEMO_RU)
    expect(page.locator("#jp-MainMenu")).to_contain_text("Файл")
    # the status bar's words are Russian, and it names the model a demo
    expect(page.locator(".sporthub-status")).to_contain_text("ИИ (демо-модель): свободен")
    expect(page.locator(".jp-Launcher")).to_have_count(0)

    # a question answered; the demo notice was in the welcome, so it is not said again
    say(page, "tokens=5 Как восстановиться после старта?")
    expect(page.locator(".jp-chat-message").last).to_contain_text("tok", timeout=180_000)
    expect(page.get_by_text(DEMO_RU)).to_have_count(1)

    # the athlete closes the Coach's tab: a reload does not force it open again
    coach_tab(page).locator(".lm-TabBar-tabCloseIcon").click()
    expect(coach_tab(page)).to_have_count(0)
    time.sleep(3)  # JupyterLab saves the layout a moment after it changes
    page.reload()
    page.wait_for_selector("#jp-main-dock-panel")
    time.sleep(3)
    expect(coach_tab(page)).to_have_count(0)
    page.context.close()


def test_an_english_browser_gets_english_and_a_scientist_the_launcher(hub, browser):
    person(hub, "emma", "athletes")
    page = sign_in(hub, browser, "emma", "en-US")
    expect(coach_tab(page)).to_have_count(1)
    expect(page.locator(".jp-chat-message").first).to_contain_text("I am the Coach")
    expect(page.locator("#jp-MainMenu")).to_contain_text("File")
    expect(page.locator(".sporthub-status")).to_contain_text("AI (demo model): idle")
    page.context.close()

    person(hub, "sam", "scientists")
    page = sign_in(hub, browser, "sam", "ru-RU")
    expect(page.locator(".jp-Launcher")).to_have_count(1)
    expect(coach_tab(page)).to_have_count(0)
    page.context.close()


def test_english_chosen_in_settings_survives_a_restart_from_a_russian_browser(hub, browser):
    person(hub, "ivan", "athletes")
    page = sign_in(hub, browser, "ivan", "ru-RU")
    expect(page.locator("#jp-MainMenu")).to_contain_text("Файл")
    # Settings > Language > English, as the person does it; JupyterLab asks, then reloads
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Настройки").click()
    page.locator(".lm-Menu-itemLabel", has_text="Язык").click()
    page.locator(".lm-Menu-item", has_text="English").first.click()
    # the setting is saved, then JupyterLab reloads itself
    with page.expect_navigation(), page.expect_response(
            "**/api/settings/@jupyterlab/translation-extension:plugin*") as saved:
        page.locator(".jp-Dialog .jp-mod-accept").click()
    assert saved.value.request.method == "PUT" and saved.value.status == 204
    page.wait_for_selector("#jp-main-dock-panel")
    expect(page.locator("#jp-MainMenu")).to_contain_text("File")
    page.context.close()

    # the server stops (culler, admin or the person) and the person's Russian browser starts it
    # again: the hub hands it COACH_LANG=ru, which must not beat their own choice
    assert hub.admin.api("DELETE", "/users/ivan/server").status_code in (202, 204)
    deadline = time.monotonic() + 120
    while hub.admin.api("GET", "/users/ivan").json()["servers"]:
        assert time.monotonic() < deadline, "ivan's server did not stop"
        time.sleep(0.5)
    page = sign_in(hub, browser, "ivan", "ru-RU")
    expect(page.locator("#jp-MainMenu")).to_contain_text("File")
    expect(page.locator(".sporthub-status")).to_contain_text("AI (demo model):")
    # the Coach's own words follow the same choice
    expect(coach_tab(page)).to_have_count(1)
    say(page, "/data")
    expect(page.locator(".jp-chat-message").last).to_contain_text(
        "Your training data, as the Coach sees it", timeout=180_000)
    page.context.close()


def test_the_demo_notice_is_said_once_per_chat(hub):
    person(hub, "dasha", "athletes")
    hub.admin.start_server("dasha")
    token = hub.admin.new_token("dasha", note="tests")
    for _ in range(2):
        # in a thread of its own: Playwright's sync API keeps an event loop in this one
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, chat(hub, "dasha", token, "tokens=3 hello", persona=COACH,
                                          chat_file="second.chat")).result()
    saved = httpx.get(f"{hub.url}/user/dasha/api/contents/second.chat?content=1",
                      headers={"Authorization": f"token {token}"}).json()["content"]
    bodies = [m["body"] for m in json.loads(saved)["messages"] if m["sender"] == COACH]
    assert sum("demo model" in b or DEMO_RU in b for b in bodies) == 1, bodies
    assert len(bodies) == 3  # the notice and two answers
