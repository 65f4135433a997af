"""End to end: a user chats with the real model from JupyterLab, through the hub and the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
import websockets

from tests.support.stack import SPORTHUB, HubClient, make_stack

JUPYTERNAUT = "jupyter-ai-personas::jupyter_ai_jupyternaut::JupyternautPersona"
COACH = "jupyter-ai-personas::sporthub_coach::CoachPersona"
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def alice(admin):
    """A user made through the hub's REST API, in group athletes (which grants the LLM), with a
    running JupyterLab."""
    assert admin.api("POST", "/users/alice").status_code == 201
    response = admin.api("POST", "/groups/athletes/users", json={"users": ["alice"]})
    assert response.status_code == 200, response.text
    admin.start_server("alice")
    return admin.new_token("alice", note="alice's notebook")


@pytest.mark.stack
def test_login_form_refuses_a_wrong_password_and_admits_the_admin(stack):
    wrong = HubClient(stack)
    assert wrong.login(stack.admin_user, "not-the-password").status_code == 403
    assert wrong.http.get("/hub/admin").url.path == "/hub/login"
    right = HubClient(stack)
    assert right.login(stack.admin_user, stack.admin_password).status_code == 302
    admin_page = right.http.get("/hub/admin")
    assert admin_page.status_code == 200 and admin_page.url.path == "/hub/admin"


async def chat(stack, user: str, token: str, text: str, persona: str = JUPYTERNAUT,
               chat_file: str = "coach.chat", timeout: float = 180) -> list[dict]:
    """Send a message to a persona over Jupyter AI's chat websocket; return its message frames."""
    url = f"ws://127.0.0.1:{stack.env['SPORTHUB_PORT']}/user/{user}/api/chat/ws/{chat_file}"
    replies = []
    async with websockets.connect(url, additional_headers={"Authorization": f"token {token}"},
                                  max_size=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["action"] == "connection"
        await ws.send(json.dumps({
            "type": "client", "action": "send", "id": str(uuid.uuid4()),
            "body": text,
            "metadata": {"to_persona": persona},
        }))
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await ws.recv())
                if frame["action"] == "message" and frame["message"]["sender"] == persona:
                    replies.append(frame["message"])
                if frame["action"] == "writing" and not frame["state"] and replies:
                    return replies


@pytest.mark.stack
def test_chat_in_jupyterlab_gets_a_streamed_answer_from_the_real_model(stack, admin, alice):
    before = len(stack.ledger_rows())
    replies = asyncio.run(chat(stack, "alice", alice, "Give me one tip for a 5 km race."))
    # Jupyternaut streams: the same message arrives again and again as it grows
    assert len(replies) >= 2
    answer = replies[-1]["body"]
    assert answer.strip(), replies[-1]
    saved = httpx.get(f"{stack.url}/user/alice/api/contents/coach.chat?content=1",
                      headers={"Authorization": f"token {alice}"}).json()["content"]
    saved_replies = [m["body"] for m in json.loads(saved)["messages"] if m["sender"] == JUPYTERNAUT]
    assert saved_replies == [answer]

    rows = stack.ledger_rows()[before:]
    assert rows, "the gateway recorded no chat request"
    assert {r["user"] for r in rows} == {"alice"}
    assert all(r["outcome"] == "ok" and r["completion_tokens"] > 0 for r in rows)
    assert all(r["backend"] == "embedded" and r["model"] == MODEL for r in rows)


@pytest.mark.stack
def test_the_coach_is_the_default_persona_and_answers_through_the_gateway(stack, alice):
    lab = httpx.get(f"{stack.url}/user/alice/lab", headers={"Authorization": f"token {alice}"})
    assert lab.status_code == 200
    # JupyterLab addresses new messages to this persona unless the person picks another
    assert f'"jupyter_ai_default_persona": "{COACH}"' in lab.text
    before = len(stack.ledger_rows())
    replies = asyncio.run(chat(stack, "alice", alice, "How should I pace a 10 km race?",
                               persona=COACH, chat_file="athlete.chat"))
    assert len(replies) >= 2 and replies[-1]["body"].strip()
    rows = stack.ledger_rows()[before:]
    assert [(r["user"], r["outcome"], r["stream"]) for r in rows] == [("alice", "ok", 1)]


@pytest.mark.stack
def test_streaming_request_reports_usage_and_is_recorded_once(stack, alice):
    request_body = {"model": MODEL, "stream": True, "max_tokens": 24,
                    "messages": [{"role": "user", "content": "Name a running shoe brand."}]}
    before = len(stack.ledger_rows())
    chunks = []
    with httpx.stream("POST", f"{stack.gateway}/v1/chat/completions", json=request_body,
                      headers={"Authorization": f"Bearer {alice}"}, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len(chunks) > 2 and text.strip()
    # the caller did not ask for usage, so the usage chunk the gateway asked for is not relayed
    assert not any(c.get("usage") for c in chunks)
    rows = stack.ledger_rows()
    assert len(rows) == before + 1
    row = rows[-1]
    assert row["user"] == "alice" and row["stream"] and row["outcome"] == "ok"
    assert 0 < row["completion_tokens"] <= 24 and row["prompt_tokens"] > 0
    assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["duration_ms"]


@pytest.mark.stack
def test_tools_are_dropped_for_a_backend_without_tool_support(stack, alice):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    response = httpx.post(f"{stack.gateway}/v1/chat/completions", timeout=60,
                          headers={"Authorization": f"Bearer {alice}"}, json={
                              "model": MODEL, "max_tokens": 16, "tools": [tool],
                              "tool_choice": "auto",
                              "messages": [{"role": "user", "content": "Weather in Oslo?"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] > 0


@pytest.mark.stack
def test_the_backend_refuses_user_tokens_so_only_the_gateway_reaches_it(stack, alice):
    direct = httpx.get(f"{stack.llm_url}/v1/models", headers={"Authorization": f"Bearer {alice}"})
    assert direct.status_code == 401
    via_gateway = httpx.get(f"{stack.gateway}/v1/models",
                            headers={"Authorization": f"Bearer {alice}"})
    assert via_gateway.status_code == 200
    assert [m["id"] for m in via_gateway.json()["data"]] == [MODEL]


@pytest.mark.stack
@pytest.mark.parametrize("endpoint", ["models", "chat/completions"])
def test_gateway_refuses_callers_without_a_valid_token(stack, admin, alice, endpoint):
    url = f"{stack.gateway}/v1/{endpoint}"
    method = "GET" if endpoint == "models" else "POST"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    no_scope = admin.new_token("alice", scopes=["read:users:name!user=alice"])
    cases = {
        401: [{}, {"Authorization": "Bearer not-a-real-token"}, {"Authorization": "Basic eDp5"}],
        403: [{"Authorization": f"Bearer {no_scope}"}],
    }
    before = len(stack.ledger_rows())
    for status, headers_list in cases.items():
        for headers in headers_list:
            response = httpx.request(method, url, json=body, headers=headers)
            assert response.status_code == status, (headers, response.text)
            error = response.json()["error"]
            assert error["message"] and error["type"] and error["code"]
    assert len(stack.ledger_rows()) == before, "refused calls must not reach the ledger"


@pytest.mark.stack
@pytest.mark.parametrize("raw, code", [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "invalid_body"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(), "missing_model"),
    (json.dumps({"model": MODEL, "messages": []}).encode(), "invalid_messages"),
])
def test_gateway_answers_400_to_malformed_bodies(stack, alice, raw, code):
    response = httpx.post(f"{stack.gateway}/v1/chat/completions", content=raw,
                          headers={"Authorization": f"Bearer {alice}",
                                   "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


@pytest.mark.stack
def test_unknown_model_and_unknown_paths_give_404(stack, alice):
    headers = {"Authorization": f"Bearer {alice}"}
    response = httpx.post(f"{stack.gateway}/v1/chat/completions", headers=headers,
                          json={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404 and MODEL in response.json()["error"]["message"]
    for path in ("/invocations", "/v1/embeddings", "/props", "/slots"):
        response = httpx.post(f"{stack.gateway}{path}", headers=headers, json={})
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_a_bad_setting_is_named_in_the_error(tmp_path):
    result = subprocess.run([str(SPORTHUB), "up"], cwd=tmp_path, check=False, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "SPORTHUB_PORT": "eighty",
                                 "HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 2
    assert "SPORTHUB_PORT" in result.stderr and "integer" in result.stderr


# Ctrl-C on `make up` ends everything within this: a stack that hangs is a bug, not slowness
STOP_WITHIN_S = 10


@pytest.mark.stack
def test_ctrl_c_stops_the_whole_stack_quickly_and_leaves_no_process_behind(tmp_path):
    stack = make_stack(tmp_path)
    stack.session = True  # a process group of its own, as `make up` has in a terminal
    stack.start()
    admin = HubClient.admin(stack)
    admin.start_server(stack.admin_user)
    processes = stack.processes()
    names = " ".join(" ".join(p.cmdline()) for p in processes)
    assert "llama-server" in names and "sporthub.gateway" in names
    assert "configurable-http-proxy" in names and "jupyterhub-singleuser" in names
    assert "sporthub.usage" in names and "sporthub.hub.culler" in names
    stack.descendants = processes
    # Ctrl-C in the terminal: SIGINT to the whole process group
    seconds, alive = stack.interrupt(timeout=STOP_WITHIN_S)
    left = [" ".join(p.cmdline()[:3]) for p in alive if p.is_running()]
    for process in alive:  # a failed run leaves nothing behind either
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    assert alive == [], f"still running {seconds:.1f} s after Ctrl-C: {'; '.join(left)}"
    assert stack.proc.returncode == 0
    assert "Cleaning up PID file" in stack.log()  # the hub shut down, it was not killed


@pytest.mark.stack
def test_jupyter_ai_mcp_server_does_not_listen_on_a_shared_port(stack, admin, alice):
    process = next(p for p in psutil.process_iter(["cmdline"])
                   if "jupyterhub-singleuser" in " ".join(p.info["cmdline"] or [])
                   and p.environ().get("JUPYTERHUB_USER") == "alice")
    own_port = urlsplit(process.environ()["JUPYTERHUB_SERVICE_URL"]).port
    listening = {c.laddr.port for c in process.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN}
    # only JupyterLab's own port: no MCP server (by default unauthenticated on 3001)
    assert listening == {own_port}
