"""Only the routes the gateway uses, in the embedded vLLM (loaded inside vLLM's own process).

vLLM checks its ``--api-key`` only under ``/v1``: ``/invocations``, ``/pause``,
``/update_weights``, ``/tokenize``, ``/collective_rpc`` and the rest answer any process on the
machine, and in the local profile as root every person's server is such a process. vLLM takes
this class with ``--middleware`` (a copy of this file is put on its ``PYTHONPATH`` by
:func:`sporthub.llm.vllm_cpu.server_environment`): it runs in vLLM's environment, so it imports
nothing of SportHub. ``/health`` and ``/metrics`` stay (vLLM serves them without a key anyway; the
launcher waits on the first, the vLLM tier reads the second).
"""

import json

SERVED = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/models", "/health",
                    "/metrics"})
_GONE = json.dumps({"error": {"message": "Not served here: only the SportHub gateway's routes.",
                              "type": "not_found_error", "code": 404}}).encode()


class OnlyGatewayRoutes:
    """A pure ASGI middleware: any other path is a 404 before vLLM sees it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and scope["path"] not in SERVED:
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "http" and scope["path"] not in SERVED:
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(_GONE)).encode())]})
            await send({"type": "http.response.body", "body": _GONE})
            return
        await self.app(scope, receive, send)
