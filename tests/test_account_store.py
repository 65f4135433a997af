"""The password/invite store on its own: hashing, expiry, lockout timing, password rules."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from sporthub.hub.accounts import (
    AccountStore,
    InvalidInvite,
    Locked,
    WeakPassword,
    check_password_strength,
)

PASSWORD = "quiet-harbour-lights-3"


@pytest.fixture
def store(tmp_path):
    store = AccountStore(f"sqlite:///{tmp_path / 'accounts.sqlite'}",
                         invite_ttl=timedelta(hours=1), max_failures=3,
                         lockout=timedelta(seconds=1))
    yield store
    store.close()


def test_a_lockout_ends_by_itself(store):
    store.redeem(store.new_invite("ola"), PASSWORD)
    assert store.verify("ola", "nope") is False
    assert store.verify("ola", "nope") is False
    with pytest.raises(Locked, match="locked for 1 more minute\\."):
        store.verify("ola", "nope")
    with pytest.raises(Locked):
        store.verify("ola", PASSWORD)
    time.sleep(1.1)
    assert store.verify("ola", PASSWORD) is True
    # a success starts the count again
    assert store.verify("ola", "nope") is False
    assert store.verify("ola", PASSWORD) is True


def test_a_new_link_replaces_the_old_one(store):
    first = store.new_invite("per")
    second = store.new_invite("per")
    with pytest.raises(InvalidInvite):
        store.invite_user(first)
    assert store.invite_user(second) == "per"


def test_unknown_names_and_unactivated_accounts_never_sign_in(store):
    store.new_invite("rut")
    assert store.verify("rut", "") is False
    assert store.verify("nobody", PASSWORD) is False
    assert store.status(["rut", "nobody"])["nobody"].has_password is False


def test_the_stored_hash_is_argon2(store, tmp_path):
    store.redeem(store.new_invite("siv"), PASSWORD)
    raw = (tmp_path / "accounts.sqlite").read_bytes()
    assert b"$argon2id$" in raw and PASSWORD.encode() not in raw


@pytest.mark.parametrize("username, password, reason", [
    ("tor", "123456789", "at least 10"),
    ("tor", "Qwertyuiop", "too common"),
    ("tor", "PASSWORD1234", "too common"),
    ("tor", "zzzzzzzzzzzz", "too common"),
    ("tor", "ababababababab", "too common"),
    ("tormod", "Tormod!2025x", "user name"),
    ("tormod", "domrot-2025-x", "user name"),
])
def test_weak_passwords(username, password, reason):
    with pytest.raises(WeakPassword, match=reason):
        check_password_strength(username, password)


def test_a_decent_password_passes():
    check_password_strength("tor", "mountain-relay-splits-4")
