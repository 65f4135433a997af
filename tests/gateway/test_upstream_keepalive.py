"""A model request the backend dropped without answering is sent once more, never more.

llama-server and vLLM (uvicorn) close a connection idle for 5 s. httpx kept idle connections for
5 s too, and the first request after a 6-s answer went out on one the backend was closing at that
moment: "backend embedded failed: RemoteProtocolError", a 503 to the person (seen in CI). The
backend here answers once per connection, then, like a backend whose idle timeout fires as the
next request arrives, closes a connection that idled past the gateway's expiry without answering.
The gateway drops idle connections first (2 s), and a request that got no answer's head at all
(the race can still happen on a loaded machine, it did in CI at 2 s) goes out once more on
another connection; a backend that drops it twice is down (503), not retried forever.
"""

from __future__ import annotations

import asyncio
import types

import pytest

from sporthub.gateway.errors import GatewayError
from sporthub.gateway.upstream import KEEPALIVE_EXPIRY_S, Upstream, UpstreamClient

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
          b"Connection: keep-alive\r\n\r\n{}")


async def closing_backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    answered_at = None
    loop = asyncio.get_running_loop()
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        if answered_at is not None and loop.time() - answered_at > KEEPALIVE_EXPIRY_S:
            writer.close()  # its idle timeout fired: the request is never answered
            return
        writer.write(ANSWER)
        await writer.drain()
        answered_at = loop.time()


def dropping_backend(drops: int, connections: list):
    """A backend that reads the first ``drops`` requests and closes their connections without a
    word (a keep-alive race, or a restart), then answers."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        if len(connections) <= drops:
            writer.close()
            return
        writer.write(ANSWER)
        await writer.drain()
    return serve


def backend_at(server) -> tuple[Upstream, UpstreamClient]:
    port = server.sockets[0].getsockname()[1]
    backend = types.SimpleNamespace(name="embedded", max_concurrency=1,
                                    url=f"http://127.0.0.1:{port}", models=["m"],
                                    supports_tools=False, accepts_media=False, api_key=None)
    return Upstream(backend, 1), UpstreamClient(stall_timeout_s=5)


def test_a_request_after_an_idle_pause_goes_out_on_a_fresh_connection():
    async def scenario():
        server = await asyncio.start_server(closing_backend, "127.0.0.1", 0)
        upstream, client = backend_at(server)
        try:
            statuses = []
            for pause in (0, KEEPALIVE_EXPIRY_S + 1.0):
                await asyncio.sleep(pause)
                response = await client.open(upstream, "chat/completions", {"model": "m"},
                                             stream=False, remaining_s=5)
                await response.aread()
                statuses.append(response.status_code)
            return statuses
        finally:
            await client.close()
            server.close()

    assert asyncio.run(scenario()) == [200, 200]


@pytest.mark.parametrize("drops, answered", [(1, True), (2, False)])
def test_a_request_the_backend_dropped_unanswered_is_sent_once_more(drops, answered):
    connections = []

    async def scenario():
        server = await asyncio.start_server(dropping_backend(drops, connections), "127.0.0.1", 0)
        upstream, client = backend_at(server)
        try:
            response = await client.open(upstream, "chat/completions", {"model": "m"},
                                         stream=False, remaining_s=5)
            await response.aread()
            return response.status_code
        finally:
            await client.close()
            server.close()

    if answered:
        assert asyncio.run(scenario()) == 200
    else:
        with pytest.raises(GatewayError) as refused:
            asyncio.run(scenario())
        assert (refused.value.status, refused.value.code) == (503, "upstream_unavailable")
    assert len(connections) == 2  # one retry, on a new connection, never more
