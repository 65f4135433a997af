"""What the squad service keeps: consent, files, session rows, wellness rows and the read log.

Files live under ``<data_dir>/squad/<athlete>/``; everything else in the database (SQLite by
default, the tables beside the ledger's on ``SPORTHUB_DB_URL``'s server otherwise), with Alembic
migrations of their own (``squad_alembic_version``), so both schemas share one PostgreSQL
database without touching each other.

What the service refused (a file's name, content hash and the reason) goes with the files.
Two kinds of rows outlive sharing: the consent record (every change, its time and address) and
the read log. They say who decided what and who saw what; the privacy helper's erase pseudonymises
them (:func:`Store.erase_person`). Everything else goes at once when sharing is switched off.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

VERSION_TABLE = "squad_alembic_version"
# recordings as devices write them and as people export them (sportlab reads each): gzip-
# compressed ones (Strava's bulk export) and .zip archives of them (Garmin's, Strava's)
RECORDING_SUFFIXES = (".fit", ".gpx", ".tcx", ".fit.gz", ".gpx.gz", ".tcx.gz", ".zip")
ARCHIVE_SUFFIX = ".zip"
LOG_FILE = "log.csv"
# the athlete's thresholds (sportlab.athlete): every session row is summarised with them
PROFILE_FILE = "profile.toml"
# a plain name in one folder: no path, no hidden file, no control characters
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. ()+-]{0,199}$")


class Base(DeclarativeBase):
    pass


class Consent(Base):
    """The athlete's current decision (one row each); the history is in ConsentEvent."""

    __tablename__ = "squad_consent"
    athlete: Mapped[str] = mapped_column(String(255), primary_key=True)
    share: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # a minor's guardian's consent, recorded by an admin (who gave it, when it was recorded)
    guardian: Mapped[str | None] = mapped_column(String(255))
    guardian_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sync: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConsentEvent(Base):
    __tablename__ = "squad_consent_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    athlete: Mapped[str] = mapped_column(String(255), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # "share on", "share off", "guardian consent", "guardian consent withdrawn"
    change: Mapped[str] = mapped_column(String(64))
    by: Mapped[str] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(255))


class StoredFile(Base):
    __tablename__ = "squad_files"
    athlete: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionRow(Base):
    """sportlab's ``summarize_session`` row of one recording, as its ``to_dict()`` gives it.

    ``file`` is the stored file's name, or for a recording inside a .zip ``<zip>/<member>``
    (a stored name has no "/", so the rows of one archive are those under ``<zip>/``)."""

    __tablename__ = "squad_sessions"
    athlete: Mapped[str] = mapped_column(String(255), primary_key=True)
    file: Mapped[str] = mapped_column(String(255), primary_key=True)
    row: Mapped[str] = mapped_column(Text)


class WellnessRow(Base):
    """One line of the athlete's ``log.csv`` as sportlab's ``read_log`` reads it."""

    __tablename__ = "squad_wellness"
    athlete: Mapped[str] = mapped_column(String(255), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    row: Mapped[str] = mapped_column(Text)


class RefusedFile(Base):
    """A file the service would not store (its content: 422), and why. The athlete's server
    sends that same content no more (it compares the SHA-256), so a bad file is refused once
    per change, and the reason is there for the athlete to read (``GET me``)."""

    __tablename__ = "squad_refused"
    athlete: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReadEvent(Base):
    __tablename__ = "squad_reads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reader: Mapped[str] = mapped_column(String(255))
    athlete: Mapped[str] = mapped_column(String(255), index=True)
    what: Mapped[str] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(64))


class BadFile(ValueError):
    """A file the service will not store; the message names the reason."""


def check_file_name(name: str) -> str:
    if name in (LOG_FILE, PROFILE_FILE):
        return name
    if not _FILE_NAME.fullmatch(name) or ".." in name:
        raise BadFile(f"{name!r} is not a plain file name")
    if not name.lower().endswith(RECORDING_SUFFIXES):
        raise BadFile(f"{name!r}: only FIT, GPX and TCX recordings (also .gz, or in a .zip) "
                      "log.csv and profile.toml are shared")
    return name


def _rows_of_file(name: str):
    """The session rows of a stored file: its own, or an archive's ``<name>/<member>`` rows."""
    return or_(SessionRow.file == name, SessionRow.file.startswith(f"{name}/", autoescape=True))


def migrate(url: str) -> None:
    """Bring the squad's schema to the newest revision (its own Alembic version table)."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///").split("?")[0])
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # health data: 0600 from birth
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite gives naive datetimes back; they were written in UTC
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@dataclass
class Usage:
    files: int
    bytes: int


class Store:
    def __init__(self, url: str, root: Path):
        sqlite = url.startswith("sqlite")
        self.engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {},
                                    pool_pre_ping=not sqlite)
        if sqlite:
            # what is deleted (a switch-off, an erase) is overwritten at once, not left in the
            # file's free pages until reused: health data, gone when the athlete says so
            event.listen(self.engine, "connect",
                         lambda connection, _: connection.execute("PRAGMA secure_delete = ON"))
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def folder(self, athlete: str) -> Path:
        # hub names are lower-case and have no "/", but a name is never trusted as a path
        safe = hashlib.sha256(athlete.encode()).hexdigest()[:16]
        return self.root / safe

    # -- consent ---------------------------------------------------------------------------

    def consent(self, athlete: str) -> Consent | None:
        with Session(self.engine) as db:
            row = db.get(Consent, athlete)
            if row is not None:
                db.expunge(row)
            return row

    def sharing(self, athlete: str) -> bool:
        row = self.consent(athlete)
        return bool(row and row.share)

    def set_share(self, athlete: str, share: bool, by: str, address: str | None) -> None:
        """Record the decision; switching off deletes the files and rows in the same step."""
        with Session(self.engine) as db, db.begin():
            row = db.get(Consent, athlete) or Consent(athlete=athlete, share=False)
            row.share, row.changed_at = share, now()
            db.add(row)
            db.add(ConsentEvent(athlete=athlete, at=now(), change=f"share {'on' if share else 'off'}",
                                by=by, address=address))
            if not share:
                self._forget_data(db, athlete)
                row.last_sync = None
                self._forget_files(athlete)

    def set_guardian(self, athlete: str, guardian: str | None, by: str, address: str | None) -> None:
        with Session(self.engine) as db, db.begin():
            row = db.get(Consent, athlete) or Consent(athlete=athlete, share=False,
                                                      changed_at=now())
            row.guardian, row.guardian_at = guardian, now() if guardian else None
            db.add(row)
            db.add(ConsentEvent(athlete=athlete, at=now(), by=by, address=address,
                                change="guardian consent" if guardian
                                else "guardian consent withdrawn", detail=guardian))
            if not guardian and row.share:
                # a minor without a guardian's consent cannot share: off, and the data gone
                row.share, row.changed_at, row.last_sync = False, now(), None
                db.add(ConsentEvent(athlete=athlete, at=now(), change="share off", by=by,
                                    address=address, detail="guardian consent withdrawn"))
                self._forget_data(db, athlete)
                self._forget_files(athlete)

    def consent_events(self, athlete: str) -> list[dict]:
        with Session(self.engine) as db:
            rows = db.scalars(select(ConsentEvent).where(ConsentEvent.athlete == athlete)
                              .order_by(ConsentEvent.id))
            return [{"at": _aware(r.at).isoformat(), "change": r.change, "by": r.by,
                     "address": r.address, "detail": r.detail} for r in rows]

    @staticmethod
    def _forget_data(db: Session, athlete: str) -> None:
        for table in (StoredFile, SessionRow, WellnessRow, RefusedFile):
            db.execute(delete(table).where(table.athlete == athlete))

    def _forget_files(self, athlete: str) -> None:
        """The copies go before the transaction that ends sharing commits, while it holds the
        consent row (updated by then): an upload cannot put a file back in between, as it
        would after the commit (it claims the row first, and finds sharing off). Should the
        commit fail, the copies are gone all the same: the safe side of a failure."""
        shutil.rmtree(self.folder(athlete), ignore_errors=True)

    # -- files -------------------------------------------------------------------------------

    def files(self, athlete: str) -> list[dict]:
        with Session(self.engine) as db:
            rows = db.scalars(select(StoredFile).where(StoredFile.athlete == athlete)
                              .order_by(StoredFile.name))
            return [{"name": r.name, "sha256": r.sha256, "size": r.size,
                     "stored_at": _aware(r.stored_at).isoformat()} for r in rows]

    def usage(self, athlete: str, leaving_out: str | None = None) -> Usage:
        with Session(self.engine) as db:
            query = select(func.count(), func.coalesce(func.sum(StoredFile.size), 0)).where(
                StoredFile.athlete == athlete)
            if leaving_out is not None:
                query = query.where(StoredFile.name != leaving_out)
            files, size = db.execute(query).one()
            return Usage(int(files), int(size))

    def put_file(self, athlete: str, name: str, staged: Path, sha256: str, size: int,
                 sessions: dict | list[dict] | None, wellness: list[dict] | None,
                 resummarised: dict[str, list[dict]] | None = None) -> None:
        """Store a checked file and its rows together: the rows are committed, then the file
        takes its place; if either step fails, neither is left behind. ``sessions``: the
        recording's row, or an archive's rows (each names its ``file``). ``resummarised``:
        for a new profile.toml, every stored recording's rows summarised with it."""
        if isinstance(sessions, dict):
            sessions = [sessions]
        target = self.folder(athlete) / name
        with Session(self.engine) as db, db.begin():
            # The consent row is claimed first, and only while sharing is on: a switch-off
            # that comes meanwhile waits for this transaction (its UPDATE of the same row),
            # then deletes what it stored; one that came first leaves nothing to claim. A plain
            # read here would let a switch-off commit between the look and the store.
            claimed = db.execute(update(Consent).where(
                Consent.athlete == athlete, Consent.share.is_(True)).values(last_sync=now()))
            if claimed.rowcount != 1:
                raise PermissionError("sharing is off")
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            db.merge(StoredFile(athlete=athlete, name=name, sha256=sha256, size=size,
                                stored_at=now()))
            db.execute(delete(RefusedFile).where(RefusedFile.athlete == athlete,
                                                 RefusedFile.name == name))
            db.execute(delete(SessionRow).where(SessionRow.athlete == athlete,
                                                _rows_of_file(name)))
            db.add_all(SessionRow(athlete=athlete, file=row.get("file") or name,
                                  row=json.dumps(row)) for row in sessions or ())
            if wellness is not None:
                db.execute(delete(WellnessRow).where(WellnessRow.athlete == athlete))
                db.add_all(WellnessRow(athlete=athlete, line=i, row=json.dumps(r))
                           for i, r in enumerate(wellness))
            self._replace_sessions(db, athlete, resummarised)
            db.flush()
            os.replace(staged, target)  # inside the transaction: a failed move rolls back

    @staticmethod
    def _replace_sessions(db: Session, athlete: str,
                          rows_by_file: dict[str, list[dict]] | None) -> None:
        for file, rows in (rows_by_file or {}).items():
            db.execute(delete(SessionRow).where(SessionRow.athlete == athlete,
                                                _rows_of_file(file)))
            db.add_all(SessionRow(athlete=athlete, file=row.get("file") or file,
                                  row=json.dumps(row)) for row in rows)

    def refuse(self, athlete: str, name: str, sha256: str, reason: str,
               keep: int) -> bool:
        """Note that this content of ``name`` was refused, while sharing is on (False when it
        is off: nothing is kept). An athlete's notes are at most ``keep``, the newest."""
        with Session(self.engine) as db, db.begin():
            # claimed like an upload claims it: a switch-off waits, then deletes the note too
            claimed = db.execute(update(Consent).where(
                Consent.athlete == athlete, Consent.share.is_(True)).values(last_sync=now()))
            if claimed.rowcount != 1:
                return False
            db.merge(RefusedFile(athlete=athlete, name=name, sha256=sha256,
                                 reason=reason[:2000], at=now()))
            db.flush()
            older = db.scalars(select(RefusedFile.name).where(RefusedFile.athlete == athlete)
                               .order_by(RefusedFile.at.desc(), RefusedFile.name)
                               .offset(keep)).all()
            if older:
                db.execute(delete(RefusedFile).where(RefusedFile.athlete == athlete,
                                                     RefusedFile.name.in_(older)))
            return True

    def refused(self, athlete: str) -> list[dict]:
        with Session(self.engine) as db:
            rows = db.scalars(select(RefusedFile).where(RefusedFile.athlete == athlete)
                              .order_by(RefusedFile.name))
            return [{"name": r.name, "sha256": r.sha256, "reason": r.reason,
                     "at": _aware(r.at).isoformat()} for r in rows]

    def delete_file(self, athlete: str, name: str,
                    resummarised: dict[str, list[dict]] | None = None) -> bool:
        """``resummarised``: for profile.toml, every stored recording's rows without it. A
        refusal noted for the name goes too (the file is gone from the home)."""
        with Session(self.engine) as db, db.begin():
            forgotten = db.execute(delete(RefusedFile).where(
                RefusedFile.athlete == athlete, RefusedFile.name == name)).rowcount
            found = db.get(StoredFile, (athlete, name))
            if found is None:
                return bool(forgotten)
            db.delete(found)
            db.execute(delete(SessionRow).where(SessionRow.athlete == athlete,
                                                _rows_of_file(name)))
            if name == LOG_FILE:
                db.execute(delete(WellnessRow).where(WellnessRow.athlete == athlete))
            self._replace_sessions(db, athlete, resummarised)
            consent = db.get(Consent, athlete)
            if consent is not None:
                consent.last_sync = now()
        (self.folder(athlete) / name).unlink(missing_ok=True)
        return True

    def file_path(self, athlete: str, name: str) -> Path | None:
        with Session(self.engine) as db:
            if db.get(StoredFile, (athlete, name)) is None:
                return None
        return self.folder(athlete) / name

    # -- reading -------------------------------------------------------------------------------

    def sharing_athletes(self) -> list[Consent]:
        with Session(self.engine) as db:
            rows = list(db.scalars(select(Consent).where(Consent.share.is_(True))
                                   .order_by(Consent.athlete)))
            db.expunge_all()
            return rows

    def counts(self, athlete: str) -> dict:
        with Session(self.engine) as db:
            def count(table) -> int:
                return db.scalar(select(func.count()).select_from(table)
                                 .where(table.athlete == athlete))
            return {"files": count(StoredFile), "sessions": count(SessionRow),
                    "wellness_days": count(WellnessRow)}

    def sessions(self, athlete: str) -> list[dict]:
        with Session(self.engine) as db:
            rows = db.scalars(select(SessionRow.row).where(SessionRow.athlete == athlete))
            return sorted((json.loads(r) for r in rows), key=lambda r: r.get("start") or "")

    def wellness(self, athlete: str) -> list[dict]:
        with Session(self.engine) as db:
            rows = db.scalars(select(WellnessRow.row).where(WellnessRow.athlete == athlete)
                              .order_by(WellnessRow.line))
            return [json.loads(r) for r in rows]

    def log_read(self, reader: str, athlete: str, what: str, address: str | None) -> None:
        with Session(self.engine) as db, db.begin():
            db.add(ReadEvent(at=now(), reader=reader, athlete=athlete, what=what[:255],
                             address=address))

    def reads_of(self, athlete: str, limit: int = 500) -> list[dict]:
        with Session(self.engine) as db:
            rows = db.scalars(select(ReadEvent).where(ReadEvent.athlete == athlete)
                              .order_by(ReadEvent.id.desc()).limit(limit))
            return [{"at": _aware(r.at).isoformat(), "reader": r.reader, "what": r.what,
                     "address": r.address} for r in rows]

    # -- the privacy helper's store entry ------------------------------------------------------

    def export_person(self, athlete: str) -> dict[str, bytes]:
        """Everything kept about ``athlete``: their stored files and a JSON of every row."""
        out = {}
        folder = self.folder(athlete)
        for item in self.files(athlete):
            path = folder / item["name"]
            if path.is_file():
                out[f"squad/files/{item['name']}"] = path.read_bytes()
        consent = self.consent(athlete)
        record = {
            "sharing": bool(consent and consent.share),
            "guardian": consent.guardian if consent else None,
            "consent_record": self.consent_events(athlete),
            "files": self.files(athlete),
            "refused_files": self.refused(athlete),
            "sessions": self.sessions(athlete),
            "wellness": self.wellness(athlete),
            "reads_of_my_data": self.reads_of(athlete, limit=1_000_000),
            "my_reads_of_others": self._reads_by(athlete),
        }
        out["squad/record.json"] = json.dumps(record, indent=1).encode()
        return out

    def _reads_by(self, reader: str) -> list[dict]:
        with Session(self.engine) as db:
            rows = db.scalars(select(ReadEvent).where(ReadEvent.reader == reader)
                              .order_by(ReadEvent.id))
            return [{"at": _aware(r.at).isoformat(), "athlete": r.athlete, "what": r.what}
                    for r in rows]

    def erase_person(self, athlete: str, pseudonym: str | None = None) -> None:
        """Delete the person's data and pseudonymise the rows that must stay (the consent record
        and the read logs keep that a decision or a read happened, not by whom)."""
        alias = pseudonym or "erased-" + hashlib.sha256(athlete.encode()).hexdigest()[:12]
        with Session(self.engine) as db, db.begin():
            # the consent row first: an upload holding it is waited for, then deleted with
            # the rest; one that comes later finds no sharing to claim
            db.execute(delete(Consent).where(Consent.athlete == athlete))
            self._forget_data(db, athlete)
            for event in db.scalars(select(ConsentEvent).where(
                    (ConsentEvent.athlete == athlete) | (ConsentEvent.by == athlete))):
                if event.athlete == athlete:
                    event.athlete, event.address, event.detail = alias, None, None
                if event.by == athlete:
                    event.by = alias
            for read in db.scalars(select(ReadEvent).where(
                    (ReadEvent.athlete == athlete) | (ReadEvent.reader == athlete))):
                if read.athlete == athlete:
                    read.athlete, read.address = alias, None
                if read.reader == athlete:
                    read.reader = alias
            self._forget_files(athlete)
