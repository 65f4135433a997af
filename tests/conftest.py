"""Shared fixtures: one real SportHub stack (hub, proxy, gateway, llama-server) per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sportlab.recordings import ensure_recordings
from tests.stack import HubClient, Stack, make_stack, started


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    with started(make_stack(tmp_path_factory.mktemp("stack"))) as stack:
        yield stack


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


def pytest_addoption(parser):
    parser.addoption("--containers", action="store_true",
                     help="also run tests/containers: a real container engine, images built "
                          "(make test-containers)")


def pytest_ignore_collect(collection_path, config):
    # the container tier is slow (images, an engine): not part of the fast `make test`
    if collection_path.name == "containers" and collection_path.parent.name == "tests":
        return not config.getoption("--containers")
    return None
