"""Debian's Chromium for the browser tests and benchmarks (Playwright's own download cannot work
on these machines)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# these machines have no network: without these flags Chromium keeps calling home and failing
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
