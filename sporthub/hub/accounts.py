"""Invite-only password accounts: password hashes, invite links and failed sign-ins.

Kept in SportHub's own small SQLite file (``<data>/accounts.sqlite``), not in the hub's database,
so a hub upgrade never touches them. Only a SHA-256 of an invite token is stored: a leaked
database does not leak working links. Passwords are hashed with argon2.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import DateTime, Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

MIN_PASSWORD_LENGTH = 10

# The most common passwords of at least 10 characters in public breach lists, plus the obvious
# sports-club ones; a short list on purpose: it catches what people actually type first.
_COMMON_PASSWORDS = """
1234567890 0123456789 0987654321 1qaz2wsx3edc 1q2w3e4r5t 1q2w3e4r5t6y qwertyuiop qwertyuiop1
1234qwer!@ qwerty1234 qwerty12345 asdfghjkl1 zxcvbnm123 password12 password123 password1234
passw0rd123 p@ssw0rd12 password!1 iloveyou12 iloveyou123 football12 football123 football1234
basketball baseball12 baseball123 soccer1234 trustno1234 sunshine12 princess12 welcome123
welcome1234 letmein123 letmein1234 abcdefghij abc1234567 abcd123456 monkey1234 dragon1234
master1234 superman12 batman1234 starwars12 computer12 michael123 1111111111 2222222222
5555555555 6666666666 7777777777 8888888888 9999999999 0000000000 aaaaaaaaaa 1212121212
1122334455 123123123123 123456789a 123456789q a123456789 q123456789 changeme12 changeme123
administrator admin12345 admin123456 sporthub123 sporthub1234 marathon12 marathon123
running123 running1234 training123 athlete123 athletics1 cycling123 triathlon1 triathlon12
"""
COMMON_PASSWORDS = frozenset(_COMMON_PASSWORDS.split())


class WeakPassword(ValueError):
    """A password the hub refuses; the message says why, in words the person can act on."""


def check_password_strength(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(lowered)) <= 2:
        raise WeakPassword("This password is too common; choose something less guessable.")
    # "alice2024!!" or "ecila123456": the user name plus decoration is the first thing tried
    letters = re.sub(r"[^a-z]", "", lowered)
    name = re.sub(r"[^a-z]", "", username.lower())
    if name and len(name) >= 3 and (name in letters or name[::-1] in letters):
        raise WeakPassword("The password must not contain your user name.")
    if letters in {"password", "passw", "qwerty", "qwertyuiop", "admin", "letmein", "welcome"}:
        raise WeakPassword("This password is too common; choose something less guessable.")


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    __tablename__ = "sporthub_accounts"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    invite_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Locked(Exception):
    def __init__(self, until: datetime):
        self.until = until
        minutes = max(1, round((until - _now()).total_seconds() / 60))
        super().__init__(f"Too many failed sign-ins: this account is locked for {minutes} more "
                         f"minute{'s' if minutes != 1 else ''}. Try again later or ask your admin.")


class InvalidInvite(Exception):
    def __init__(self):
        super().__init__("This invite link has expired or was already used. Ask your admin for a "
                         "new one.")


@dataclass(frozen=True)
class AccountStatus:
    username: str
    has_password: bool
    invite_expires: datetime | None


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes even for timezone=True columns; they were stored as UTC
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountStore:
    def __init__(self, url: str, *, invite_ttl: timedelta, max_failures: int,
                 lockout: timedelta):
        self.engine = create_engine(url, connect_args={"timeout": 30})
        Base.metadata.create_all(self.engine)
        self.hasher = PasswordHasher()
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        self.invite_ttl = invite_ttl
        self.max_failures = max_failures
        self.lockout = lockout

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
            # a reset link is the admin's way to unlock an account
            row.failures = 0
            row.locked_until = None
            return row.username

    def verify(self, username: str, password: str) -> bool:
        """Check a sign-in; counts failures and raises :class:`Locked` while locked out."""
        with Session(self.engine) as db, db.begin():
            row = db.get(AccountRow, username)
            if row is None or not row.password_hash:
                # as slow as a real check, so timing does not tell which accounts exist; no row
                # is made for every guessed name (there is nothing to lock)
                self._verify(self._dummy_hash, password)
                return False
            locked_until = _aware(row.locked_until)
            if locked_until and locked_until > _now():
                raise Locked(locked_until)
            ok = self._verify(row.password_hash, password)
            if ok:
                row.failures = 0
                row.locked_until = None
                if self.hasher.check_needs_rehash(row.password_hash):
                    row.password_hash = self.hasher.hash(password)
                return True
            newly_locked = self._count_failure(row)
        # raised after the commit: raising inside the transaction would roll the lock back
        if newly_locked:
            raise Locked(newly_locked)
        return False

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _count_failure(self, row: AccountRow) -> datetime | None:
        row.failures = (row.failures or 0) + 1
        if row.failures >= self.max_failures:
            row.failures = 0
            row.locked_until = _now() + self.lockout
            return row.locked_until
        return None

    def record_failure(self, username: str) -> None:
        """Count a failed sign-in checked elsewhere (the admin's password from the settings)."""
        with Session(self.engine) as db, db.begin():
            row = db.get(AccountRow, username) or AccountRow(username=username, failures=0)
            db.add(row)
            self._count_failure(row)

    def check_not_locked(self, username: str) -> None:
        with Session(self.engine) as db:
            row = db.get(AccountRow, username)
            locked_until = _aware(row.locked_until) if row else None
            if locked_until and locked_until > _now():
                raise Locked(locked_until)

    def reset_failures(self, username: str) -> None:
        with Session(self.engine) as db, db.begin():
            row = db.get(AccountRow, username)
            if row is not None:
                row.failures = 0
                row.locked_until = None

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
            )
        return result

    def forget(self, username: str) -> None:
        with Session(self.engine) as db, db.begin():
            row = db.get(AccountRow, username)
            if row is not None:
                db.delete(row)

    def close(self) -> None:
        self.engine.dispose()
