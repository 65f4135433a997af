"""The gateway's contract with its backend, run against both real engines: llama-server (the small
embedded default) and vLLM on the CPU (what production runs on its GPU, same flags).

A slow tier (marker ``vllm``, ``make test-vllm``): each backend gets a whole stack of its own, as
``SPORTHUB_EMBEDDED_BACKEND=<kind> make up`` starts it. vLLM needs about 4 GB of memory and a minute
to start; the stack, and so vLLM, is stopped when the backend's tests end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.test_walking_skeleton import JUPYTERNAUT, chat
from tests.support.stack import HubClient, make_stack

pytestmark = [pytest.mark.vllm, pytest.mark.stack]

MODEL = "smollm2-135m-instruct"
CAP = 200  # SPORTHUB_LLM_MAX_TOKENS of these stacks
METRIC_NAMES = Path(__file__).resolve().parents[2] / "deploy" / "metrics" / "vllm-metric-names.txt"
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


class Contract:
    """One stack on one backend kind, a user of the LLM, and every answer the tests were given."""

    def __init__(self, kind: str, stack, admin: HubClient, token: str):
        self.kind, self.stack, self.admin, self.token = kind, stack, admin, token
        self.seen: list[str] = []

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post(self, body: dict, endpoint: str = "chat/completions") -> httpx.Response:
        response = httpx.post(f"{self.stack.gateway}/v1/{endpoint}", json=body,
                              headers=self.headers, timeout=300)
        self.seen.append(response.text + json.dumps(dict(response.headers)))
        return response

    def stream(self, body: dict, stop_after: int | None = None, during=None) -> list[dict]:
        """The stream's ``data:`` events as JSON; ``stop_after`` content chunks closes it early,
        ``during`` runs once after the first content chunk (to kill the backend)."""
        events, content = [], 0
        with httpx.stream("POST", f"{self.stack.gateway}/v1/chat/completions",
                          json={**body, "stream": True}, headers=self.headers,
                          timeout=300) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                self.seen.append(line)
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                events.append(event)
                if _text([event]):
                    content += 1
                    if content == 1 and during:
                        during()
                    if stop_after and content >= stop_after:
                        break
        return events

    def ledger_after(self, before: int, timeout: float = 30) -> list[dict]:
        """The rows written since ``before``, waiting for a cut stream's row to land."""
        deadline = time.monotonic() + timeout
        while len(rows := self.stack.ledger_rows()) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        return rows[before:]

    def running(self) -> float:
        """The gateway's busy slots on the embedded backend, from its Prometheus metrics."""
        metrics = httpx.get(f"{self.stack.gateway}/metrics", timeout=30,
                            headers={"Authorization": f"Bearer {self.admin.token}"}).text
        line = next(m for m in metrics.splitlines()
                    if m.startswith('sporthub_llm_running{backend="embedded"}'))
        return float(line.split()[-1])


@pytest.fixture(scope="module", params=["llama-server", "vllm"])
def backend(request, tmp_path_factory):
    kind = request.param
    # vLLM on 2 loaded CPU cores takes over a minute to prefill Jupyternaut's tool-laden prompt
    # before its first byte, which the gateway's default stall limit (60 s, sized for a GPU)
    # cuts off as a stalled backend
    stack = make_stack(tmp_path_factory.mktemp(f"contract-{kind}"), embedded_backend=kind,
                       llm_max_tokens=str(CAP), llm_stall_timeout_s="300")
    try:
        stack.start(timeout=600)
        admin = HubClient.admin(stack)
        assert admin.api("POST", "/users/runner").status_code == 201
        response = admin.api("POST", "/groups/athletes/users", json={"users": ["runner"]})
        assert response.status_code == 200, response.text
        yield Contract(kind, stack, admin, admin.new_token("runner", note="contract"))
    finally:
        if stack.proc is not None and stack.proc.poll() is None:
            stack.descendants = stack.processes()
            alive = stack.stop()
            # vLLM holds 3.5 GB: nothing of it may outlive its stack
            assert alive == [], [p.cmdline() for p in alive]


def _text(events: list[dict]) -> str:
    return "".join((c.get("delta") or {}).get("content") or ""
                   for e in events for c in e.get("choices") or [])


def _ask(text: str, **fields) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **fields}


def test_a_whole_answer_comes_back_with_its_usage_and_one_ledger_row(backend):
    before = len(backend.stack.ledger_rows())
    response = backend.post(_ask("Name one running shoe brand.", max_tokens=24))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == MODEL and body["choices"][0]["message"]["content"].strip()
    usage = body["usage"]
    assert 0 < usage["completion_tokens"] <= 24 and usage["prompt_tokens"] > 0
    [row] = backend.ledger_after(before)
    assert (row["user"], row["outcome"], row["status"], row["stream"]) == ("runner", "ok", 200, 0)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["prompt_tokens"],
                                                                usage["completion_tokens"])


def test_a_stream_reports_usage_when_asked_and_the_ledger_counts_it(backend):
    before = len(backend.stack.ledger_rows())
    events = backend.stream(_ask("Give me one tip for a 5 km race.", max_tokens=32,
                                 stream_options={"include_usage": True}))
    assert _text(events).strip()
    # the last event is the usage-only one OpenAI clients look for
    final = events[-1]
    assert final["choices"] == [] and 0 < final["usage"]["completion_tokens"] <= 32
    # and only there, as OpenAI sends it (vLLM's per-chunk usage is the gateway's, not the caller's)
    assert not [e for e in events[:-1] if e.get("usage")], events[:3]
    [row] = backend.ledger_after(before)
    assert row["outcome"] == "ok" and row["stream"] == 1
    assert row["completion_tokens"] == final["usage"]["completion_tokens"]
    assert row["prompt_tokens"] == final["usage"]["prompt_tokens"]
    assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["duration_ms"]


def test_a_stream_that_did_not_ask_for_usage_gets_none(backend):
    events = backend.stream(_ask("Say hello to a runner.", max_tokens=16))
    assert _text(events).strip()
    # the gateway asks the backend for usage (and vLLM's per-chunk usage) for its own ledger
    assert not [e for e in events if e.get("usage")], events[-3:]


def test_a_stream_the_client_cuts_short_is_counted_and_frees_its_slot(backend):
    before = len(backend.stack.ledger_rows())
    events = backend.stream(_ask("Write a long story about a marathon.", max_tokens=CAP),
                            stop_after=3)
    assert len(events) >= 3
    [row] = backend.ledger_after(before)
    assert row["outcome"] == "cancelled" and row["status"] == 499
    assert 3 <= row["completion_tokens"] < CAP
    # vLLM's continuous usage counts the prompt too; llama-server sends usage only at the end, so
    # the gateway counts the chunks it relayed and the prompt is not known
    if backend.kind == "vllm":
        assert row["prompt_tokens"] > 0
    deadline = time.monotonic() + 30
    while backend.running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert backend.running() == 0


def test_a_prompt_longer_than_the_context_is_refused_as_openai_does(backend):
    before = len(backend.stack.ledger_rows())
    # about 6,000 tokens: under the gateway's character limit, over the backend's 4,096 context
    long_prompt = " ".join(f"lap {i} split" for i in range(2000))
    for stream in (False, True):
        response = backend.post(_ask(long_prompt, stream=stream))
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "context" in error["message"].lower(), error
    rows = backend.ledger_after(before)
    assert [(r["status"], r["completion_tokens"]) for r in rows] == [(400, 0), (400, 0)]
    assert backend.running() == 0


def test_parameters_the_backend_rejects_come_back_as_400(backend):
    # the gateway forwards response_format as it is; both engines refuse an unknown type, and the
    # gateway passes their 400 and message on
    response = backend.post(_ask("hi", max_tokens=8, response_format={"type": "nonsense"}))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert backend.running() == 0


def test_max_tokens_is_capped_by_the_gateway(backend):
    over = backend.post(_ask("hi", max_tokens=CAP + 1))
    assert over.status_code == 400 and over.json()["error"]["code"] == "max_tokens_too_large"
    # no max_tokens: the cap is the answer's length
    response = backend.post(_ask("Write a long story about a marathon, in many chapters."))
    assert response.status_code == 200, response.text
    body = response.json()
    tokens, finish = body["usage"]["completion_tokens"], body["choices"][0]["finish_reason"]
    assert 0 < tokens <= CAP and finish in ("length", "stop")
    assert (finish == "length") == (tokens == CAP)


def test_tools_reach_a_backend_that_supports_them(backend):
    response = backend.post(_ask("What is the weather in Oslo?", max_tokens=64, tools=[TOOL],
                                 tool_choice={"type": "function",
                                              "function": {"name": "get_weather"}}))
    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    if backend.kind == "vllm":
        # vLLM: supports_tools, so the named tool is called (this tiny model's arguments are JSON,
        # though not always the object the schema asks for)
        [call] = message["tool_calls"]
        assert call["type"] == "function" and call["function"]["name"] == "get_weather"
        json.loads(call["function"]["arguments"])
    else:
        # llama-server's model cannot call tools: the gateway drops them, a plain answer comes
        assert not message.get("tool_calls") and message["content"].strip()


# Jupyternaut's prompt is ~3,700 tokens (its tools' instructions): minutes on a CPU that other
# stacks share, so more time than the default
@pytest.mark.timeout(1200)
def test_jupyternaut_answers_with_its_tools_enabled(backend):
    _start_server(backend.admin, "runner")
    before = len(backend.stack.ledger_rows())
    replies = asyncio.run(chat(backend.stack, "runner", backend.token,
                               "Give me one tip for a 5 km race.", persona=JUPYTERNAUT,
                               timeout=780))
    assert replies and replies[-1]["body"].strip(), replies
    rows = backend.ledger_after(before)
    assert rows and all(r["user"] == "runner" and r["outcome"] == "ok" for r in rows)


def test_the_metrics_dashboards_rely_on_exist(backend):
    gateway = httpx.get(f"{backend.stack.gateway}/metrics", timeout=30,
                        headers={"Authorization": f"Bearer {backend.admin.token}"})
    assert gateway.status_code == 200
    assert 'sporthub_llm_backend_up{backend="embedded"} 1.0' in gateway.text
    if backend.kind == "vllm":
        # production's Prometheus scrapes vLLM itself: the names deploy/ uses must be real ones
        names = [line.strip() for line in METRIC_NAMES.read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        scraped = httpx.get(f"{backend.stack.llm_url}/metrics", timeout=30)
        # /metrics needs no key (vLLM's design): the backend listens on loopback only
        assert scraped.status_code == 200
        present = _metric_names(scraped.text)
        assert len(names) >= 7 and not [n for n in names if n not in present]


def _metric_names(exposition: str) -> set[str]:
    """Sample names and their family names (a histogram's ``_bucket`` belongs to its family)."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            names.add(name)
            for suffix in ("_bucket", "_sum", "_count", "_total", "_created"):
                names.add(name.removesuffix(suffix))
    return names


def test_the_backend_key_never_leaves_the_gateway(backend):
    stack = backend.stack
    key = (stack.data_dir / "secrets" / "embedded-llm-key").read_text().strip()
    assert len(key) >= 24
    direct = httpx.get(f"{stack.llm_url}/v1/models", headers=backend.headers)
    assert direct.status_code == 401
    assert backend.seen and not [s for s in backend.seen if key in s]
    assert key not in stack.log()
    for path in stack.data_dir.rglob("*"):
        if path.is_file() and path.name != "embedded-llm-key" and path.suffix in (".jsonl", ".log"):
            assert key not in path.read_text(errors="replace"), path
    for process in stack.processes():
        try:
            assert key not in " ".join(process.cmdline()), process.cmdline()
            if "jupyterhub-singleuser" in " ".join(process.cmdline()):
                assert key not in json.dumps(process.environ())
        except psutil.NoSuchProcess:
            pass


def test_a_backend_killed_mid_stream_ends_the_stream_with_an_error(backend):
    """Last: it kills the stack's backend."""
    before = len(backend.stack.ledger_rows())
    engine = _engine_process(backend)
    events = backend.stream(_ask("Write a long story about a marathon.", max_tokens=CAP),
                            during=lambda: _kill(engine))
    assert _text(events), "the stream was killed before it began"
    assert "error" in events[-1], events[-3:]
    assert events[-1]["error"]["code"] == "upstream_broken"
    [row] = backend.ledger_after(before)
    assert row["outcome"] == "upstream_broken" and row["status"] == 502
    assert 0 < row["completion_tokens"] < CAP
    assert backend.running() == 0


def _start_server(admin: HubClient, user: str, attempts: int = 3) -> None:
    """Start the user's JupyterLab, again if the hub gave up on it: on a machine this loaded,
    importing Jupyter AI can outlast the hub's 30 s wait for a new server (Spawner.http_timeout);
    a later start finds the imports cached. The test is about the chat, not the spawn."""
    for attempt in range(attempts):
        try:
            admin.start_server(user, timeout=90)
            return
        except TimeoutError:
            if attempt == attempts - 1:
                raise
            admin.api("DELETE", f"/users/{user}/server")
            time.sleep(5)


def _engine_process(backend) -> psutil.Process:
    marker = "vllm.entrypoints.openai.api_server" if backend.kind == "vllm" else "llama-server"
    return next(p for p in backend.stack.processes()
                if marker in " ".join(p.cmdline()) and "sporthub.llm" not in " ".join(p.cmdline()))


def _kill(process: psutil.Process) -> None:
    """All of the engine at once, as a crash or the OOM killer would."""
    if process.pid == os.getpgid(process.pid):
        os.killpg(process.pid, signal.SIGKILL)  # vLLM: its API server and engine process
    else:
        process.kill()
