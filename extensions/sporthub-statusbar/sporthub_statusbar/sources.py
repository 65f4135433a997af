"""Which sources the committed labextension was built from.

The built extension is committed (the user image has no Node.js), so a change to src/ without a
rebuild would ship the old code. `make labextension` records a digest of the sources next to the
build; a test compares it with the sources in the tree.

    python -m sporthub_statusbar.sources EXTENSION_DIR          # print the digest
    python -m sporthub_statusbar.sources EXTENSION_DIR --write  # record it in the build
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

INPUTS = ("package.json", "package-lock.json", "tsconfig.json", "src")
RECORD = Path("sporthub_statusbar/labextension/sources.sha256")


def digest(root: Path) -> str:
    sha = hashlib.sha256()
    for top in INPUTS:
        path = root / top
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            sha.update(
                file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0"
            )
    return sha.hexdigest()


def main(argv: list[str]) -> int:
    root = Path(argv[0])
    value = digest(root)
    if "--write" in argv[1:]:
        (root / RECORD).write_text(value + "\n", encoding="ascii")
    print(value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
