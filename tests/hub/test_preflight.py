"""`make up` / `make test` from a private folder (a clone in /root) stop before anything is
downloaded, naming the folder, when people's servers will run as system users (root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def preflight(checkout: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("SPORTHUB_PROFILE", "SPORTHUB_CONFIG")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(checkout), "preflight"],
                          env={**environment, **env}, capture_output=True, text=True, timeout=60,
                          check=False)


def test_a_checkout_in_a_private_folder_is_refused_before_any_download():
    # not pytest's tmp_path: its own base folder is private to root
    with tempfile.TemporaryDirectory(dir="/tmp") as base:
        check_the_folders(Path(base))


def check_the_folders(base: Path) -> None:
    private = base / "private"
    checkout = private / "sporthub"
    checkout.mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", checkout)
    base.chmod(0o755)
    private.chmod(0o700)

    refused = preflight(checkout)
    if os.geteuid() != 0:  # nobody else's servers run here: nothing to refuse
        assert refused.returncode == 0, refused.stderr
        return
    assert refused.returncode == 2
    assert f"cannot enter {private}." in refused.stderr
    assert f"chmod o+x {private}" in refused.stderr
    # the docker profile runs people in containers: the checkout's folder does not matter
    assert preflight(checkout, SPORTHUB_PROFILE="docker").returncode == 0

    private.chmod(0o711)
    allowed = preflight(checkout)
    assert allowed.returncode == 0, allowed.stderr
