"""Fixtures for sportlab tests: where the real recordings and the notebooks live."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The recordings live beside the repository (../shared), both here and in CI.
ACTIVITIES = REPO_ROOT.parent / "shared/data/activities"


@pytest.fixture(scope="session")
def activities() -> Path:
    assert ACTIVITIES.is_dir(), f"real recordings not found at {ACTIVITIES}"
    return ACTIVITIES
