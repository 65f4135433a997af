"""Streaming chat with the SportHub gateway, hearing the queue comments it sends while we wait.

The gateway speaks the OpenAI API and, while a request waits for the shared model, sends SSE
comment lines ``: queue position=<n> eta_s=<s>``. OpenAI clients drop those; we read them so the
person sees "3rd in line, about 2 minutes" instead of a silent spinner.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx

QUEUE_COMMENT = re.compile(r"^: queue position=(\d+) eta_s=(-?\d+)(?: more_than_s=(\d+))?")


class GatewayRefused(Exception):
    """The gateway said no, or could not be reached: its error code says what a person can do.

    ``code`` is the gateway's OpenAI-style error code (``budget_exhausted``,
    ``upstream_unavailable``, ...), ``retry_after_s`` its Retry-After hint; the Coach turns them
    into a plain sentence (messages.refusal), never showing the raw message or a status code.
    """

    def __init__(self, code: str | None, status: int | None = None,
                 retry_after_s: float | None = None):
        super().__init__(code or f"status {status}")
        self.code = code
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Place:
    position: int
    eta_s: int
    # the gateway's lower bound when no number is honest (deep in line, or too uncertain)
    more_than_s: int | None = None

    def describe(self, lang: str = "en") -> str:
        """E.g. "3rd in line, about 2 min" / "3-й в очереди, примерно 2 мин"; "12th in line,
        more than 5 minutes" / "12-й в очереди, больше 5 минут" when a number would be a guess."""
        ru = lang == "ru"
        if self.more_than_s is not None and self.more_than_s >= 60:
            wait = more_than_minutes(self.more_than_s // 60, lang)
        elif self.eta_s < 0:
            wait = "ждём, пока модель вернётся" if ru else "waiting for the model to come back"
        elif self.eta_s < 60:
            wait = (f"примерно {max(self.eta_s, 1)} с" if ru
                    else f"about {max(self.eta_s, 1)} s")
        else:
            wait = (f"примерно {round(self.eta_s / 60)} мин" if ru
                    else f"about {round(self.eta_s / 60)} min")
        place = f"{self.position}-й в очереди" if ru else f"{ordinal(self.position)} in line"
        return f"{place}, {wait}"


def more_than_minutes(n: int, lang: str = "en") -> str:
    """"more than 1 minute", "больше 1 минуты", "больше 2 минут", "больше 21 минуты": after
    "больше" Russian takes the genitive (singular for 1, 21, 31 but not 11; plural otherwise)."""
    if lang == "ru":
        word = "минуты" if n % 10 == 1 and n % 100 != 11 else "минут"
        return f"больше {n} {word}"
    return f"more than {n} {'minute' if n == 1 else 'minutes'}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


async def stream_chat(messages: list[dict], on_queue: Callable[[Place], None],
                      base_url: str | None = None, api_key: str | None = None,
                      model: str | None = None, max_tokens: int | None = None,
                      frequency_penalty: float | None = None) -> AsyncIterator[str]:
    """Yield the answer's text as it arrives; report queue places to ``on_queue`` meanwhile.

    Without ``max_tokens`` the gateway's own cap bounds the answer.
    """
    base_url = base_url or os.environ["OPENAI_API_BASE"]
    api_key = api_key or os.environ["OPENAI_API_KEY"]
    model = model or os.environ["LLM_GATEWAY_MODEL"]
    payload = {"model": model, "messages": messages, "stream": True}
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    if frequency_penalty is not None:
        payload["frequency_penalty"] = frequency_penalty
    try:
        async for text in _stream(base_url, api_key, payload, on_queue):
            yield text
    except httpx.HTTPError:
        raise GatewayRefused("unreachable") from None


async def _stream(base_url: str, api_key: str, payload: dict,
                  on_queue: Callable[[Place], None]) -> AsyncIterator[str]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(600, connect=10)) as client, \
            client.stream("POST", f"{base_url.rstrip('/')}/chat/completions", json=payload,
                          headers={"Authorization": f"Bearer {api_key}"}) as response:
        if response.status_code != 200:
            raise GatewayRefused(_error_code(await response.aread()), response.status_code,
                                 _retry_after(response.headers.get("retry-after")))
        async for line in response.aiter_lines():
            place = QUEUE_COMMENT.match(line)
            if place:
                more_than = place.group(3)
                on_queue(Place(int(place.group(1)), int(place.group(2)),
                               int(more_than) if more_than else None))
                continue
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if "error" in chunk:
                raise GatewayRefused(chunk["error"].get("code") or "upstream_error")
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text


def _error_code(body: bytes) -> str | None:
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None  # not the gateway speaking (a proxy's error page): the status must do


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
