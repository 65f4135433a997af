"""Who is the client: the socket's peer, or what our own proxies wrote in ``X-Forwarded-For``
(and, for links the hub prints, which scheme it used: ``X-Forwarded-Proto``).

One rule for the hub (sign-in throttling) and the services (the gateway's audit log, the squad's
consent record), from one pair of settings, ``SPORTHUB_TRUSTED_PROXIES`` and
``SPORTHUB_FORWARDED_HOPS``.

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

import errno
import os
import socket
import struct
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


def socket_owner(address: str, port: int,
                 local: tuple[str, int] | None = None) -> int | None:
    """The user id owning the local TCP socket bound to ``address:port``, or None.

    On one machine, a loopback peer is a process here: the proxy, or a person's process (their
    server runs as their own system user in the local profile). The address alone cannot tell
    them apart; the owner of the connecting socket can (what identd did). With ``local`` (the
    address and port the peer connected to) the kernel is asked for that one connection over
    netlink (sock_diag: ~0.3 ms here); without it, or where netlink is refused, /proc/net/tcp is
    read whole (~43 ms here with 136 sockets: too slow for every model request)."""
    if local is not None:
        try:
            return _diag_owner(address, port, *local)
        except (OSError, ValueError, struct.error):
            pass  # no sock_diag here (a module not loaded, a sandbox): the slow way
    return _proc_owner(address, port)


def _diag_owner(peer: str, peer_port: int, local: str, local_port: int) -> int | None:
    """One NETLINK_SOCK_DIAG lookup of the TCP socket peer:peer_port -> local:local_port."""
    source, destination = _parse(peer), _parse(local)
    if source is None or destination is None or source.version != destination.version:
        raise ValueError("not a pair of addresses of one family")
    family = socket.AF_INET if source.version == 4 else socket.AF_INET6
    # struct inet_diag_req_v2: family, protocol, extensions, pad, states (all); then the
    # socket's id as the peer's socket sees it (its own end first), no interface, no cookie
    request = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)
    request += struct.pack("!HH", peer_port, local_port)
    request += source.packed.ljust(16, b"\0") + destination.packed.ljust(16, b"\0")
    request += struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF)
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1)
        nl.send(header + request)
        answer = nl.recv(8192)
    _, kind = struct.unpack_from("=IH", answer)
    if kind == _NLMSG_ERROR:
        error = -struct.unpack_from("=i", answer, 16)[0]
        if error == errno.ENOENT:
            return None  # no such connection (it closed)
        raise OSError(error, os.strerror(error))
    # struct inet_diag_msg: 4 bytes, the 48-byte id, expires, rqueue, wqueue, then uid
    return struct.unpack_from("=I", answer, 16 + 64)[0]


_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, _NLMSG_ERROR = 4, 20, 1, 2


def _proc_owner(address: str, port: int) -> int | None:
    parsed = _parse(address)
    if parsed is None:
        return None
    if parsed.version == 4:
        tables, packed = ("/proc/net/tcp", "/proc/net/tcp6"), [parsed.packed[::-1].hex().upper()]
        # an IPv4 client on a dual-stack socket is listed as ::ffff:a.b.c.d in tcp6
        mapped = IPv6Address(f"::ffff:{parsed}").packed
        packed.append("".join(mapped[i:i + 4][::-1].hex() for i in range(0, 16, 4)).upper())
    else:
        tables = ("/proc/net/tcp6",)
        packed = ["".join(parsed.packed[i:i + 4][::-1].hex() for i in range(0, 16, 4)).upper()]
    wanted = {f"{p}:{port:04X}" for p in packed}
    for table in tables:
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1] in wanted:
                        return int(fields[7])
        except OSError:
            continue
    return None


def from_this_machines_user(address: str | None, port: int | None, uid: int,
                            local: tuple[str, int] | None = None) -> bool:
    """False when a loopback peer's socket belongs to another user than ``uid`` (a person's
    process, not the proxy); True for any other peer (checked by address alone)."""
    parsed = _parse(address)
    if parsed is None or not parsed.is_loopback or port is None:
        return True
    owner = socket_owner(address, port, local)
    return owner is None or owner == uid


def client_address(peer: str | None, forwarded: str | None, trusted: Iterable[str],
                   hops: int = 1, peer_port: int | None = None,
                   local: tuple[str, int] | None = None) -> str | None:
    """The client's address, given the socket's peer (and its port, and the address and port it
    connected to, to tell the proxy from another local process) and the X-Forwarded-For."""
    return _believed(peer, forwarded, tuple(trusted), hops, peer_port, local)[0]


def client_scheme(peer: str | None, forwarded: str | None, forwarded_proto: str | None,
                  trusted: Iterable[str], hops: int, own: str,
                  peer_port: int | None = None, local: tuple[str, int] | None = None) -> str:
    """The scheme the client used (``https`` behind a TLS front), ``own`` (the connection's)
    unless our proxies said otherwise.

    Each proxy appends to X-Forwarded-Proto as it does to X-Forwarded-For (CHP adds ``http``
    after Caddy's ``https``), so the client's entry is the one at the hop the address came from;
    tornado's own reading (its ``xheaders``) takes the last entry, from anyone."""
    _, believed = _believed(peer, forwarded, tuple(trusted), hops, peer_port, local)
    protos = [p.strip().lower() for p in (forwarded_proto or "").split(",")]
    if believed and len(protos) >= believed and protos[-believed] in ("http", "https"):
        return protos[-believed]
    return own


def _believed(peer, forwarded, trusted: tuple[str, ...], hops: int,
              peer_port: int | None, local: tuple[str, int] | None = None,
              ) -> tuple[str | None, int]:
    """The client's address and how many entries of X-Forwarded-For were believed for it."""
    if not forwarded or not is_trusted(peer, trusted):
        return peer, 0
    # on loopback, only a process of our own user (the proxy) may name the client: a person's
    # process (its own system user in the local profile) reaching a service directly may not
    if not from_this_machines_user(peer, peer_port, os.geteuid(), local):
        return peer, 0
    entries = [e.strip() for e in forwarded.split(",") if e.strip()]
    client, believed = peer, 0
    for hop, entry in enumerate(reversed(entries[-hops:])):
        if hop and not is_trusted(client, trusted):
            break  # the hop to the right was not one of our proxies: it is the client
        if _parse(entry) is None:
            break  # not an address: whoever wrote it is not to be believed
        client, believed = str(_parse(entry)), hop + 1
    return client, believed


def local_end(request) -> tuple[str, int] | None:
    """Our own end of a tornado request's connection (the hub's), for the kernel's exact lookup
    of its owner (:func:`socket_owner`); None where tornado does not show it."""
    try:
        return request.connection.stream.socket.getsockname()[:2]
    except (AttributeError, OSError, TypeError):
        return None


def client_ip(request, trusted_proxies: list[str], hops: int = 1) -> str | None:
    """The client's address of a Starlette (ASGI) request to a service (the gateway, the squad):
    X-Forwarded-For is believed only from a proxy we trust, and only the hops our own proxies
    appended."""
    # on loopback only the proxy's own connection (the hub's user) may name the client: a
    # person's process calling the service's port directly is logged as its own address. The
    # owner of the connection is asked of the kernel by its four ends (netlink, ~0.3 ms)
    peer, port = (request.client.host, request.client.port) if request.client else (None, None)
    server = request.scope.get("server")
    local = (server[0], server[1]) if server and server[1] is not None else None
    return client_address(peer, request.headers.get("x-forwarded-for"), trusted_proxies, hops,
                          port, local)
