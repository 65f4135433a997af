"""Invite-only password accounts: password hashes, invite links and failed sign-ins.

Kept in SportHub's own small SQLite file (``<data>/accounts.sqlite``), not in the hub's database,
so a hub upgrade never touches them. Only a SHA-256 of an invite token is stored: a leaked
database does not leak working links. Passwords are hashed with argon2.

Failed sign-ins slow down the address they come from, never the account as such: a stranger who
guesses at the admin's password delays only himself, and the admin still signs in from elsewhere.
Each failure is counted by one atomic statement, so failures arriving at once are all counted.

Two counts per address: failures at one account from it, and failures at any account from it (the
address-wide count, which slows down guessing across many accounts). The address-wide count holds
back only attempts at an account that has itself failed from that address since its last success:
strangers who fill it (other people behind a club's network address) never stand between a person
and their own account, and a guesser spreading over many accounts gains at most one try per
account a day beyond the address's allowance.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import DateTime, Integer, String, create_engine, delete, select, update
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sporthub import i18n
from sporthub.passwords import WeakPassword, check_password_strength

__all__ = ["AccountStore", "InvalidInvite", "Throttled", "WeakPassword", "check_password_strength"]

# an address may be shared (a club's network, a household): it gets more tries than one account
# from it before it is slowed down
ADDRESS_FACTOR = 4
# failures older than this are forgotten, and their rows deleted
FORGET_AFTER = timedelta(days=1)


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    __tablename__ = "sporthub_accounts"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    invite_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # failed sign-ins since the last success, from anywhere: shown to the admin, never a lock
    failures: Mapped[int] = mapped_column(Integer, default=0)


class FailureRow(Base):
    """Recent failed sign-ins from one address: at one account, or at any (``username == ""``)."""

    __tablename__ = "sporthub_signin_failures"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Throttled(Exception):
    """``str()`` is the English sentence (logs, the API); a page uses :meth:`say`."""

    def __init__(self, wait: timedelta):
        self.wait = wait
        super().__init__(self.say("en"))

    def say(self, lang: str) -> str:
        return i18n.gettext(
            lang, "Too many failed sign-ins from your address: wait {wait} before trying again.",
            wait=i18n.wait_time(lang, self.wait.total_seconds()))


class InvalidInvite(Exception):
    def __init__(self):
        super().__init__(self.say("en"))

    @staticmethod
    def say(lang: str) -> str:
        return i18n.gettext(lang, "This invite link has expired or was already used. Ask your "
                                  "admin for a new one.")


@dataclass(frozen=True)
class AccountStatus:
    username: str
    has_password: bool
    invite_expires: datetime | None
    failures: int


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; they were stored as UTC
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def throttle_delay(failures: int, free: int, longest: timedelta) -> timedelta:
    """No wait for the first ``free`` failures, then 1 s, 2 s, 4 s ... up to ``longest``."""
    if failures < free:
        return timedelta(0)
    return min(timedelta(seconds=2 ** min(failures - free, 30)), longest)


class AccountStore:
    def __init__(self, url: str, *, invite_ttl: timedelta, max_failures: int,
                 longest_delay: timedelta):
        self.engine = create_engine(url, connect_args={"timeout": 30})
        Base.metadata.create_all(self.engine)
        self.hasher = PasswordHasher()
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        self.invite_ttl = invite_ttl
        self.max_failures = max_failures
        self.longest_delay = longest_delay

    def new_invite(self, username: str) -> str:
        """A fresh one-time link token; it replaces any earlier one (a reset, for the admin)."""
        token = secrets.token_urlsafe(32)
        with Session(self.engine) as db, db.begin():
            row = db.get(AccountRow, username) or AccountRow(username=username, failures=0)
            row.invite_sha256 = _digest(token)
            row.invite_expires = _now() + self.invite_ttl
            db.add(row)
        return token

    def invite_user(self, token: str) -> str:
        """The user name a valid invite token is for; :class:`InvalidInvite` otherwise."""
        with Session(self.engine) as db:
            row = db.scalar(select(AccountRow).where(AccountRow.invite_sha256 == _digest(token)))
            if row is None or _aware(row.invite_expires) <= _now():
                raise InvalidInvite()
            return row.username

    def redeem(self, token: str, password: str) -> str:
        """Set the password of the invite's account and spend the invite."""
        with Session(self.engine) as db, db.begin():
            row = db.scalar(select(AccountRow).where(AccountRow.invite_sha256 == _digest(token)))
            if row is None or _aware(row.invite_expires) <= _now():
                raise InvalidInvite()
            check_password_strength(row.username, password)
            row.password_hash = self.hasher.hash(password)
            row.invite_sha256 = None
            row.invite_expires = None
            # a new password makes the guesses at the old one irrelevant
            row.failures = 0
            db.execute(delete(FailureRow).where(FailureRow.username == row.username))
            return row.username

    def sign_in(self, username: str, address: str, check: Callable[[], bool]) -> bool:
        """Run ``check`` (the password test) unless ``address`` must wait; count the outcome.

        Raises :class:`Throttled` without running ``check`` while the address waits: a refused
        attempt costs no password hashing and teaches nothing.
        """
        wait = self.wait(username, address)
        if wait > timedelta(0):
            raise Throttled(wait)
        if check():
            self._succeeded(username, address)
            return True
        self._failed(username, address)
        return False

    def check_password(self, username: str, password: str) -> bool:
        with Session(self.engine) as db, db.begin():
            row = db.get(AccountRow, username)
            if row is None or not row.password_hash:
                # as slow as a real check, so timing does not tell which accounts exist
                self._verify(self._dummy_hash, password)
                return False
            if not self._verify(row.password_hash, password):
                return False
            if self.hasher.check_needs_rehash(row.password_hash):
                row.password_hash = self.hasher.hash(password)
            return True

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def wait(self, username: str, address: str) -> timedelta:
        """How long ``address`` must wait before it may try ``username`` again."""
        now = _now()
        with Session(self.engine) as db:
            rows = db.scalars(select(FailureRow).where(
                FailureRow.address == address, FailureRow.username.in_(["", username]),
                FailureRow.last_failure >= now - FORGET_AFTER)).all()
        wait = timedelta(0)
        failed_here = any(row.username == username for row in rows)
        for row in rows:
            if row.username == "" and not failed_here:
                continue  # the address's count never holds back an account's first try from it
            free = self.max_failures * (ADDRESS_FACTOR if row.username == "" else 1)
            until = _aware(row.last_failure) + throttle_delay(row.failures, free,
                                                               self.longest_delay)
            wait = max(wait, until - now)
        return wait

    def _failed(self, username: str, address: str) -> None:
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(delete(FailureRow).where(FailureRow.last_failure < now - FORGET_AFTER))
            for name in ("", username):
                # one statement each: failures that arrive at once are all counted
                conn.execute(insert(FailureRow).values(
                    username=name, address=address, failures=1, last_failure=now,
                ).on_conflict_do_update(
                    index_elements=[FailureRow.username, FailureRow.address],
                    set_={"failures": FailureRow.failures + 1, "last_failure": now}))
            conn.execute(update(AccountRow).where(AccountRow.username == username)
                         .values(failures=AccountRow.failures + 1))

    def _succeeded(self, username: str, address: str) -> None:
        # the address's own count stays: one good account must not buy guesses at the others
        with self.engine.begin() as conn:
            conn.execute(delete(FailureRow).where(FailureRow.username == username,
                                                  FailureRow.address == address))
            conn.execute(update(AccountRow).where(AccountRow.username == username)
                         .values(failures=0))

    def status(self, usernames: list[str]) -> dict[str, AccountStatus]:
        with Session(self.engine) as db:
            rows = {r.username: r for r in db.scalars(
                select(AccountRow).where(AccountRow.username.in_(usernames)))}
        now = _now()
        result = {}
        for name in usernames:
            row = rows.get(name)
            expires = _aware(row.invite_expires) if row else None
            result[name] = AccountStatus(
                username=name,
                has_password=bool(row and row.password_hash),
                invite_expires=expires if expires and expires > now else None,
                failures=(row.failures or 0) if row else 0,
            )
        return result

    def forget(self, username: str) -> None:
        with Session(self.engine) as db, db.begin():
            row = db.get(AccountRow, username)
            if row is not None:
                db.delete(row)
            db.execute(delete(FailureRow).where(FailureRow.username == username))

    def close(self) -> None:
        self.engine.dispose()
