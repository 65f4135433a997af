"""One model request's life: admission, a slot, the relay, settlement.

The whole life is one async generator, :meth:`ModelRequest._life`, and its single ``finally``
gives back the slot (or the place in line), settles the budget reservation and writes exactly
one ledger row (bookkeeping.py) and audit line, whatever raised: a bad body, a budget refusal, a
backend that broke, a caller who hung up, or a bug. The generator yields either one complete
:class:`Response` (answers that are not streamed, and errors before any byte went out) or the
bytes of an SSE stream (queue comments while waiting, then the backend's events).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from sporthub.gateway.auth import Caller
from sporthub.gateway.bookkeeping import Bookkeeping
from sporthub.gateway.budgets import TokenCounter
from sporthub.gateway.errors import GatewayError
from sporthub.gateway.ledger import RequestRecord
from sporthub.gateway.payload import (
    CHARS_PER_TOKEN,
    Payload,
    check,
    has_media,
    read_at_most,
    read_json,
)
from sporthub.gateway.policy import PolicyLookup, budget_window
from sporthub.gateway.scheduler import STARTING, Scheduler, Ticket
from sporthub.gateway.upstream import (
    Router,
    Upstream,
    UpstreamClient,
    upstream_error,
    without_usage,
)
from sporthub.settings import Settings

log = logging.getLogger("sporthub.gateway")

QUEUE_COMMENT_EVERY_S = 1.5
# only this many at the front of the line are woken by every change of the queue (someone got a
# slot, left, or took a fair turn ahead): further back a move of one place is not worth waking
# hundreds of streams for at each arrival, and they hear their place at the periodic comment
WAKE_DEPTH = 24
# a backend's refusal is a short JSON message: no more of it is read
ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Collaborators:
    """What a request works with; the gateway builds them once and hands them to each request."""

    settings: Settings
    router: Router
    upstreams: UpstreamClient
    scheduler: Scheduler
    tokens: TokenCounter
    policy: PolicyLookup
    books: Bookkeeping


class ModelRequest:
    def __init__(self, parts: Collaborators, request: Request, caller: Caller, endpoint: str,
                 client_ip: str | None):
        self.settings = parts.settings
        self.router = parts.router
        self.upstreams = parts.upstreams
        self.scheduler = parts.scheduler
        self.tokens = parts.tokens
        self.policy = parts.policy
        self.books = parts.books
        self.request = request
        self.record = RequestRecord(id=str(uuid.uuid4()), user=caller.name, endpoint=endpoint,
                                    client_ip=client_ip)
        self.started = time.monotonic()
        self.payload: Payload | None = None
        self.ticket: Ticket | None = None
        self.reserved = 0  # budget tokens held for this request until it ends
        self.max_tokens = 0
        self.deadline = float("inf")  # loop time by which the slot is given back, come what may
        self.forwarded = False  # the backend took the request: its prompt is charged
        self.delivered = 0  # streamed chunks with text, about a token each
        self.head_sent = False
        self.upstream_response: httpx.Response | None = None

    async def respond(self) -> Response:
        life = self._life()
        first = await anext(life)
        if isinstance(first, Response):
            await anext(life, None)  # the life ends (row written) before the answer goes out
            return first
        self.head_sent = True
        return _SSEResponse(first, life, self.settings.llm_client_write_timeout_s,
                            self._client_too_slow)

    # -- the life ---------------------------------------------------------------------------

    async def _life(self):
        r = self.record
        self.books.in_flight += 1
        try:
            await self._admit()
            if self.payload.stream and not self.ticket.admitted.done():
                # headers go out now, so the caller hears where it stands while it waits
                self.head_sent = True
                async for comment in self._queue_comments():
                    yield comment
            await self._wait_for_slot()
            upstream = self._on_slot()
            if self.payload.stream:
                response = await self._open(upstream)
                self.head_sent = True
                yield b""  # the headers: the stream is open
                async for event in self._relay(response):
                    yield event
            else:
                yield await self._unary(upstream)
        except GatewayError as e:
            r.status, r.outcome = e.status, e.code
            yield _sse_error(e) if self.head_sent else e.response()
        except ClientGone:
            r.status, r.outcome = 499, "cancelled"
            yield Response(status_code=499)
        except (asyncio.CancelledError, GeneratorExit):
            if r.outcome == "ok":
                r.status, r.outcome = 499, "cancelled"
            raise
        except Exception:
            log.exception("request %s failed", r.id)
            r.status, r.outcome = 500, "error"
            error = GatewayError(500, f"The gateway failed on this request ({r.id}); the admin "
                                 "can find it in the gateway's log.", "internal_error")
            yield _sse_error(error) if self.head_sent else error.response()
        finally:
            self._settle()

    async def _admit(self) -> None:
        """Body, limits, budget reservation, and a place in line (or a slot at once)."""
        r, s = self.record, self.settings
        body = await read_json(self.request)
        self.payload = p = check(body, r.endpoint, s.llm_max_tokens, s.llm_max_prompt_chars)
        r.model, r.stream = p.model, p.stream
        self.router.check_model(p.model)
        if p.endpoint == "chat/completions" and has_media(p.text) \
                and not self.router.accepts_media(p.model):
            raise GatewayError(400, f"The model '{p.model}' takes text only here: send the "
                               "message without image, audio or file parts.",
                               "media_not_supported", param="messages")
        policy = await self.policy(r.user)
        available = await self.tokens.available(r.user, policy.tokens_per_day)
        # nothing is awaited from here on: the check and the reservation are one step
        if available < p.prompt_estimate + 1:
            raise self._budget_exhausted(policy.tokens_per_day)
        # the answer may use what is left, and no more: the budget cannot be overshot
        self.max_tokens = min(p.max_tokens, available - p.prompt_estimate)
        self.reserved = p.prompt_estimate + self.max_tokens
        self.tokens.reserve(r.user, self.reserved)
        self.ticket = self.scheduler.submit(r.user, policy.priority, p.model,
                                         max_tokens=self.max_tokens,
                                         prompt_tokens=p.prompt_estimate, stream=p.stream)
        r.eta_ms = _eta_ms(self.ticket.eta_given_s)

    def _budget_exhausted(self, limit: int) -> GatewayError:
        used = self.tokens.peek(self.record.user)
        reserved = self.tokens.reserved[self.record.user]
        _, resets_at = budget_window()
        retry_after = int((resets_at - datetime.now(UTC)).total_seconds()) + 1
        running = f", {reserved} held by your requests running now" if reserved else ""
        return GatewayError(
            429, f"You have used your {limit} tokens for today ({used} used{running}). "
            f"Your budget resets at {resets_at:%H:%M} UTC ({resets_at.isoformat()}).",
            "budget_exhausted", {"Retry-After": str(retry_after)})

    async def _queue_comments(self):
        """SSE comments with the place in line until a slot is free (or the wait ends)."""
        scheduler = self.scheduler
        waiter = asyncio.ensure_future(
            scheduler.wait(self.ticket, self.settings.llm_queue_timeout_s))
        try:
            last_position, last_sent = None, 0.0
            while not waiter.done():
                position = scheduler.position(self.ticket)
                now = time.monotonic()
                if position and (position != last_position
                                 or now - last_sent >= QUEUE_COMMENT_EVERY_S):
                    yield queue_comment(scheduler, self.ticket, position)
                    last_position, last_sent = position, now
                # near the front, wake on any change of the queue; always in time for the
                # periodic comment
                next_comment = max(QUEUE_COMMENT_EVERY_S - (time.monotonic() - last_sent), 0.05)
                wake = {waiter, scheduler.changed()} if position <= WAKE_DEPTH else {waiter}
                await asyncio.wait(wake, timeout=next_comment,
                                   return_when=asyncio.FIRST_COMPLETED)
            waiter.result()  # a queue timeout, or the backend gone, raises here
        finally:
            waiter.cancel()  # only this helper's task; the place itself is the life's to give up

    async def _wait_for_slot(self) -> None:
        """Wait for the slot while watching the client: a caller that leaves loses its place."""
        if self.ticket.admitted.done():
            self.ticket.admitted.result()  # raises when the backend went down meanwhile
            return
        waiter = asyncio.ensure_future(
            self.scheduler.wait(self.ticket, self.settings.llm_queue_timeout_s))
        gone = asyncio.ensure_future(_until_disconnect(self.request))
        try:
            await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not waiter.done():
                waiter.cancel()
        if not waiter.done() or waiter.cancelled():
            raise ClientGone()
        waiter.result()

    def _on_slot(self) -> Upstream:
        # both from the moment the scheduler gave the slot, not from when this task resumed
        self.books.slot_given(self.ticket)
        self.deadline = asyncio.get_running_loop().time() + self.settings.llm_request_timeout_s
        upstream = self.router.get(self.ticket.backend)
        self.record.backend = upstream.name
        self.record.queued_ms = (time.monotonic() - self.started) * 1000
        return upstream

    # -- forwarding ---------------------------------------------------------------------------

    def _body_for(self, upstream: Upstream) -> dict:
        return upstream.prepare(self.payload.forward(self.max_tokens))

    def _remaining(self) -> float:
        return max(self.deadline - asyncio.get_running_loop().time(), 0.001)

    async def _unary(self, upstream: Upstream) -> Response:
        response = await self._open(upstream)
        limit = self.settings.llm_max_answer_bytes
        content = await self._read_at_most(response, limit)
        if content is None:
            # cut unread: the backend may have generated all it was allowed, so that is charged
            self.record.completion_tokens = self.max_tokens
            raise GatewayError(502, f"The model's answer is larger than {_size(limit)}, the most "
                               "the gateway takes in one answer: ask for fewer tokens or "
                               "log probabilities, or stream the answer.", "answer_too_large")
        try:
            answer = json.loads(content)
            usage = answer.get("usage") or {}
            choices = answer["choices"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise GatewayError(502, "The language model backend sent an answer that is not "
                               "OpenAI-shaped JSON.", "upstream_error") from None
        r = self.record
        r.prompt_tokens = _count(usage, "prompt_tokens")
        r.completion_tokens = _count(usage, "completion_tokens")
        if not r.completion_tokens:
            # a complete answer without usage is still billed: count its text
            r.completion_tokens = -(-len(json.dumps(choices, ensure_ascii=False))
                                    // CHARS_PER_TOKEN)
        return Response(content, media_type="application/json")

    async def _open(self, upstream: Upstream) -> httpx.Response:
        """Send the request and read the answer's head; its body is read as it comes, never
        taken whole without a limit (a backend's answer can be far larger than its request)."""
        response = await self.upstreams.open(upstream, self.record.endpoint,
                                             self._body_for(upstream), self.payload.stream,
                                             self._remaining())
        self.upstream_response = response
        if response.status_code >= 400:
            raise self._refused_by(upstream, response,
                                   await self._read_at_most(response, ERROR_BODY_BYTES) or b"")
        self.forwarded = True
        return response

    async def _read_at_most(self, response: httpx.Response, limit: int) -> bytes | None:
        """The answer's body within the request's deadline, or None once it passes ``limit``."""
        try:
            async with asyncio.timeout_at(self.deadline):
                return await read_at_most(response.aiter_bytes(), limit)
        except TimeoutError:
            raise GatewayError(504, "The answer took longer than the "
                               f"{self.settings.llm_request_timeout_s:.0f} s allowed for one "
                               "request.", "deadline") from None
        except httpx.HTTPError:
            log.warning("answer from %s broke", self.record.backend)
            raise GatewayError(502, "The language model backend stopped mid-answer.",
                               "upstream_broken") from None

    async def _relay(self, response: httpx.Response):
        """The backend's events as they come, counting usage, within the stall and the deadline.

        The events that arrived together go out together: one write to the caller, one timer,
        not one for each event."""
        r = self.record
        loop = asyncio.get_running_loop()
        stall = self.settings.llm_stall_timeout_s
        arrivals = _sse_events(response, self.settings.llm_max_answer_bytes)
        while True:
            try:
                async with asyncio.timeout_at(min(loop.time() + stall, self.deadline)):
                    events = await anext(arrivals, None)
            except TimeoutError:
                if loop.time() >= self.deadline:
                    raise GatewayError(504, "The answer took longer than the "
                                       f"{self.settings.llm_request_timeout_s:.0f} s allowed "
                                       "for one request.", "deadline") from None
                log.warning("stream from %s stalled", r.backend)
                raise GatewayError(502, "The language model backend stopped mid-answer.",
                                   "stalled") from None
            except httpx.HTTPError:
                log.warning("stream from %s broke", r.backend)
                raise GatewayError(502, "The language model backend stopped mid-answer.",
                                   "upstream_broken") from None
            if events is None:
                return
            out = [event for event in map(self._relayed, events) if event is not None]
            if out:
                yield b"".join(out)

    def _relayed(self, event: bytes) -> bytes | None:
        """One event as the caller gets it (None: not for the caller), its usage and text
        counted; bytes in, bytes out: the few numbers needed are read without parsing JSON."""
        if event.startswith(b"data:"):
            r = self.record
            if b'"usage"' in event:
                _read_usage(event, r)
                if _NO_CHOICES.search(event):
                    if not self.payload.wants_usage:
                        return None  # the usage-only chunk we asked for on the caller's behalf
                else:
                    # vLLM's per-chunk usage, asked for the ledger: OpenAI clients expect
                    # usage in the last chunk only
                    event = without_usage(event)
            if _HAS_TEXT.search(event):
                self.delivered += 1
                self.scheduler.progress(self.ticket)  # the wait estimate's clock
                if r.ttft_ms is None:
                    r.ttft_ms = (time.monotonic() - self.started) * 1000
        return event + b"\n\n"

    def _refused_by(self, upstream: Upstream, response: httpx.Response,
                    content: bytes) -> GatewayError:
        if response.status_code == 503:
            # llama-server and vLLM answer 503 while loading the model: not ready, not broken
            self.scheduler.set_state(upstream.name, STARTING)
            return GatewayError(503, "The language model is starting; retry in a moment.",
                                "backend_starting", {"Retry-After": "10"})
        if response.status_code in (400, 413, 422):
            # the backend tokenized the prompt to refuse it (longer than its context, most
            # often): that work is charged, as the prompt estimate this request reserved
            self.forwarded = True
        return upstream_error(response, content)

    def _client_too_slow(self) -> None:
        self.record.status, self.record.outcome = 408, "client_too_slow"

    # -- the end ------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Slot, budget, row: all of it without an await, so that nothing cuts it short."""
        r = self.record
        if self.ticket is not None:
            if self.ticket.backend is not None:
                self.scheduler.release(self.ticket, succeeded=r.outcome == "ok",
                                    tokens=r.completion_tokens)
            else:
                self.scheduler.withdraw(self.ticket)
        if self.upstream_response is not None and not self.upstream_response.is_closed:
            # (an answer read to its end closed itself, giving its connection back)
            self.books.spawn(self.upstream_response.aclose())
        if self.forwarded:
            # the backend read the prompt whatever happened next (llama-server sends usage
            # only at the end, so a caller who hangs up early would otherwise pay nothing)
            r.prompt_tokens = r.prompt_tokens or self.payload.prompt_estimate
            r.completion_tokens = max(r.completion_tokens, self.delivered)
        r.duration_ms = (time.monotonic() - self.started) * 1000
        if r.backend is None and self.ticket is not None:
            r.backend = self.ticket.backend
        self.tokens.settle(r.user, self.reserved, r.prompt_tokens + r.completion_tokens,
                        r.started_at)
        self.reserved = 0
        self.books.write_row(r, self.payload.text if self.payload else None)
        self.books.in_flight -= 1


class _SSEResponse(StreamingResponse):
    """An event stream whose every write must reach the caller within ``write_timeout``.

    A caller that stops reading would otherwise hold its slot for as long as it likes: the
    backend waits for us, we wait for the caller.
    """

    def __init__(self, first: bytes, life, write_timeout: float, on_timeout):
        super().__init__(life, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.first = first
        self.write_timeout = write_timeout
        self.on_timeout = on_timeout

    async def stream_response(self, send: Send) -> None:
        life = self.body_iterator
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            chunk = self.first
            while True:
                if chunk:
                    async with asyncio.timeout(self.write_timeout):
                        await send({"type": "http.response.body", "body": chunk,
                                    "more_body": True})
                chunk = await anext(life, None)
                if chunk is None:
                    break
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            self.on_timeout()
            log.warning("a caller read nothing for %.0f s: its stream is cut", self.write_timeout)
        finally:
            await life.aclose()  # runs the life's settlement if it had not ended yet


class ClientGone(Exception):
    """The caller hung up while waiting for a slot."""


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def seconds(eta: float) -> int:
    return -1 if eta == float("inf") else round(eta)


def _eta_ms(eta_s: float | None) -> float | None:
    return None if eta_s is None or eta_s == float("inf") else round(eta_s * 1000, 1)


def queue_comment(scheduler: Scheduler, ticket: Ticket, position: int) -> bytes:
    """``: queue position=3 eta_s=110``, with `` more_than_s=600`` when no number is honest
    (deep in line, or too uncertain): the wait will very likely exceed that."""
    comment = f": queue position={position} eta_s={seconds(scheduler.eta(ticket))}"
    more_than = scheduler.more_than(ticket)
    if more_than is not None:
        comment += f" more_than_s={int(more_than)}"
    return (comment + "\n\n").encode()


def _count(usage, name: str) -> int:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and value > 0 else 0


async def _sse_events(response: httpx.Response, limit: int):
    """Split an SSE byte stream into events (without their blank-line terminator), yielded as
    the list of those completed by each chunk read; an event that grows past ``limit`` bytes is
    cut, so a stream is never held whole either."""
    buffer = b""
    async for chunk in response.aiter_raw():
        buffer += chunk.replace(b"\r\n", b"\n")
        if b"\n\n" in buffer:
            *events, buffer = buffer.split(b"\n\n")
            events = [e for e in events if e]
            if events:
                yield events
        if len(buffer) > limit:
            raise GatewayError(502, f"The model sent one stream event larger than "
                               f"{_size(limit)}, the most the gateway takes.", "answer_too_large")
    if buffer.strip():
        yield [buffer]


_PROMPT_TOKENS = re.compile(rb'"prompt_tokens":\s*(\d+)')
_COMPLETION_TOKENS = re.compile(rb'"completion_tokens":\s*(\d+)')
_NO_CHOICES = re.compile(rb'"choices":\s*\[\s*\]')
_HAS_TEXT = re.compile(rb'"(?:content|text)":\s*"(?!")')


def _read_usage(event: bytes, record: RequestRecord) -> None:
    """Take the token counts of a chunk's usage (the final one, or vLLM's continuous ones)."""
    prompt, completion = _PROMPT_TOKENS.search(event), _COMPLETION_TOKENS.search(event)
    if prompt:
        record.prompt_tokens = int(prompt.group(1))
    if completion:
        record.completion_tokens = int(completion.group(1))


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n / 1024:g} KiB"


def _sse_error(error: GatewayError) -> bytes:
    return b"data: " + json.dumps(error.body).encode() + b"\n\ndata: [DONE]\n\n"
