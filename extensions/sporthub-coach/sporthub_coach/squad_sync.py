"""While the athlete shares, their own server keeps the squad service's copy of ``~/activities``.

Runs inside the athlete's JupyterLab server, as the athlete, with the server's own hub token
(``JUPYTERHUB_API_TOKEN``) and the squad API's address through the hub's proxy
(``SQUAD_API_URL``): no service ever reads a home. At the server's start and every
``SQUAD_SYNC_INTERVAL_S`` seconds (30 by default) it asks the service whether sharing is on and
what it holds, then sends what is new or changed (by SHA-256) and deletes what was removed.

Only FIT, GPX and TCX recordings (also ``.gz``, or in a ``.zip``: the service reads what is
inside), ``log.csv`` and the thresholds ``profile.toml`` (the service summarises every session
with them) at the top of ``~/activities`` are sent. Skipped,
each with its reason (shown by the Coach's ``/share``): a link pointing outside the home (never
opened), anything that is not a regular file, an empty file, a FIT file shorter than its own
header says (cut off while copying), and what the service refuses (size, count: 413, 429).
At the squad's limit of files per athlete a new file is not sent at all (the service would read
it whole to refuse it, every interval); a changed file the service holds still goes.
A file the service refused for what it holds (422: an invalid ``profile.toml``, a recording
sportlab cannot read) is noted by the service with its SHA-256 and reason (``GET me``'s
``refused``): it is not sent again until it changes, and its reason stays in ``/share``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from sporthub_coach.folder import ACTIVITIES

# the squad service's own list (sporthub.squad.store): recordings, gzip-compressed ones
# (Strava's bulk export) and .zip archives of them (Garmin's and Strava's exports)
SUFFIXES = (".fit", ".gpx", ".tcx", ".fit.gz", ".gpx.gz", ".tcx.gz", ".zip")
LOG_FILE = "log.csv"
PROFILE_FILE = "profile.toml"
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. ()+-]{0,199}$")
log = logging.getLogger("sporthub_coach.squad_sync")
LIMIT_REACHED = "not sent: the squad's limit per athlete is reached"


class SquadUnavailable(Exception):
    """The squad service is not configured here or did not answer; the text says which."""


def fit_problem(head: bytes, size: int) -> str | None:
    """Why a FIT file is unusable, from its header alone: the header gives the length of the
    records, and the file must hold them and the 2-byte CRC (FIT protocol, file header)."""
    if size < 12 or len(head) < 12:
        return "too short to be a FIT file"
    header_size = head[0]
    if header_size not in (12, 14) or head[8:12] != b".FIT":
        return "not a FIT file (no FIT header)"
    (data_size,) = struct.unpack("<I", head[4:8])
    if size < header_size + data_size + 2:
        return (f"truncated FIT file: its header announces {header_size + data_size + 2} "
                f"bytes, the file has {size}")
    return None


@dataclass
class Local:
    path: Path  # where it is read from (a link inside the home: its target)
    size: int
    mtime_ns: int


@dataclass
class SyncState:
    sharing: bool | None = None
    last_run: float | None = None
    sent: int = 0
    deleted: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    error: str | None = None


class SquadClient:
    """The squad API, as the athlete (their server's token)."""

    def __init__(self, url: str | None = None, token: str | None = None):
        self.url = (url or os.environ.get("SQUAD_API_URL") or "").rstrip("/")
        self.token = token or os.environ.get("JUPYTERHUB_API_TOKEN") or ""
        if not self.url or not self.token:
            raise SquadUnavailable("no squad service is configured for this server")

    async def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=120) as client:
                return await client.request(method, f"{self.url}/{path}", **kwargs, headers={
                    "Authorization": f"token {self.token}"})
        except httpx.HTTPError as e:
            raise SquadUnavailable(f"the squad service did not answer ({type(e).__name__})") \
                from None

    async def me(self) -> dict:
        response = await self.call("GET", "me")
        if response.status_code != 200:
            raise SquadUnavailable(_message(response))
        return response.json()

    async def set_share(self, share: bool) -> tuple[int, dict]:
        response = await self.call("PUT", "me/consent", json={"share": share})
        return response.status_code, response.json()


def _message(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"the squad service answered {response.status_code}"


class SquadSync:
    def __init__(self, home: Path, client: SquadClient, interval_s: float = 30.0):
        self.home = home.resolve()
        self.folder = self.home / ACTIVITIES
        self.client = client
        self.interval_s = interval_s
        self.state = SyncState()
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        """Sync now (the athlete just switched sharing on)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except Exception:
                log.exception("squad sync failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            except TimeoutError:
                pass
            self._wake.clear()

    def scan(self) -> tuple[dict[str, Local], dict[str, str]]:
        """What may be sent, and what is skipped with its reason. Nothing outside the home is
        ever opened: a link is resolved first and followed only when its target is inside."""
        wanted, skipped = {}, {}
        try:
            entries = sorted(os.scandir(self.folder), key=lambda e: e.name)
        except OSError:
            return wanted, skipped
        for entry in entries:
            name = entry.name
            if name not in (LOG_FILE, PROFILE_FILE) and not name.lower().endswith(SUFFIXES):
                continue  # README.md, notebooks: not training records
            if not _FILE_NAME.fullmatch(name):
                skipped[name] = "the name has characters the squad does not take"
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                target = Path(os.path.realpath(path))
                if not target.is_relative_to(self.home):
                    skipped[name] = "a link pointing outside your home: not read"
                    continue
                path = target
            try:
                info = path.stat()
            except OSError:
                skipped[name] = "cannot be read"
                continue
            if not path.is_file():
                skipped[name] = "not a regular file"
                continue
            if info.st_size == 0:
                skipped[name] = "empty file (0 bytes)"
                continue
            if name.lower().endswith(".fit"):
                with open(path, "rb") as f:
                    problem = fit_problem(f.read(14), info.st_size)
                if problem:
                    skipped[name] = problem
                    continue
            wanted[name] = Local(path, info.st_size, info.st_mtime_ns)
        return wanted, skipped

    def _digest(self, local: Local) -> str:
        key = (str(local.path), local.size, local.mtime_ns)
        if key not in self._hashes:
            digest = hashlib.sha256()
            with open(local.path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            self._hashes[key] = digest.hexdigest()
        return self._hashes[key]

    async def sync_once(self) -> SyncState:
        async with self._lock:
            state = self.state
            try:
                me = await self.client.me()
            except SquadUnavailable as e:
                state.error = str(e)
                return state
            state.sharing, state.error = me["sharing"], None
            if not me["sharing"]:
                state.skipped = {}
                state.last_run = time.time()
                return state
            stored = {f["name"]: f["sha256"] for f in me["stored"]["files"]}
            refused = {f["name"]: f for f in me.get("refused") or ()}
            wanted, skipped = await asyncio.to_thread(self.scan)
            limits = me.get("limits") or {}
            largest, most = limits.get("file_bytes"), limits.get("files")
            for name, local in list(wanted.items()):
                if largest and local.size > largest:  # refused unread: never sent, never hashed
                    skipped[name] = (f"larger than the squad's limit ({local.size} bytes, at "
                                     f"most {largest})")
                    del wanted[name]
            # what was removed goes first: it frees places for what is new in this same run
            for name in stored.keys() | refused.keys():  # a refusal goes with its file
                if name not in wanted:
                    response = await self.client.call("DELETE", f"me/files/{quote(name)}")
                    if response.status_code == 204:
                        state.deleted += 1
                        stored.pop(name, None)
            full = False  # a limit per athlete was met: nothing new goes in this run
            for name, local in wanted.items():
                digest = await asyncio.to_thread(self._digest, local)
                if stored.get(name) == digest:
                    continue
                if name in refused and refused[name]["sha256"] == digest:
                    skipped[name] = refused[name]["reason"]  # refused as it is: not again
                    continue
                if name not in stored and (full or (most and len(stored) >= most)):
                    # the service would refuse it (429) after reading the whole body: every
                    # interval, a recording sent for nothing. A changed file it holds still goes
                    skipped[name] = LIMIT_REACHED if full else (
                        f"{name}: you already share {len(stored)} files, the most the squad "
                        f"keeps ({most}); remove old ones first.")
                    full = True
                    continue
                data = await asyncio.to_thread(local.path.read_bytes)
                response = await self.client.call("PUT", f"me/files/{quote(name)}", content=data)
                if response.status_code == 201:
                    state.sent += 1
                    stored[name] = digest
                elif response.status_code == 429:  # a limit per athlete (files, bytes)
                    skipped[name] = _message(response)
                    full = True
                elif response.status_code == 409:  # sharing was turned off meanwhile
                    break
                else:
                    skipped[name] = _message(response)
            state.skipped = skipped
            state.last_run = time.time()
            return state


_sync: SquadSync | None = None


def current() -> SquadSync | None:
    return _sync


def start(home: Path, io_loop) -> SquadSync | None:
    """Start the loop for this server (once) on the server's own event loop; None when no squad
    service is configured (a server outside SportHub)."""
    global _sync
    if _sync is not None:
        return _sync
    try:
        client = SquadClient()
    except SquadUnavailable:
        return None
    interval = float(os.environ.get("SQUAD_SYNC_INTERVAL_S") or 30)
    sync = _sync = SquadSync(home, client, interval)

    def begin() -> None:
        sync.task = asyncio.ensure_future(sync.run())  # held: a task nobody holds may vanish

    io_loop.add_callback(begin)
    return sync
