"""Pseudonyms: what replaces a person's name in the rows SportHub keeps after erasing them.

The ledger and the audit log are kept for accounting (who used how much, what failed) after a
person is erased (GDPR Art. 17(3), 152-FZ art. 21) and after the retention period, but without
the name. A pseudonym is a keyed hash of the name, HMAC-SHA-256 with a secret of the installation
(``<data>/secrets/pseudonym-key``, 0600, in every backup's secrets): the same name gives the same
pseudonym in the ledger, in the audit log and in the gateway's metrics, so rows still add up per
person, and nobody without the key can go back from the pseudonym to the name by trying names.

A pseudonym starts with ``~``, which no hub user name does (``sporthub.admin.USERNAME``, the OIDC
provider's names are mapped to such names too): a pseudonymised row is never taken for a person.
"""

from __future__ import annotations

import hashlib
import hmac

from sporthub.settings import Settings

KEY_SECRET = "pseudonym-key"
PREFIX = "~"
# 80 bits: no two of a club's names collide, short enough to read in a table
DIGITS = 20


def pseudonym(key: str | bytes, name: str) -> str:
    raw = key.encode() if isinstance(key, str) else key
    digest = hmac.new(raw, name.encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:DIGITS]


def is_pseudonym(name: str | None) -> bool:
    return bool(name) and name.startswith(PREFIX)


class Pseudonyms:
    """The installation's pseudonyms (the key read once from the data directory)."""

    def __init__(self, key: str | bytes):
        self._key = key.encode() if isinstance(key, str) else key
        self._cache: dict[str, str] = {}

    @classmethod
    def of(cls, settings: Settings) -> Pseudonyms:
        return cls(settings.secret(KEY_SECRET))

    def __call__(self, name: str) -> str:
        if is_pseudonym(name):
            return name
        value = self._cache.get(name)
        if value is None:
            value = self._cache[name] = pseudonym(self._key, name)
        return value
