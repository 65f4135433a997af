"""A person's data is theirs: every store SportHub keeps about a person, with its export and erase.

GDPR Art. 15, 17, 20 and Russia's 152-FZ: a club must hand a person everything it holds about
them, and delete it on request. :data:`STORES` lists every place a person's name or data lives;
each store knows how to export its part and how to erase it, and a test walks the list (a store
added without both fails it). ``sporthub users export`` / ``erase`` and the admin's page
``/hub/people/<name>`` (``sporthub.hub.people``) run :func:`export_person` and
:func:`erase_person` inside the hub, which reaches everything in every profile: the hub's
database, the spawner (system users, engine volumes, Kubernetes volumes), the ledger and the log.

What is kept after an erase is kept for accounting and says so: the ledger's rows and the audit
log's lines with the name replaced by the pseudonym (``sporthub.pseudonym``), without address or
prompt text. Backups made before the erase still hold the person until they are rotated
(docs/privacy.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import importlib
import inspect
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import tarfile
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import create_engine, delete, event, select, text
from sqlalchemy.engine import make_url

from sporthub import compaction
from sporthub.gateway import retention
from sporthub.gateway.bookkeeping import BATCH_S
from sporthub.hub.profiles import profile_of
from sporthub.pseudonym import Pseudonyms
from sporthub.settings import Settings

FORMATS = ("zip", "tar.gz")
CHAT_SUFFIX = ".chat"


class PrivacyError(Exception):
    """The export or erase cannot go on; the message says why."""


class HubSide(Protocol):
    """What only the hub can do for a person (``sporthub.hub.people`` implements it)."""

    async def account(self) -> dict: ...

    async def stop_server(self) -> bool: ...

    async def delete_account(self) -> list[str]:
        """Delete the account; the database's tables rewritten (sporthub.compaction), and what
        could not be in ``kept`` (a list of sentences), if the side has that attribute."""
        ...

    def server_files(self) -> AsyncIterator[tuple[str, bytes]]: ...


@dataclass
class Person:
    name: str
    settings: Settings
    hub: HubSide
    pseudonyms: Pseudonyms
    # read the home through the person's own running server (a profile whose homes are the
    # cluster's volumes, which the hub cannot mount): the hub's way in every profile
    home_through_server: bool = False

    def __post_init__(self):
        self.home_through_server = self.home_through_server or self.homes == "cluster"

    @property
    def homes(self) -> str:
        """Where the profile keeps people's homes: ``"here"``, ``"volumes"`` or ``"cluster"``."""
        return profile_of(self.settings).HOMES


@dataclass
class Outcome:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


# -- the export archive ---------------------------------------------------------------------


class _Hashing(io.RawIOBase):
    def __init__(self, source: IO[bytes]):
        self.source, self.sha = source, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.source.read(len(buffer))
        buffer[:len(data)] = data
        self.sha.update(data)
        return len(data)


class Archive:
    """A zip (or tar.gz) whose every member's SHA-256 goes into ``SHA256SUMS``."""

    def __init__(self, fileobj: IO[bytes], fmt: str = "zip"):
        if fmt not in FORMATS:
            raise PrivacyError(f"format {fmt!r}: choose {' or '.join(FORMATS)}")
        self.fmt = fmt
        self.sums: dict[str, str] = {}
        self.contents: list[str] = []  # what each part holds, for the README
        if fmt == "zip":
            self.zip = zipfile.ZipFile(fileobj, "w", zipfile.ZIP_DEFLATED)
        else:
            self.tar = tarfile.open(fileobj=fileobj, mode="w:gz")  # noqa: SIM115 (closed in close)

    def add(self, arcname: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.add_stream(arcname, io.BytesIO(raw), len(raw))

    def add_stream(self, arcname: str, source: IO[bytes], size: int) -> None:
        hashing = _Hashing(source)
        if self.fmt == "zip":
            info = zipfile.ZipInfo(arcname, datetime.now(UTC).timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            with self.zip.open(info, "w", force_zip64=True) as out:
                shutil.copyfileobj(hashing, out)
        else:
            info = tarfile.TarInfo(arcname)
            info.size, info.mode = size, 0o600
            info.mtime = int(datetime.now(UTC).timestamp())
            self.tar.addfile(info, io.BufferedReader(hashing))
        self.sums[arcname] = hashing.sha.hexdigest()

    def close(self, readme: str) -> None:
        self.add("README.txt", readme)
        self.add("SHA256SUMS", "".join(f"{digest}  {name}\n"
                                       for name, digest in self.sums.items()))
        (self.zip if self.fmt == "zip" else self.tar).close()


# -- homes: the local profile's folders, the docker profile's volumes -----------------------


def local_home(person: Person) -> Path | None:
    """The person's home folder in the local profile (a system user's, or ``<data>/users``)."""
    from sporthub import backup

    if backup.system_users_own_homes():
        import pwd

        try:
            home = Path(pwd.getpwnam(system_user(person)).pw_dir)
        except KeyError:
            return None
    else:
        home = backup.homes_dir(person.settings) / person.name
    return home if home.is_dir() and not home.is_symlink() else None


def system_user(person: Person) -> str:
    from sporthub.hub import localusers

    return localusers.system_username(person.name, person.settings.local_user_prefix)


def _walk_local(home: Path) -> Iterator[tuple[str, int, IO[bytes]]]:
    """Each regular file under ``home``, by descriptor, never through a link (as backup does)."""
    top = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for folder, _dirs, files, fd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            for name in sorted(files):
                try:
                    f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
                except OSError:
                    continue
                with os.fdopen(f, "rb") as handle:
                    st = os.fstat(f)
                    if stat.S_ISREG(st.st_mode):
                        yield os.path.normpath(f"{folder}/{name}"), st.st_size, handle
    finally:
        os.close(top)


def _walk_volume(person: Person) -> Iterator[tuple[str, int, IO[bytes]]]:
    """Each regular file of the person's home volume, streamed through the engine's API."""
    from sporthub import backup

    volumes = backup.Volumes(person.settings)
    name = volumes.volume(person.name)
    try:
        volumes.client.volumes.get(name)
    except volumes.errors.NotFound:
        return
    with volumes.mounted(name, read_only=True) as helper:
        chunks, _ = helper.get_archive(backup.MOUNT)
        reader = backup._ChunkReader(chunks)
        with tarfile.open(fileobj=reader, mode="r|") as inner:
            for member in inner:
                if member.isreg():
                    rest = member.name.split("/", 1)[1] if "/" in member.name else ""
                    yield rest, member.size, inner.extractfile(member)
        reader.drain()


def home_files(person: Person) -> Iterator[tuple[str, int, IO[bytes]]]:
    if person.homes == "here":
        home = local_home(person)
        if home is not None:
            yield from _walk_local(home)
    elif person.homes == "volumes":
        yield from _walk_volume(person)
    # "cluster": the hub cannot mount the volume; see _export_home


def _processes_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        pids.append(int(entry.name))
                    break
    return pids


def _remove_system_user(person: Person) -> list[str]:
    import pwd

    name = system_user(person)
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        return []
    if user.pw_uid < 1000:
        raise PrivacyError(f"system user {name} is a system account; not removed")
    # the stopped server's kernels and terminals, if any outlived it: userdel refuses otherwise
    for pid in _processes_of(user.pw_uid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    result = subprocess.run(["userdel", "--remove", name], capture_output=True, text=True,
                            check=False)
    if Path(user.pw_dir).exists():
        shutil.rmtree(user.pw_dir, ignore_errors=True)
    if result.returncode not in (0, 12):  # 12: the home could not be removed (done above)
        raise PrivacyError(f"userdel {name} failed: {result.stderr.strip()}")
    return [f"system user {name} and its home {user.pw_dir}"]


def _remove_volume(person: Person) -> list[str]:
    from sporthub import backup

    volumes = backup.Volumes(person.settings)
    removed = []
    container = volumes.spawners.container_name(person.settings.docker_name_prefix, person.name)
    with contextlib.suppress(volumes.errors.NotFound):
        volumes.client.containers.get(container).remove(force=True)
        removed.append(f"container {container}")
    name = volumes.volume(person.name)
    with contextlib.suppress(volumes.errors.NotFound):
        volumes.client.volumes.get(name).remove(force=True)
        removed.append(f"home volume {name}")
    return removed


# -- the stores -----------------------------------------------------------------------------


async def _export_home(person: Person, archive: Archive) -> None:
    if person.home_through_server:
        count = 0
        async for path, data in person.hub.server_files():
            archive.add(f"home/{path}", data)
            count += 1
        archive.contents.append(f"home/: the {count} files of the home folder, read through "
                                "the person's server (hidden files, whose names start with a "
                                "dot, are not included)")
        return

    def copy() -> int:
        count = 0
        for path, size, source in home_files(person):
            archive.add_stream(f"home/{path}", source, size)
            count += 1
        return count

    count = await asyncio.to_thread(copy)
    archive.contents.append(f"home/: the {count} files of the home folder, as they are")


async def _erase_home(person: Person) -> Outcome:
    if person.homes == "cluster":
        # KubeSpawner.delete_forever deletes the claim when the hub deletes the account
        return Outcome(kept=[("the home volume (PVC): KubeSpawner deletes it with the account "
                              "when delete_pvc is on (the chart's default)")])
    if person.homes == "volumes":
        return Outcome(removed=await asyncio.to_thread(_remove_volume, person))
    from sporthub import backup

    if backup.system_users_own_homes():
        return Outcome(removed=await asyncio.to_thread(_remove_system_user, person))
    home = local_home(person)
    if home is None:
        return Outcome()
    await asyncio.to_thread(shutil.rmtree, home)
    return Outcome(removed=[f"home folder {home}"])


async def _export_chats(person: Person, archive: Archive) -> None:
    if person.home_through_server:
        count = 0
        async for path, data in person.hub.server_files():
            if path.endswith(CHAT_SUFFIX):
                archive.add(f"chats/{path}", data)
                count += 1
        archive.contents.append(f"chats/: {count} chats with the Coach and Jupyternaut (JSON, "
                                "also inside home/)")
        return

    def copy() -> int:
        count = 0
        for path, size, source in home_files(person):
            if path.endswith(CHAT_SUFFIX):
                archive.add_stream(f"chats/{path}", source, size)
                count += 1
        return count

    count = await asyncio.to_thread(copy)
    archive.contents.append(f"chats/: {count} chats with the Coach and Jupyternaut (JSON, "
                            "also inside home/)")


async def _erase_chats(person: Person) -> Outcome:
    # they live in the home, and go with it (the next store); counted here, so the report
    # names them
    def count() -> int:
        return sum(1 for path, _, _ in home_files(person) if path.endswith(CHAT_SUFFIX))

    if person.homes == "cluster":
        return Outcome(kept=["chats: in the home volume (see home)"])
    n = await asyncio.to_thread(count)
    return Outcome(removed=[f"{n} chats (with the home)"] if n else [])


def _squad():
    """The squad service's own export and erase (issue 20), if it is installed."""
    try:
        module = importlib.import_module("sporthub.squad")
    except ImportError:
        return None
    export, erase = getattr(module, "export_person", None), getattr(module, "erase_person", None)
    return (export, erase) if callable(export) and callable(erase) else None


async def _maybe_await(value):
    return await value if asyncio.iscoroutine(value) else value


def _squad_kwargs(function, person: Person) -> dict:
    """What of (settings, pseudonym) the squad's function takes: it has its own database and
    folder, found from the settings; its kept rows may carry the same pseudonym as ours."""
    parameters = inspect.signature(function).parameters
    kwargs = {}
    if "settings" in parameters:
        kwargs["settings"] = person.settings
    if "pseudonym" in parameters:
        kwargs["pseudonym"] = person.pseudonyms(person.name)
    return kwargs


async def _export_squad(person: Person, archive: Archive) -> None:
    squad = _squad()
    if squad is None:
        archive.contents.append("squad/: none (no squad service in this installation)")
        return
    export = squad[0]
    items = await _maybe_await(export(person.name, **_squad_kwargs(export, person))) or {}
    items = items.items() if isinstance(items, dict) else items
    count = 0
    for path, data in items:
        path = path if path.startswith("squad/") else f"squad/{path}"
        archive.add(path, data if isinstance(data, (bytes, str))
                    else json.dumps(data, indent=2, default=str))
        count += 1
    archive.contents.append(f"squad/: {count} items the squad service holds (shared copies, "
                            "consent record, read log)")


async def _erase_squad(person: Person) -> Outcome:
    squad = _squad()
    if squad is None:
        return Outcome()
    erase = squad[1]
    result = await _maybe_await(erase(person.name, **_squad_kwargs(erase, person)))
    # its SQLite file, or its tables on PostgreSQL, rewritten: no removed row's bytes stay
    missed = await asyncio.to_thread(compaction.compact, person.settings.squad_db_url,
                                     _squad_tables())
    if isinstance(result, Outcome):
        outcome = result
    elif isinstance(result, dict):
        outcome = Outcome(removed=[str(x) for x in result.get("removed", [])],
                          kept=[str(x) for x in result.get("kept", [])])
    else:
        outcome = Outcome(removed=["the squad service's shared copies, summaries and consent"],
                          kept=["the squad's consent history and read log, without the person"])
    outcome.kept += compaction.missed_note("squad", missed)
    return outcome


def _squad_tables() -> list[str]:
    from sporthub.squad.store import Base

    return [table.name for table in Base.metadata.sorted_tables]


def _ledger_engine(person: Person):
    """The ledger, or None where the gateway never ran (a SQLite file that does not exist:
    connecting would create it)."""
    url = person.settings.ledger_url
    if url.startswith("sqlite") and not Path(make_url(url).database).exists():
        return None
    return retention.ledger_engine(url)


async def _export_ledger(person: Person, archive: Archive) -> None:
    def rows() -> list[dict]:
        engine = _ledger_engine(person)
        if engine is None:
            return []
        try:
            return retention.ledger_rows_of(engine, person.name)
        finally:
            engine.dispose()

    found = await asyncio.to_thread(rows)
    out = io.StringIO()
    if found:
        writer = csv.DictWriter(out, fieldnames=list(found[0]))
        writer.writeheader()
        writer.writerows(found)
    archive.add("ledger.csv", out.getvalue())
    archive.contents.append(f"ledger.csv: {len(found)} requests to the language model (time, "
                            "tokens, wait, outcome; no prompt text)")


async def _erase_ledger(person: Person) -> Outcome:
    def run() -> int:
        engine = _ledger_engine(person)
        if engine is None:
            return 0
        try:
            return retention.pseudonymise_ledger(engine, person.name, person.pseudonyms)
        finally:
            engine.dispose()

    # The gateway commits a finished request's row up to BATCH_S after its answer (bookkeeping.py):
    # the requests that ended when the server stopped may land after the first pass
    count = await asyncio.to_thread(run)
    await _wait_for_pending_rows()
    count += await asyncio.to_thread(run)
    return Outcome(kept=[(f"{count} ledger rows, for accounting, as "
                          f"{person.pseudonyms(person.name)} without address")] if count else [])


async def _wait_for_pending_rows() -> None:
    await asyncio.sleep(2 * BATCH_S + 1.0)


async def _export_audit(person: Person, archive: Archive) -> None:
    lines = await asyncio.to_thread(retention.audit_lines_of, person.settings.audit_log_path,
                                    person.name)
    archive.add("audit.jsonl", "".join(line + "\n" for line in lines))
    archive.contents.append(f"audit.jsonl: {len(lines)} lines of the gateway's audit log (and "
                            "prompt texts if the installation records them)")


async def _erase_audit(person: Person) -> Outcome:
    count = await asyncio.to_thread(retention.pseudonymise_audit, person.settings.audit_log_path,
                                    person.name, person.pseudonyms)
    return Outcome(kept=[(f"{count} audit lines, as {person.pseudonyms(person.name)} without "
                          "address or prompt text")] if count else [])


async def _export_metrics(person: Person, archive: Archive) -> None:
    archive.contents.append("metrics: none. The gateway's Prometheus series count tokens per "
                            f"pseudonym ({person.pseudonyms(person.name)}), never per name")


async def _erase_metrics(person: Person) -> Outcome:
    return Outcome(kept=[("Prometheus series under the pseudonym (no name); they age out with "
                          "Prometheus' retention (PROMETHEUS_RETENTION)")])


async def _export_logs(person: Person, archive: Archive) -> None:
    archive.contents.append("logs: not included. The hub's and services' logs (sign-ins, "
                            "server starts) go to the service manager (journald, the container "
                            "engine), which rotates them (docs/privacy.md)")


async def _erase_logs(person: Person) -> Outcome:
    return Outcome(kept=[("log lines naming the person in the service manager's logs (journald, "
                          "container logs) until they are rotated")])


def _sqlite_secure(engine) -> None:
    @event.listens_for(engine, "connect")
    def _secure(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA secure_delete = ON")


def _vacuum_sqlite(url: str) -> None:
    """Free pages out of a SQLite file: what was deleted leaves no bytes behind."""
    if not url.startswith("sqlite"):
        return
    path = Path(make_url(url).database)
    if not path.exists():
        return
    engine = create_engine(url, connect_args={"timeout": 30})
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))
    finally:
        engine.dispose()


def _accounts_engine(person: Person):
    path = person.settings.data_dir / "accounts.sqlite"
    if not path.exists():
        return None
    engine = create_engine(person.settings.accounts_url, connect_args={"timeout": 30})
    _sqlite_secure(engine)
    return engine


async def _export_accounts(person: Person, archive: Archive) -> None:
    from sporthub.hub.accounts import AccountRow, FailureRow

    def read() -> dict:
        engine = _accounts_engine(person)
        if engine is None:
            return {}
        try:
            with engine.connect() as conn:
                row = conn.execute(select(AccountRow).where(
                    AccountRow.username == person.name)).mappings().first()
                failures = conn.execute(select(FailureRow.address, FailureRow.failures,
                                               FailureRow.last_failure).where(
                    FailureRow.username == person.name)).mappings().all()
        finally:
            engine.dispose()
        if row is None and not failures:
            return {}
        return {
            # never the hash: whether a password is set is what the person may know
            "password_set": bool(row and row["password_hash"]),
            "invite_link_expires": row and row["invite_expires"],
            "failed_sign_ins_since_last_success": row["failures"] if row else 0,
            "recent_failed_sign_ins": [dict(f) for f in failures],
        }

    data = await asyncio.to_thread(read)
    archive.add("sign-in.json", json.dumps(data, indent=2, default=str))
    archive.contents.append("sign-in.json: whether a password is set, a pending invite's expiry, "
                            "recent failed sign-ins and their addresses (never the password "
                            "hash or a link token)")


async def _erase_accounts(person: Person) -> Outcome:
    from sporthub.hub.accounts import AccountRow, FailureRow

    def run() -> int:
        engine = _accounts_engine(person)
        if engine is None:
            return 0
        try:
            with engine.begin() as conn:
                count = conn.execute(delete(AccountRow).where(
                    AccountRow.username == person.name)).rowcount
                count += conn.execute(delete(FailureRow).where(
                    FailureRow.username == person.name)).rowcount
        finally:
            engine.dispose()
        _vacuum_sqlite(person.settings.accounts_url)
        return count

    count = await asyncio.to_thread(run)
    return Outcome(removed=[(f"password, invite link and failed sign-ins ({count} rows of "
                             "accounts.sqlite)")] if count else [])


async def _export_hub(person: Person, archive: Archive) -> None:
    account = await person.hub.account()
    archive.add("account.json", json.dumps(account, indent=2, default=str))
    archive.contents.append("account.json: name, groups, admin or not, created, last activity "
                            "(never a token)")


async def _erase_hub(person: Person) -> Outcome:
    removed = await person.hub.delete_account()
    await asyncio.to_thread(_vacuum_sqlite, person.settings.hub_database_url)
    return Outcome(removed=removed, kept=list(getattr(person.hub, "kept", None) or []))


@dataclass(frozen=True)
class Store:
    name: str
    where: str
    export: Callable[[Person, Archive], Awaitable[None]]
    erase: Callable[[Person], Awaitable[Outcome]]


# in the order of an erase: what is found through the account (its home) before the account
STORES: tuple[Store, ...] = (
    Store("squad", "the squad service: shared copies, summaries, consent record, read log",
          _export_squad, _erase_squad),
    Store("chats", "chats with the Coach (.chat files in the home)", _export_chats, _erase_chats),
    Store("home", "the home: local system user or <data>/users/<name>, docker volume, k8s PVC",
          _export_home, _erase_home),
    Store("ledger", "the gateway's ledger (gateway.sqlite or PostgreSQL): one row per request",
          _export_ledger, _erase_ledger),
    Store("audit", "the gateway's audit log (<data>/gateway-audit.jsonl and its rotations)",
          _export_audit, _erase_audit),
    Store("metrics", "Prometheus series of the gateway (tokens per pseudonym)",
          _export_metrics, _erase_metrics),
    Store("logs", "the hub's and services' logs (service manager)", _export_logs, _erase_logs),
    Store("accounts", "<data>/accounts.sqlite: password hash, invite, failed sign-ins",
          _export_accounts, _erase_accounts),
    Store("hub", "the hub's database (jupyterhub.sqlite or PostgreSQL): account, groups, tokens",
          _export_hub, _erase_hub),
)


README = """\
SportHub: everything this installation holds about {name}
(Всё, что эта установка SportHub хранит о пользователе {name})

Made {made} on request (GDPR Art. 15 and 20; 152-FZ art. 14). Every file's
SHA-256 is in SHA256SUMS (check with: sha256sum -c SHA256SUMS).
Создано {made} по запросу. Контрольные суммы SHA-256 всех файлов: SHA256SUMS.

What is inside (что внутри):
{contents}

Nothing of another person and no password hash, token or key is in this archive.
В архиве нет данных других людей, хэшей паролей, токенов и ключей.
"""


async def export_person(person: Person, fileobj: IO[bytes], fmt: str = "zip") -> list[str]:
    """Write the person's archive to ``fileobj``; returns what it holds (the README's lines)."""
    archive = Archive(fileobj, fmt)
    for store in reversed(STORES):  # the account first, as a reader expects
        await store.export(person, archive)
    archive.close(README.format(name=person.name, made=datetime.now(UTC).isoformat(timespec="seconds"),
                                contents="\n".join(f"- {line}" for line in archive.contents)))
    return archive.contents


async def erase_person(person: Person) -> Outcome:
    """Stop the person's server, then erase every store; returns what went and what stayed."""
    outcome = Outcome()
    if await person.hub.stop_server():
        outcome.removed.append("running server (stopped)")
    for store in STORES:
        done = await store.erase(person)
        outcome.removed += done.removed
        outcome.kept += done.kept
    return outcome
