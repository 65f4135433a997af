"""JupyterLab's status-bar item (extensions/sporthub-statusbar): where an athlete stands.

A real stack in front of the fake backend (one slot), athletes in Chromium: the item says idle
with today's tokens, then, while someone else's question holds the model, "2nd in line", "1st in
line", "answering", in English and in Russian (JupyterLab's language), and clicking it opens the
chat. Every request here is a stream that holds its place until the test lets it go, so each
state lasts as long as the test needs to see it: nothing depends on how fast this machine is.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from sporthub_statusbar.sources import RECORD, digest

# the same one-slot stack and browser as the Coach's tests (fixtures, hence the noqa below)
from tests.extensions.test_coach_data import BUDGET, backend, hub, status  # noqa: F401
from tests.support.fake_backend import MODEL
from tests.support.stack import add_rows, create_account, set_password

EXTENSION = Path(__file__).resolve().parents[2] / "extensions" / "sporthub-statusbar"
PASSWORD = "relay-cadence-harbour-42"
UI_TIMEOUT_MS = 120_000  # the longest wait: the item polls every 30 s while idle


def test_the_labextension_is_prebuilt_and_enabled():
    listed = subprocess.run(
        [Path(sys.executable).with_name("jupyter"), "labextension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    # without the colours it prints even into a pipe
    output = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    # prebuilt: found in this Python's share/jupyter/labextensions, installed by its package
    section = output.split(str(Path(sys.prefix) / "share" / "jupyter" / "labextensions"))[1]
    assert re.search(
        r"sporthub-statusbar v0\.1\.0 enabled\s+OK \(python, sporthub-statusbar\)", section
    ), output


def test_the_committed_build_is_built_from_the_sources_in_the_tree():
    recorded = (EXTENSION / RECORD).read_text(encoding="ascii").strip()
    assert recorded == digest(EXTENSION), (
        "extensions/sporthub-statusbar/src changed without a rebuild: run `make labextension` "
        "and commit sporthub_statusbar/labextension"
    )


class Streams:
    """Streaming chat requests on an event loop of their own, each held until released."""

    def __init__(self, gateway: str):
        self.gateway = gateway
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.held = {}

    async def _ask(self, token: str) -> None:
        # long enough never to end by itself: the test ends it by closing the connection
        body = {
            "model": MODEL,
            "stream": True,
            "messages": [{"role": "user", "content": "tokens=5000 delay=0.1"}],
        }
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream(
                "POST",
                f"{self.gateway}/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status_code == 200, await response.aread()
            async for _ in response.aiter_lines():
                pass

    def ask(self, who: str, token: str) -> None:
        self.held[who] = asyncio.run_coroutine_threadsafe(self._ask(token), self.loop)

    def release(self, who: str) -> None:
        self.held.pop(who).cancel()

    def close(self) -> None:
        for who in list(self.held):
            self.release(who)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def athlete(stack, name: str) -> None:
    """An athlete invited like everyone; the invite page sends them on to the login form."""
    assert set_password(create_account(stack.admin, name, "athletes"), PASSWORD).status_code == 302


def athlete_in_lab(stack, chromium, name: str, language: str | None = None) -> Page:
    """An athlete (see athlete) logged in through the form, in JupyterLab in ``language``."""
    if language:
        stack.admin.start_server(name)
        token = stack.admin.new_token(name, note="tests")
        response = httpx.put(
            f"{stack.url}/user/{name}/lab/api/settings/@jupyterlab/translation-extension:plugin",
            json={"raw": json.dumps({"locale": language})},
            timeout=30,
            headers={"Authorization": f"token {token}"},
        )
        assert response.status_code == 204, response.text
    # the reset time is shown on the browser's clock: UTC here, so it reads 00:00
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{stack.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{name}/lab**")
    page.wait_for_selector("#jp-main-dock-panel")
    return page


def item(page: Page):
    return page.locator("#jp-main-statusbar .sporthub-status")


def says(page: Page, text) -> None:
    """The item shows ``text`` (a string or pattern) within a few of its polls."""
    expect(item(page)).to_have_text(text, timeout=UI_TIMEOUT_MS)


@pytest.mark.stack
def test_the_item_follows_the_line_and_opens_the_chat(hub, backend, browser, tmp_path):  # noqa: F811
    for name in ("olga", "pavel", "quinn"):
        athlete(hub, name)  # quinn never opens JupyterLab
    olga = athlete_in_lab(hub, browser, "olga")
    pavel = athlete_in_lab(hub, browser, "pavel", language="ru_RU")
    limit = f"{BUDGET // 1000}"
    says(olga, f"AI: idle · 0 of {limit}k tokens today")
    says(pavel, f"ИИ: свободен · 0 из {limit} тыс. токенов сегодня")

    tokens = {name: hub.admin.new_token(name, note="tests") for name in ("olga", "pavel")}
    streams = Streams(hub.gateway)
    try:
        # quinn's question holds the only slot; olga's, then pavel's, wait behind it
        streams.ask("quinn", hub.admin.new_token("quinn", note="tests"))
        wait_for(lambda: backend.active >= 1, "quinn's question never reached the model")
        streams.ask("olga", tokens["olga"])
        wait_for(
            lambda: status(hub, "olga", tokens["olga"])["state"] == "waiting", "olga never waited"
        )
        streams.ask("pavel", tokens["pavel"])
        wait_for(
            lambda: status(hub, "pavel", tokens["pavel"])["position"] == 2,
            "pavel never stood second",
        )

        soon = r"(, (about \d+ min|under a minute))?"
        skoro = r"(, (примерно \d+ мин|меньше минуты))?"
        says(olga, re.compile(rf"^AI: 1st in line{soon}$"))
        says(pavel, re.compile(rf"^ИИ: 2-й в очереди{skoro}$"))
        olga.screenshot(path=str(tmp_path / "waiting-en.png"))
        pavel.screenshot(path=str(tmp_path / "waiting-ru.png"))

        streams.release("quinn")
        says(olga, "AI: answering")
        says(pavel, re.compile(rf"^ИИ: 1-й в очереди{skoro}$"))
        streams.release("olga")
        says(pavel, "ИИ: отвечает")
        streams.release("pavel")
    finally:
        streams.close()
    spent = sum(
        r["prompt_tokens"] + r["completion_tokens"]
        for r in hub.ledger_rows()
        if r["user"] == "olga"
    )
    assert spent > 0
    # back to idle, with what the answer cost (the ledger's count, shortened as the item shows)
    used = str(spent) if spent < 1000 else r"[\d.]+k"
    says(olga, re.compile(rf"^AI: idle · {used} of {limit}k tokens today$"))

    # the click opens the chat with the Coach in the side panel
    item(olga).click()
    box = olga.locator(".jp-chat-sidepanel .jp-chat-input-container textarea").first
    expect(box).to_be_visible(timeout=UI_TIMEOUT_MS)
    token = tokens["olga"]
    listing = httpx.get(
        f"{hub.url}/user/olga/api/contents/coach.chat",
        timeout=30,
        headers={"Authorization": f"token {token}"},
    )
    assert listing.status_code == 200, listing.text


@pytest.mark.stack
def test_a_hidden_tab_asks_nothing_and_catches_up_when_shown(hub, browser):  # noqa: F811
    athlete(hub, "tess")
    tess = athlete_in_lab(hub, browser, "tess")
    says(tess, re.compile(r"^AI: idle"))
    asked = []
    tess.on("request", lambda r: asked.append(r.url) if "/sporthub/status" in r.url else None)
    # what the browser does when the athlete switches to another tab
    tess.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    # longer than the idle poll (30 s): a visible tab would have asked at least once by now
    tess.wait_for_timeout(40_000)
    assert asked == []
    with tess.expect_request(lambda r: "/sporthub/status" in r.url, timeout=UI_TIMEOUT_MS):
        tess.evaluate("""() => {
            Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
            document.dispatchEvent(new Event('visibilitychange'));
        }""")
    tess.context.close()


@pytest.mark.stack
def test_over_budget_and_unavailable_are_said_in_plain_words(hub, backend, browser):  # noqa: F811
    athlete(hub, "rita")
    # rita spent the day's budget earlier today (a ledger row as the gateway writes it; the
    # gateway reads the ledger at its first question about her, when her JupyterLab opens)
    add_rows(
        hub,
        [
            {
                "user": "rita",
                "started_at": datetime.now(UTC),
                "prompt_tokens": BUDGET,
                "completion_tokens": 0,
                "endpoint": "chat/completions",
            }
        ],
    )
    rita = athlete_in_lab(hub, browser, "rita", language="ru_RU")
    says(rita, "ИИ: лимит исчерпан, обновится в 00:00")

    athlete(hub, "sam")
    sam = athlete_in_lab(hub, browser, "sam")
    says(sam, re.compile(r"^AI: idle"))
    backend.stop()  # the last test of the module: the model is gone
    sam.reload()
    says(sam, "AI: not available right now")
    expect(item(sam)).to_have_attribute("title", re.compile("try again in a minute"))


def wait_for(condition, message: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, message
        time.sleep(0.2)
