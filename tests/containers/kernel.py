"""Run Python inside a person's JupyterLab through Jupyter's own REST and websocket API."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid

import httpx
import websockets


async def run(base_url: str, user: str, token: str, code: str, timeout: float = 120,
              tls: ssl.SSLContext | None = None) -> str:
    """Execute ``code`` in a new kernel of ``user``'s server; return what it printed.

    ``tls``: the CA to trust for an https ``base_url`` (the compose tier's Caddy).
    An exception in the kernel raises here with the kernel's traceback."""
    headers = {"Authorization": f"token {token}"}
    api = f"{base_url}/user/{user}/api/kernels"
    secure = {"ssl": tls} if tls is not None else {}
    async with httpx.AsyncClient(headers=headers, timeout=60, verify=tls or True) as http:
        response = await http.post(api, json={"name": "python3"})
        response.raise_for_status()
        kernel = response.json()["id"]
        try:
            ws_url = f"{api.replace('http', 'ws', 1)}/{kernel}/channels"
            # the handshake waits for the kernel to start, slow on a busy machine
            async with websockets.connect(ws_url, additional_headers=headers, max_size=None,
                                          open_timeout=120, **secure) as ws:
                return await _execute(ws, user, code, timeout)
        finally:
            await http.delete(f"{api}/{kernel}")


async def _execute(ws, user: str, code: str, timeout: float) -> str:
    msg_id = uuid.uuid4().hex
    await ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    out, error = [], None
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                error = "\n".join(content["traceback"])
            elif kind == "status" and content["execution_state"] == "idle":
                break
    if error:
        raise RuntimeError(f"the kernel raised:\n{error}")
    return "".join(out)
