"""Shared fixtures: one real SportHub stack (hub, proxy, gateway, llama-server) per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sportlab.recordings import ensure_recordings
from tests.support import stack as support_stack
from tests.support.stack import HubClient, Stack, make_stack, started


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    with started(make_stack(tmp_path_factory.mktemp("stack"))) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, driven by Playwright (tests/support/browser.py)."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, FLAGS

    assert CHROMIUM.exists(), "Chromium is needed for the browser tests: apt-get install chromium"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def admin(stack) -> HubClient:
    """The admin, logged in through the login form, with an API token."""
    return HubClient.admin(stack)


@pytest.fixture(scope="session")
def activities(request) -> Path:
    """The real recordings from the sweat 0.25.0 wheel, downloaded on first use (see recordings)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    # Show the download's progress even though pytest captures output.
    with capture.global_and_fixture_disabled():
        return ensure_recordings()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # tests/support/stack.py starts a stack only for a test marked `stack` (see Stack.start)
    support_stack.CURRENT_TEST = item
