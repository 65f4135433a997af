"""Fixtures for sportlab tests. The real recordings (``activities``) are a fixture of
tests/conftest.py: the Coach's tests upload the same files."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
