"""Shared fixtures: one real SportHub stack (hub, proxy, gateway, llama-server) per test session."""

from __future__ import annotations

import pytest

from tests.stack import HubClient, Stack, make_stack, started


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    with started(make_stack(tmp_path_factory.mktemp("stack"))) as stack:
        yield stack


@pytest.fixture(scope="session")
def admin(stack) -> HubClient:
    """The admin, logged in through the login form, with an API token."""
    return HubClient.admin(stack)
