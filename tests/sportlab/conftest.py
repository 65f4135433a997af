"""Fixtures for sportlab tests. The real recordings (``activities``) are a fixture of
tests/conftest.py: the Coach's tests upload the same files."""

from pathlib import Path

import pytest

from sportlab import read_activity

REPO_ROOT = Path(__file__).resolve().parents[2]
LONG_RIDE = "4078723797.fit"  # Garmin Edge 1000, 1 Hz, 2 h 19 min, no pauses, power and HR


@pytest.fixture(scope="session")
def long_ride_as_read(activities):
    """The long ride as sportlab reads it, read once: a read costs about a second of CPU, and the
    tests of what is computed from it need not pay it each (the readers' own tests read it
    themselves). Take a ``.copy()`` before changing it."""
    return read_activity(activities / LONG_RIDE)
