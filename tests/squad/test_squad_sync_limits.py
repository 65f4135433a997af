"""The sync at the squad's limit of files per athlete: nothing new is sent for nothing, what the
service holds still follows its changes, and a removal frees a place in the same run.

The squad service itself (its 429 after reading a body) is tests/squad/test_squad_sync.py's, on
the real stack; here a stand-in answers the sync's calls as the service does, so that each call
can be counted."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx

from sporthub_coach.squad_sync import LIMIT_REACHED, SquadSync

MOST = 2


class Squad:
    """The squad API's answers to the sync (GET me, PUT and DELETE me/files/<name>)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.calls: list[tuple[str, str]] = []

    async def me(self) -> dict:
        return {"sharing": True, "refused": [],
                "stored": {"files": [{"name": n, "sha256": hashlib.sha256(b).hexdigest()}
                                     for n, b in self.files.items()]},
                "limits": {"file_bytes": 2**20, "files": MOST, "total_bytes": 2**30}}

    async def call(self, method: str, path: str, content: bytes = b"", **_) -> httpx.Response:
        name = path.removeprefix("me/files/")
        self.calls.append((method, name))
        if method == "DELETE":
            self.files.pop(name, None)
            return httpx.Response(204)
        if name not in self.files and len(self.files) >= MOST:
            return httpx.Response(429, json={"error": {"message": "too many"}})
        self.files[name] = content
        return httpx.Response(201)


def sync_of(home: Path, squad: Squad) -> SquadSync:
    (home / "activities").mkdir(parents=True, exist_ok=True)
    return SquadSync(home, squad)


def test_at_the_limit_nothing_new_is_sent_and_a_changed_file_still_is(tmp_path):
    folder = tmp_path / "activities"
    squad = Squad({"a.gpx": b"<gpx>a</gpx>", "log.csv": b"date,rpe\n"})
    sync = sync_of(tmp_path, squad)
    (folder / "a.gpx").write_bytes(b"<gpx>a</gpx>")
    (folder / "b.gpx").write_bytes(b"<gpx>b</gpx>")
    (folder / "c.gpx").write_bytes(b"<gpx>c</gpx>")
    (folder / "log.csv").write_bytes(b"date,rpe\n2026-12-07,6\n")  # today's row, after b and c

    state = asyncio.run(sync.sync_once())
    assert squad.calls == [("PUT", "log.csv")]  # b and c: never read for a refusal
    assert "you already share 2 files, the most the squad keeps (2)" in state.skipped["b.gpx"]
    assert state.skipped["c.gpx"] == LIMIT_REACHED
    assert squad.files["log.csv"].endswith(b"6\n")

    # the next run sends nothing again
    squad.calls.clear()
    asyncio.run(sync.sync_once())
    assert squad.calls == []

    # a removal frees a place in the same run: the delete goes first, then one new file
    (folder / "a.gpx").unlink()
    state = asyncio.run(sync.sync_once())
    assert squad.calls == [("DELETE", "a.gpx"), ("PUT", "b.gpx")]
    assert state.skipped == {"c.gpx": "c.gpx: you already share 2 files, the most the squad "
                                      "keeps (2); remove old ones first."}
