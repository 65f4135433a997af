"""The squad service's HTTP API, under ``/services/squad/api/`` (JSON; CSV with ``?format=csv``).

Callers send their own hub token (``Authorization: token ...``) holding ``custom:squad:use``.

Staff (sporthub.squad.access) read the athletes who share and whom they may see:
``GET athletes``, ``GET athletes/<name>/sessions``, ``.../wellness``, ``.../files/<file>``. Every
such read is logged and shown to the athlete. An athlete who does not share, or whom this reader
may not see, is 404: the answer does not say whether the account exists.

An athlete writes only their own data: ``GET me``, ``PUT me/consent`` ``{"share": true|false}``,
``PUT``/``DELETE me/files/<file>`` (their server's sync; ``athletes/<own name>/files/<file>`` is
the same). A hub admin records a minor's guardian's consent: ``PUT athletes/<name>/guardian``
``{"guardian": "who"}`` (``null`` withdraws it).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import logging
import os
import tempfile
import warnings
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from sporthub.api_error import ApiError
from sporthub.forwarded import client_ip
from sporthub.service_auth import SQUAD_SCOPE, Caller, HubTokenCheck
from sporthub.settings import Settings
from sporthub.squad.access import Directory
from sporthub.squad.store import (
    ARCHIVE_SUFFIX,
    LOG_FILE,
    PROFILE_FILE,
    RECORDING_SUFFIXES,
    BadFile,
    Store,
    check_file_name,
    migrate,
)

log = logging.getLogger("sporthub.squad")


class SquadError(ApiError):
    """The services' (and the gateway's) error shape: ``{"error": {"message", "type", "param",
    "code"}}``."""


def _csv(rows: list[dict]) -> Response:
    """Nested values (zones, best efforts, thresholds) as JSON text in their cell."""
    out = io.StringIO()
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v
                         for k, v in row.items()})
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")


def _table(request: Request, rows: list[dict]) -> Response:
    return _csv(rows) if request.query_params.get("format") == "csv" else JSONResponse(rows)


def archive_limits(settings: Settings):
    """An archive expands to no more than the service would take as plain files: a recording
    of at most the largest file, in all at most an athlete's total, at most their file count
    (and sportlab's own ratio against bombs)."""
    from sportlab.archives import ArchiveLimits

    return ArchiveLimits(max_member_bytes=settings.squad_max_file_bytes,
                         max_total_bytes=settings.squad_max_total_bytes,
                         max_members=settings.squad_max_files)


def read_recording(path: Path, name: str, limits=None,
                   profile=None) -> tuple[list[dict], list[str]]:
    """sportlab's session rows of a recording (one), or of the recordings in a .zip (one
    each, ``file`` = ``<name>/<member>``), and what was left out of an archive; a file
    sportlab cannot read, or an archive past ``limits``, raises BadFile. ``profile``: the
    athlete's thresholds (sportlab's Profile), or None for sportlab's estimates."""
    import sportlab
    from sportlab.archives import DEFAULT_LIMITS, ArchiveLimitError, iter_archive

    limits = limits or DEFAULT_LIMITS
    if path.stat().st_size == 0:
        raise BadFile(f"{name}: the file is empty (0 bytes)")
    try:
        if not name.lower().endswith(ARCHIVE_SUFFIX):
            frame = sportlab.read_activity(path, limits=limits)
            return [sportlab.summarize_session(frame, profile, name=name).to_dict()], []
        rows, problems = [], []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # one recording in memory at a time: an export may hold a season
            for member, frame in iter_archive(path, limits=limits, on_error="skip"):
                label = f"{name}/{member}"
                if len(label) > 255:
                    problems.append(f"{member} left out: its name is too long")
                    continue
                rows.append(sportlab.summarize_session(frame, profile, name=label).to_dict())
        # sportlab names each member it left out and why: "<archive>: <member> left out: ..."
        problems += [str(w.message).split(": ", 1)[-1] for w in caught
                     if " left out: " in str(w.message)]
        if not rows:
            raise BadFile(f"{name}: no readable FIT, GPX or TCX recording in the archive"
                          + (f" ({'; '.join(problems)})" if problems else ""))
        return rows, problems
    except ArchiveLimitError as e:
        raise BadFile(f"{name}: {e.problem} (the squad's limits: nothing in an archive larger "
                      "than it would take as a plain file)") from None
    except sportlab.ActivityReadError as e:
        raise BadFile(f"{name}: not a readable recording ({e.problem})") from None
    except (ValueError, IndexError, KeyError, EOFError, OSError) as e:
        raise BadFile(f"{name}: not a readable recording ({type(e).__name__}: {e})") from None


def read_profile(path: Path):
    """The athlete's thresholds as sportlab reads them; an unusable file raises BadFile naming
    the key and the problem (sportlab's AthleteDataError)."""
    from sportlab.athlete import AthleteDataError
    from sportlab.athlete import read_profile as read

    try:
        return read(path)
    except AthleteDataError as e:  # the key, or for a file that is not TOML the (staged) file
        where = "" if e.key == Path(path).name else f"{e.key}: "
        raise BadFile(f"{PROFILE_FILE}: {where}{e.problem}") from None


def read_wellness(path: Path) -> tuple[list[dict], list[str]]:
    """The log's lines as sportlab's ``read_log`` reads them (its columns, never ours)."""
    import math

    from sportlab.athlete import read_log

    log_ = read_log(path)
    rows = []
    for record in log_.frame.to_dict(orient="records"):
        row = {}
        for key, value in record.items():
            if hasattr(value, "date") and key == "date":
                row[key] = value.date().isoformat()
            elif isinstance(value, float) and math.isnan(value):
                row[key] = None
            else:
                row[key] = value
        rows.append(row)
    return rows, list(log_.problems)


class Squad:
    def __init__(self, settings: Settings, hub_api_url: str, hub_api_token: str):
        self.settings = settings
        self.auth = HubTokenCheck(hub_api_url, hub_api_token, settings.gateway_auth_cache_s)
        self.directory = Directory(hub_api_url, hub_api_token, settings.gateway_auth_cache_s)
        self.store = Store(settings.squad_db_url, settings.squad_store_dir)
        self.staging = settings.squad_store_dir / ".staging"
        self.staging.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in self.staging.iterdir():  # a crash mid-upload: never half-stored
            leftover.unlink(missing_ok=True)
        # one summarise-and-store at a time per athlete (one process serves the squad): a
        # recording is summarised with the profile stored when it is stored, and a new
        # profile re-summarises every recording stored before it
        self._writing: dict[str, asyncio.Lock] = {}

    def writing(self, athlete: str) -> asyncio.Lock:
        return self._writing.setdefault(athlete, asyncio.Lock())

    def stored_profile(self, athlete: str) -> tuple[object | None, list[str]]:
        """The athlete's stored thresholds (None: no profile.toml shared) and, should the stored
        file no longer read (a newer sportlab's ranges), the named problem; rows then take
        sportlab's estimates rather than failing."""
        path = self.store.file_path(athlete, PROFILE_FILE)
        if path is None or not path.is_file():
            return None, []
        try:
            return read_profile(path), []
        except BadFile as e:
            log.warning("%s: the stored %s is not used: %s", athlete, PROFILE_FILE, e)
            return None, [f"{e} (not used: thresholds are estimated)"]

    def resummarise(self, athlete: str, profile) -> tuple[dict[str, list[dict]], list[str]]:
        """Every stored recording's rows summarised with ``profile`` (None: without one)."""
        rows, problems = {}, []
        for item in self.store.files(athlete):
            name = item["name"]
            if not name.lower().endswith(RECORDING_SUFFIXES):
                continue
            try:
                rows[name], _ = read_recording(self.store.folder(athlete) / name, name,
                                               archive_limits(self.settings), profile)
            except BadFile as e:  # it was read when stored: keep its rows, say why
                log.warning("%s: %s not re-summarised: %s", athlete, name, e)
                problems.append(f"{name} kept its earlier summary: {e}")
        return rows, problems

    # -- who ----------------------------------------------------------------------------------

    async def caller(self, request: Request) -> Caller:
        return await self.auth.caller(request, SQUAD_SCOPE,
                                      "the squad is for the club's athletes and staff.")

    def address(self, request: Request) -> str | None:
        # the hub's and the gateway's rule (sporthub.forwarded): on loopback only the proxy's
        # own connection may name the client, so a person's process cannot write another
        # address into the consent record
        return client_ip(request, self.settings.trusted_proxies, self.settings.forwarded_hops)

    async def staff(self, request: Request) -> Caller:
        caller = await self.caller(request)
        if await self.directory.staff_kind(caller.name) is None:
            raise SquadError(403, "Only the club's staff read the squad (a group with the "
                             "property squad_read, set by the admin).", "not_staff")
        return caller

    async def readable(self, request: Request, what: str) -> tuple[Caller, str]:
        """The staff caller and the athlete named in the path, after the checks; the read is
        logged before anything is answered."""
        caller = await self.staff(request)
        athlete = request.path_params["name"]
        if not self.store.sharing(athlete) or not await self.directory.may_read(
                caller.name, athlete):
            raise SquadError(404, f"No athlete {athlete!r} shares training data with you.",
                             "not_shared")
        await asyncio.to_thread(self.store.log_read, caller.name, athlete, what,
                                self.address(request))
        return caller, athlete

    # -- staff ----------------------------------------------------------------------------------

    async def athletes(self, request: Request) -> Response:
        caller = await self.staff(request)
        rows = []
        address = self.address(request)
        for consent in await asyncio.to_thread(self.store.sharing_athletes):
            if not await self.directory.may_read(caller.name, consent.athlete):
                continue
            counts = await asyncio.to_thread(self.store.counts, consent.athlete)
            last = consent.last_sync
            rows.append({"name": consent.athlete,
                         "last_sync": last.isoformat() if last else None, **counts})
            await asyncio.to_thread(self.store.log_read, caller.name, consent.athlete,
                                    "athletes list", address)
        return _table(request, rows)

    async def sessions(self, request: Request) -> Response:
        _, athlete = await self.readable(request, "sessions")
        return _table(request, await asyncio.to_thread(self.store.sessions, athlete))

    async def wellness(self, request: Request) -> Response:
        _, athlete = await self.readable(request, "wellness")
        return _table(request, await asyncio.to_thread(self.store.wellness, athlete))

    async def file(self, request: Request) -> Response:
        name = request.path_params["file"]
        _, athlete = await self.readable(request, f"file {name}")
        path = self.store.file_path(athlete, name)
        if path is None or not path.is_file():
            raise SquadError(404, f"{athlete} has no shared file {name!r}.", "no_such_file")
        return FileResponse(path, media_type="application/octet-stream", filename=name)

    async def guardian(self, request: Request) -> Response:
        caller = await self.caller(request)
        if not caller.admin:
            raise SquadError(403, "Only a hub admin records a guardian's consent.", "not_admin")
        body = await self._json(request)
        guardian = body.get("guardian")
        if guardian is not None and (not isinstance(guardian, str) or not guardian.strip()
                                     or len(guardian) > 200):
            raise SquadError(400, "'guardian' names who gave consent (text, up to 200 "
                             "characters), or null to withdraw it.", "invalid_guardian",
                             param="guardian")
        athlete = request.path_params["name"]
        await asyncio.to_thread(self.store.set_guardian, athlete,
                                guardian.strip() if guardian else None, caller.name,
                                self.address(request))
        return JSONResponse(await self._me(athlete))

    # -- the athlete ----------------------------------------------------------------------------

    async def _me(self, athlete: str) -> dict:
        consent = await asyncio.to_thread(self.store.consent, athlete)
        files = await asyncio.to_thread(self.store.files, athlete)
        counts = await asyncio.to_thread(self.store.counts, athlete)
        return {
            "name": athlete,
            "sharing": bool(consent and consent.share),
            "minor": await self.directory.is_minor(athlete),
            "guardian": {"name": consent.guardian, "recorded_at": consent.guardian_at.isoformat()
                         if consent.guardian_at else None} if consent and consent.guardian
            else None,
            "last_sync": consent.last_sync.isoformat() if consent and consent.last_sync else None,
            "stored": {"files": files, "sessions": counts["sessions"],
                       "wellness_days": counts["wellness_days"]},
            # files the service would not store, the content it saw (SHA-256) and why
            "refused": await asyncio.to_thread(self.store.refused, athlete),
            "reads": await asyncio.to_thread(self.store.reads_of, athlete),
            "consent_record": await asyncio.to_thread(self.store.consent_events, athlete),
            # the sync checks sizes against these before reading a file at all
            "limits": {"file_bytes": self.settings.squad_max_file_bytes,
                       "files": self.settings.squad_max_files,
                       "total_bytes": self.settings.squad_max_total_bytes},
        }

    async def me(self, request: Request) -> Response:
        caller = await self.caller(request)
        return JSONResponse(await self._me(caller.name))

    async def consent(self, request: Request) -> Response:
        caller = await self.caller(request)
        share = (await self._json(request)).get("share")
        if not isinstance(share, bool):
            raise SquadError(400, "Send {\"share\": true} or {\"share\": false}.",
                             "invalid_share", param="share")
        if share and await self.directory.is_minor(caller.name):
            consent = await asyncio.to_thread(self.store.consent, caller.name)
            if consent is None or not consent.guardian:
                raise SquadError(403, "You are registered as a minor: sharing needs your "
                                 "guardian's consent, which the club's admin records first.",
                                 "guardian_consent_needed")
        await asyncio.to_thread(self.store.set_share, caller.name, share, caller.name,
                                self.address(request))
        log.info("%s turned sharing %s", caller.name, "on" if share else "off")
        return JSONResponse(await self._me(caller.name))

    async def writer(self, request: Request) -> tuple[Caller, str]:
        caller = await self.caller(request)
        athlete = request.path_params.get("name", caller.name)
        if athlete != caller.name:
            raise SquadError(403, "You can only write your own training data.", "not_yours")
        try:
            name = check_file_name(request.path_params["file"])
        except BadFile as e:
            raise SquadError(400, str(e), "bad_file_name", param="file") from None
        if not self.store.sharing(athlete):
            raise SquadError(409, "Sharing is off: nothing is stored. Turn it on first.",
                             "not_sharing")
        return caller, name

    async def put_file(self, request: Request) -> Response:
        caller, name = await self.writer(request)
        s = self.settings
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > s.squad_max_file_bytes:
            raise self._too_large(name)
        usage = await asyncio.to_thread(self.store.usage, caller.name, name)
        if usage.files + 1 > s.squad_max_files:
            raise SquadError(429, f"{name}: you already share {usage.files} files, the most "
                             f"the squad keeps ({s.squad_max_files}); remove old ones first.",
                             "too_many_files")
        # the staged copy keeps the name's suffixes: sportlab reads a ride.fit.gz by them
        suffix = "".join(Path(name).suffixes[-2:] if name.lower().endswith(".gz")
                         else Path(name).suffixes[-1:]).lower()
        handle, staged_name = tempfile.mkstemp(dir=self.staging, suffix=suffix)
        staged = Path(staged_name)
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(handle, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > s.squad_max_file_bytes:
                        raise self._too_large(name)
                    digest.update(chunk)
                    out.write(chunk)
            if usage.bytes + size > s.squad_max_total_bytes:
                raise SquadError(429, f"{name}: storing it would take your shared files past "
                                 f"{s.squad_max_total_bytes} bytes, the most the squad keeps "
                                 "per athlete; remove old ones first.", "too_much_data")
            async with self.writing(caller.name):
                problems = await self._store(caller.name, name, staged, digest.hexdigest(),
                                             size)
        finally:
            staged.unlink(missing_ok=True)
        return JSONResponse({"name": name, "sha256": digest.hexdigest(), "size": size,
                             "problems": problems}, status_code=201)

    async def _store(self, athlete: str, name: str, staged: Path, sha256: str,
                     size: int) -> list[str]:
        """Read a staged file as what it is, store it with its rows; the problems noted."""
        sessions, wellness, resummarised, problems = None, None, None, []
        try:
            if name == LOG_FILE:
                wellness, problems = await asyncio.to_thread(read_wellness, staged)
            elif name == PROFILE_FILE:
                profile = await asyncio.to_thread(read_profile, staged)
                resummarised, problems = await asyncio.to_thread(
                    self.resummarise, athlete, profile)
            else:
                profile, problems = await asyncio.to_thread(self.stored_profile, athlete)
                rows, more = await asyncio.to_thread(
                    read_recording, staged, name, archive_limits(self.settings), profile)
                sessions, problems = rows, problems + more
        except ValueError as e:  # BadFile; sportlab's AthleteDataError: a log it cannot read
            reason = str(e) if isinstance(e, BadFile) else f"{name}: {e}"
            code = "invalid_profile" if name == PROFILE_FILE else "unreadable_file"
            # noted with its content's hash: the athlete's server does not send this content
            # again, so it is refused (and logged) once per change of the file
            if await asyncio.to_thread(self.store.refuse, athlete, name, sha256,
                                       reason.removeprefix(f"{name}: "),
                                       self.settings.squad_max_files):
                log.info("%s: %s refused: %s", athlete, name, reason)
            raise SquadError(422, reason, code, param="file") from None
        try:
            await asyncio.to_thread(self.store.put_file, athlete, name, staged, sha256, size,
                                    sessions, wellness, resummarised)
        except PermissionError:
            raise SquadError(409, "Sharing was turned off: nothing is stored.",
                             "not_sharing") from None
        return problems

    def _too_large(self, name: str) -> SquadError:
        return SquadError(413, f"{name} is larger than {self.settings.squad_max_file_bytes} "
                          "bytes, the largest file the squad stores.", "file_too_large")

    async def delete_file(self, request: Request) -> Response:
        caller = await self.caller(request)
        athlete = request.path_params.get("name", caller.name)
        if athlete != caller.name:
            raise SquadError(403, "You can only write your own training data.", "not_yours")
        name = request.path_params["file"]
        async with self.writing(caller.name):
            resummarised = None
            if name == PROFILE_FILE and self.store.file_path(caller.name, name) is not None:
                # back to sportlab's estimates for every recording, in the same step
                resummarised, _ = await asyncio.to_thread(self.resummarise, caller.name, None)
            if not await asyncio.to_thread(self.store.delete_file, caller.name, name,
                                           resummarised):
                raise SquadError(404, f"No shared file {name!r}.", "no_such_file")
        return Response(status_code=204)

    @staticmethod
    async def _json(request: Request) -> dict:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > 4096:
                raise SquadError(413, "The request body is too large.", "body_too_large")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise SquadError(400, "The body must be JSON.", "invalid_json") from None
        if not isinstance(body, dict):
            raise SquadError(400, "The body must be a JSON object.", "invalid_json")
        return body

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


async def _error(request: Request, exc: ApiError) -> Response:
    return exc.response()


async def _not_found(request: Request, exc: Exception) -> Response:
    return SquadError(404, f"No such endpoint: {request.method} {request.url.path}.",
                      "not_found").response()


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return SquadError(405, f"{request.method} is not allowed on {request.url.path}.",
                      "method_not_allowed").response()


def create_app(settings: Settings, hub_api_url: str | None = None,
               hub_api_token: str | None = None) -> Starlette:
    migrate(settings.squad_db_url)
    squad = Squad(settings, hub_api_url or os.environ["JUPYTERHUB_API_URL"],
                  hub_api_token or os.environ["JUPYTERHUB_API_TOKEN"])

    @asynccontextmanager
    async def lifespan(app):
        yield
        await squad.directory.close()
        squad.store.engine.dispose()

    athlete = "/athletes/{name}"
    routes = [
        Route("/health", squad.health, methods=["GET"]),
        Route("/api/athletes", squad.athletes, methods=["GET"]),
        Route(f"/api{athlete}/sessions", squad.sessions, methods=["GET"]),
        Route(f"/api{athlete}/wellness", squad.wellness, methods=["GET"]),
        Route(f"/api{athlete}/files/{{file}}", squad.file, methods=["GET"]),
        Route(f"/api{athlete}/files/{{file}}", squad.put_file, methods=["PUT"]),
        Route(f"/api{athlete}/files/{{file}}", squad.delete_file, methods=["DELETE"]),
        Route(f"/api{athlete}/guardian", squad.guardian, methods=["PUT"]),
        Route("/api/me", squad.me, methods=["GET"]),
        Route("/api/me/consent", squad.consent, methods=["PUT"]),
        Route("/api/me/files/{file}", squad.put_file, methods=["PUT"]),
        Route("/api/me/files/{file}", squad.delete_file, methods=["DELETE"]),
    ]
    app = Starlette(routes=[Mount(settings.squad_prefix, routes=routes)],
                    exception_handlers={ApiError: _error, 404: _not_found,
                                        405: _method_not_allowed},
                    lifespan=lifespan)
    app.state.squad = squad
    return app
