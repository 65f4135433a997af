"""Shared fixtures: one real SportHub stack (hub, proxy, gateway, llama-server) per test session."""

from __future__ import annotations

import pytest

from tests.stack import HubClient, Stack, make_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    stack = make_stack(tmp_path_factory.mktemp("stack"))
    stack.start()
    yield stack
    if stack.proc.poll() is None:
        stack.descendants = stack.processes()
        stack.stop()


@pytest.fixture(scope="session")
def admin(stack) -> HubClient:
    """The admin, logged in through the login form, with an API token."""
    return HubClient.admin(stack)
