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

QUEUE_COMMENT = re.compile(r"^: queue position=(\d+) eta_s=(-?\d+)")


class GatewayRefused(Exception):
    """The gateway said no (over budget, too many requests, no model): its message is for people."""


@dataclass(frozen=True)
class Place:
    position: int
    eta_s: int

    def describe(self) -> str:
        """E.g. "3rd in line, about 2 min"."""
        if self.eta_s < 0:
            wait = "waiting for the model to come back"
        elif self.eta_s < 60:
            wait = f"about {max(self.eta_s, 1)} s"
        else:
            wait = f"about {round(self.eta_s / 60)} min"
        return f"{ordinal(self.position)} in line, {wait}"


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
    async with httpx.AsyncClient(timeout=httpx.Timeout(600, connect=10)) as client, \
            client.stream("POST", f"{base_url.rstrip('/')}/chat/completions", json=payload,
                          headers={"Authorization": f"Bearer {api_key}"}) as response:
        if response.status_code != 200:
            raise GatewayRefused(_error_message(await response.aread(), response.status_code))
        async for line in response.aiter_lines():
            place = QUEUE_COMMENT.match(line)
            if place:
                on_queue(Place(int(place.group(1)), int(place.group(2))))
                continue
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if "error" in chunk:
                raise GatewayRefused(chunk["error"].get("message", "The assistant failed."))
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text


def _error_message(body: bytes, status: int) -> str:
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"The assistant is not available right now (HTTP {status})."
