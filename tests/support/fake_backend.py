"""A controllable OpenAI-compatible backend on a real socket, for tests where timing matters.

It speaks vLLM's protocol (bearer key, SSE chunks, a usage chunk when asked, continuous usage
stats) but its behaviour is set by the last user message, e.g. ``"tokens=5 delay=0.2"``: five
one-token chunks, 0.2 s apart. ``"fail"`` answers 500, ``"break"`` cuts the stream mid-way,
``"endusage"`` reports usage only at the end (like llama-server), ``"nousage"`` never, ``pad=N``
adds N bytes to every chunk (or to the answer), ``"hold"`` keeps its slot until the test calls :meth:`release` (so a
test can line requests up behind it without racing a clock). While ``loading`` is set it answers every request 503 "Loading
model", as llama-server does while it loads. Every request it served is kept in ``served``
(arrival order), for ordering assertions.

``python -m tests.support.fake_backend PORT`` runs it as a process of its own (to be killed in fault
tests).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.support.stack import free_port

KEY = "fake-backend-key"
MODEL = "slow"
TIMED_MODEL = "timed"  # a second model, so one test owns its service-time estimate


def _instructions(body: dict) -> dict:
    text = body["messages"][-1]["content"] if "messages" in body else body.get("prompt", "")
    words = dict(w.split("=", 1) for w in str(text).split() if "=" in w)
    flags = set(str(text).split())
    return {"tokens": int(words.get("tokens", 3)), "delay": float(words.get("delay", 0.01)),
            "tag": words.get("tag", ""), "fail": "fail" in flags, "break": "break" in flags,
            "endusage": "endusage" in flags, "nousage": "nousage" in flags, "hold": "hold" in flags,
            "pad": int(words.get("pad", 0)), "prompt_tokens": len(str(text).split())}


LOADING = JSONResponse({"error": {"code": 503, "message": "Loading model",
                                  "type": "unavailable_error"}}, status_code=503)


class FakeBackend:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.served: list[dict] = []
        self.active = 0
        self.max_active = 0
        self.loading = False
        self.released = threading.Event()
        app = Starlette(routes=[
            Route("/v1/models", self.models),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.chat, methods=["POST"]),
            Route("/invocations", self.forbidden, methods=["POST"]),
            Route("/pause", self.forbidden, methods=["POST"]),
        ])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> FakeBackend:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def hold(self) -> None:
        """From now on, requests that say ``hold`` keep their slot until :meth:`release`."""
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    async def _held(self, how: dict) -> None:
        while how["hold"] and not self.released.is_set():
            await asyncio.sleep(0.02)

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {KEY}"

    async def models(self, request: Request):
        if self.loading:
            return LOADING
        if not self._authorized(request):
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model"}
                                                        for m in (MODEL, TIMED_MODEL)]})

    async def forbidden(self, request: Request):
        self.served.append({"path": request.url.path})
        return JSONResponse({"ok": "this must never be reached through the gateway"})

    async def chat(self, request: Request):
        if self.loading:
            return LOADING
        if not self._authorized(request):
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        body = await request.json()
        how = _instructions(body)
        self.served.append({"tag": how["tag"], "body": body, "at": time.monotonic()})
        if "prompt" in body:  # /v1/completions
            how["completions"] = True
        if how["fail"]:
            return JSONResponse({"error": {"message": "backend exploded"}}, status_code=500)
        usage = {"prompt_tokens": how["prompt_tokens"], "completion_tokens": how["tokens"],
                 "total_tokens": how["prompt_tokens"] + how["tokens"]}
        if not body.get("stream"):
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                await self._held(how)
                await asyncio.sleep(how["delay"] * how["tokens"])
            finally:
                self.active -= 1
            answer = {"id": "x", "object": "chat.completion", "model": MODEL,
                      "choices": [{"index": 0, "message": {
                          "role": "assistant", "content": "tok " * how["tokens"]},
                          "finish_reason": "stop"}]}
            if how["pad"]:  # like logprobs: an answer far larger than its text
                answer["pad"] = "x" * how["pad"]
            if not how["nousage"]:
                answer["usage"] = usage
            return JSONResponse(answer)
        options = body.get("stream_options") or {}
        return StreamingResponse(self._stream(how, options), media_type="text/event-stream")

    async def _stream(self, how: dict, options: dict):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self._held(how)
            for i in range(how["tokens"]):
                await asyncio.sleep(how["delay"])
                if how["break"] and i == how["tokens"] // 2:
                    raise RuntimeError("stream broken on purpose")
                chunk = {"id": "x", "object": "chat.completion.chunk", "model": MODEL,
                         "choices": [{"index": 0, "delta": {"content": "tok "}}]}
                if how["pad"]:
                    chunk["pad"] = "x" * how["pad"]
                if options.get("continuous_usage_stats") and not (how["endusage"]
                                                                   or how["nousage"]):
                    chunk["usage"] = {"prompt_tokens": how["prompt_tokens"],
                                      "completion_tokens": i + 1}
                yield f"data: {json.dumps(chunk)}\n\n"
            if options.get("include_usage") and not how["nousage"]:
                usage = {"prompt_tokens": how["prompt_tokens"],
                         "completion_tokens": how["tokens"]}
                yield f"data: {json.dumps({'id': 'x', 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            self.active -= 1


if __name__ == "__main__":
    import sys

    fake = FakeBackend(int(sys.argv[1]))
    fake.server.run()
