"""A person in a real browser: logs in, JupyterLab opens, they ask the Coach and get an answer.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright; ``.ci/run`` installs it.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.stack


def test_an_athlete_logs_in_and_chats_with_the_coach_in_jupyterlab(stack, admin, browser,
                                                                   tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(120_000)
    page.goto(f"{stack.url}/hub/login")
    page.fill("#username_input", stack.admin_user)
    page.fill("#password_input", stack.admin_password)
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{stack.admin_user}/lab**")
    page.wait_for_selector("#jp-main-dock-panel")
    # no pop-up asking about Jupyter news: SportHub switches it off for everyone
    expect(page.get_by_text("Would you like to get notified")).to_have_count(0)

    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="JupyterlabChat:sidepanel"]').click()
    page.get_by_role("button", name="New chat").first.click()
    box = page.locator(".jp-chat-input-container textarea").first
    box.fill("What should I eat before a long run?")
    # the persona appears once Jupyter AI has loaded: slow on a loaded machine (expect's own
    # default is 5 s, which CI under load missed)
    expect(page.locator(".jp-chat-input-container").get_by_text("Coach")).to_be_visible(
        timeout=120_000)
    # the Coach may have spoken already (an athlete's welcome in coach.chat, a demo notice):
    # count its messages and the ledger's rows first, and wait for this question's own
    answer = page.locator('.jp-chat-message:has(div[title="Coach"]) .jp-chat-rendered-message')
    before = answer.count()
    rows_before = len([r for r in stack.ledger_rows() if r["user"] == stack.admin_user])
    box.press("Enter")

    deadline = time.monotonic() + 180
    while (answer.count() <= before or not re.search(r"\w{3}", answer.last.inner_text())
           or page.get_by_text("Coach is typing").count()):
        assert time.monotonic() < deadline, "the Coach did not answer within 180 s"
        page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "coach-answer.png"))
    rows = [r for r in stack.ledger_rows() if r["user"] == stack.admin_user]
    assert len(rows) > rows_before and rows[-1]["outcome"] == "ok" and rows[-1]["stream"]
