"""The password rules, one set for everybody: invite links and ``SPORTHUB_ADMIN_PASSWORD`` alike.

No dependencies on purpose: the settings check the admin's password with these rules before anything
starts, and the hub checks every password chosen through an invite link.
"""

from __future__ import annotations

import re

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


# the reasons, in English; sporthub/i18n.py has them in Russian, keyed by these texts
TOO_SHORT = "Choose a password of at least {n} characters."
TOO_COMMON = "This password is too common; choose something less guessable."
CONTAINS_NAME = "The password must not contain your user name."
REASONS = (TOO_SHORT, TOO_COMMON, CONTAINS_NAME)


class WeakPassword(ValueError):
    """A password the hub refuses; the message says why, in words the person can act on.

    ``str()`` is the English sentence; ``reason`` and ``values`` let a page say it in the
    reader's language.
    """

    def __init__(self, reason: str, **values: object):
        self.reason, self.values = reason, values
        super().__init__(reason.format(**values))


def check_password_strength(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(TOO_SHORT, n=MIN_PASSWORD_LENGTH)
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(lowered)) <= 2:
        raise WeakPassword(TOO_COMMON)
    # "alice2024!!" or "ecila123456": the user name plus decoration is the first thing tried
    letters = re.sub(r"[^a-z]", "", lowered)
    name = re.sub(r"[^a-z]", "", username.lower())
    if name and len(name) >= 3 and (name in letters or name[::-1] in letters):
        raise WeakPassword(CONTAINS_NAME)
    if letters in {"password", "passw", "qwerty", "qwertyuiop", "admin", "letmein", "welcome"}:
        raise WeakPassword(TOO_COMMON)
