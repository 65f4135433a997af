"""Venvs of the benchmarks' own, installed from the package index on a first run."""

from __future__ import annotations

import subprocess
from pathlib import Path


def pip_install(venv: Path, *requirements: str) -> tuple[bool, list[str]]:
    """pip install, showing its progress (less the local mirror's noise); the last lines kept."""
    proc = subprocess.Popen([str(venv / "bin" / "python"), "-m", "pip", "install",
                             "--disable-pip-version-check", *requirements],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        if not line or line.startswith("WARNING: Location"):
            continue
        tail = (tail + [line])[-5:]
        if line.startswith(("Collecting", "Downloading", "Installing", "Successfully", "ERROR")):
            print(f"    pip: {line[:150]}", flush=True)
    return proc.wait() == 0, tail
