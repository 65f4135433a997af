"""Fixtures for sportlab tests: the real recordings (fetched into a cache) and the notebooks."""

from pathlib import Path

import pytest
from recordings import ensure_recordings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def activities(request) -> Path:
    """The real recordings from the sweat 0.25.0 wheel, downloaded on first use (see recordings)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    # Show the download's progress even though pytest captures output.
    with capture.global_and_fixture_disabled():
        return ensure_recordings()
