"""Who is the client: the socket's peer, or what our own proxies wrote in ``X-Forwarded-For``.

One rule for the hub (sign-in throttling) and the gateway (audit log), from one pair of
settings, ``SPORTHUB_TRUSTED_PROXIES`` and ``SPORTHUB_FORWARDED_HOPS``.

Each proxy appends the address it saw, so only the last entries can be ours: whatever comes before
them was written by the caller and proves nothing. The header is read only when the socket's peer
is a trusted proxy (the hub's own proxy, CHP), and it is read from the right, at most ``hops``
entries: the last entry is what that proxy saw; an entry further left is believed only while the
entry to its right is itself a trusted proxy (a TLS front such as Caddy, whose address or network
is listed). Skipping trusted addresses without the count would not do: people's servers reach the
proxy from 127.0.0.1 in the local profile, the same address as the proxy itself, and a person's
container reaching the proxy directly is not the TLS front, so what it writes stays its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network


@lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]):
    return tuple(ip_network(t, strict=False) for t in trusted)


def _parse(address: str | None) -> IPv4Address | IPv6Address | None:
    try:
        parsed = ip_address((address or "").strip().removeprefix("[").split("]")[0])
    except ValueError:
        return None
    # an IPv4 client seen on a dual-stack socket (::ffff:a.b.c.d) is that IPv4 client
    return parsed.ipv4_mapped or parsed if isinstance(parsed, IPv6Address) else parsed


def is_trusted(address: str | None, trusted: Iterable[str]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in n for n in _networks(tuple(trusted)))


def client_address(peer: str | None, forwarded: str | None, trusted: Iterable[str],
                   hops: int = 1) -> str | None:
    """The client's address, given the socket's peer and the request's X-Forwarded-For."""
    trusted = tuple(trusted)
    if not forwarded or not is_trusted(peer, trusted):
        return peer
    entries = [e.strip() for e in forwarded.split(",") if e.strip()]
    client = peer
    for hop, entry in enumerate(reversed(entries[-hops:])):
        if hop and not is_trusted(client, trusted):
            break  # the hop to the right was not one of our proxies: it is the client
        if _parse(entry) is None:
            break  # not an address: whoever wrote it is not to be believed
        client = str(_parse(entry))
    return client
