"""How much latency the SportHub LLM gateway adds, next to LiteLLM proxy, and what 500 waiting
clients cost it.

Run from the repository root with the project venv:

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 2000] [--waiting 500] [--busy 50]
        [--smoke]

``--smoke`` (``make bench-smoke``, part of ``make test-all``) runs every path a few times, without
LiteLLM (its venv is installed on a first run), so a change that breaks the benchmark is seen in
CI; its figures mean nothing.

One fast OpenAI-compatible streaming server (its own process, a real socket, canned tokens) is
called, one request at a time over HTTP/1.1 keep-alive, in shuffled interleaved rounds:

  a) directly,
  b) through the SportHub gateway, on the gateway's own port (the real stack: hub, proxy, gateway;
     a normal user's hub token),
  c) through LiteLLM proxy configured as a plain pass-through (its own venv,
     ``benchmarks/.venv-litellm``, created on the first run),
  d) through the gateway via the hub's proxy (``/services/llm/`` on the public port), for reference,
  e) through a bare Starlette + httpx pass-through (no auth, no queue, no ledger; its own process,
     uvicorn with the same options as the gateway): the floor for a Python proxy, so the
     gateway's cost is read against it rather than as an absolute time.

Time to first token (TTFT) is the first ``data:`` chunk with content; total is ``data: [DONE]``;
"end" is the end of the response body (after which the connection can take the next request).
The added latency of a path is its percentile minus the direct path's percentile.

Then a second stack whose backend has one slot: one request holds it, ``--waiting`` streaming
requests queue behind it, and the gateway's extra RSS, its CPU while they wait, and the admission
latency (request sent -> first ``: queue position=`` comment) are measured; then they drain.

The two ratios the gateway is held to, its added p50 and its CPU per request over the bare
pass-through's (targets: 1.1 and 1.5), are also given for each of ``--blocks`` equal runs of
rounds, with their medians (``median_ratio_*``): the machine's other work comes in bursts.

``--busy N`` (needs the embedded model, llama-server): N rounds of 4 streams sent at once, every
slot of the embedded model busy, directly and through the gateway; each stream's time to its first
token and to its response head, llama-server's own prompt time, and the gateway's own view from
its ledger (time in line, time from arrival to the first token relayed).

The last line printed is one JSON object; ``gateway_added_p50_ms``, ``litellm_added_p50_ms`` and
``passthrough_added_p50_ms`` are the added p50 of the total (until ``[DONE]``). Target: the gateway adds at most 1 ms at p50
and less than a third of what LiteLLM adds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import itertools
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.support.venvs import pip_install

BACKEND_KEY = "bench-backend-key"
MODEL = "fast"
LITELLM_KEY = "sk-bench-litellm-master-key"
LITELLM_VENV = REPO / "benchmarks" / ".venv-litellm"
# The project venv's version is tried first; when the package index lacks one of its pinned
# companions (litellm-proxy, litellm-enterprise, ...), this one is known to install here.
LITELLM_FALLBACK_VERSION = "1.108.7"
WORDS = ("Hello", " from", " the", " fast", " backend")
PROMPT = {"model": MODEL, "stream": True, "max_tokens": 16,
          "messages": [{"role": "user", "content": "Say hello."}]}


# -- the fast backend (runs in its own process: ``--serve-backend PORT``) ----------------------


def serve_backend(port: int) -> None:
    """A minimal OpenAI-compatible server: canned streaming chunks, no work, a bearer key.

    A request whose last message is ``hold`` waits before its first chunk until ``POST /release``
    (to occupy a gateway slot); ``GET /stats`` tells how many such requests are waiting.
    """
    import uvicorn

    release = asyncio.Event()
    stats = {"holding": 0}

    def chunk(i: int, word: str | None, usage: dict | None) -> bytes:
        delta = {} if word is None else ({"role": "assistant", "content": word} if i == 0
                                          else {"content": word})
        body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
                "model": MODEL, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": None if word else "stop"}]}
        if usage is not None:
            body["usage"] = usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    def usage(done: int) -> dict:
        return {"prompt_tokens": 9, "completion_tokens": done, "total_tokens": 9 + done}

    plain = [chunk(i, w, None) for i, w in enumerate(WORDS)] + [chunk(len(WORDS), None, None)]
    # vLLM's continuous_usage_stats: usage in every chunk (the gateway asks for it)
    continuous = ([chunk(i, w, usage(i + 1)) for i, w in enumerate(WORDS)]
                  + [chunk(len(WORDS), None, usage(len(WORDS)))])
    usage_chunk = (b"data: " + json.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                                           "created": 0, "model": MODEL, "choices": [],
                                           "usage": usage(len(WORDS))}).encode() + b"\n\n")
    models = json.dumps({"object": "list", "data": [
        {"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]}).encode()

    async def respond(send, status: int, payload: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path, method = scope["path"], scope["method"]
        if path == "/release" and method == "POST":
            release.set()
            return await respond(send, 200, b"{}")
        if path == "/stats":
            return await respond(send, 200, json.dumps(stats).encode())
        if dict(scope["headers"]).get(b"authorization") != f"Bearer {BACKEND_KEY}".encode():
            return await respond(send, 401, b'{"error": {"message": "bad key"}}')
        if path == "/v1/models":
            return await respond(send, 200, models)
        if path != "/v1/chat/completions" or method != "POST":
            return await respond(send, 404, b'{"error": {"message": "not found"}}')
        request = json.loads(body)
        options = request.get("stream_options") or {}
        if not request.get("stream"):
            return await respond(send, 200, json.dumps({
                "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": MODEL,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "".join(WORDS)}}],
                "usage": usage(len(WORDS))}).encode())
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"),
                                (b"cache-control", b"no-cache")]})
        if request["messages"][-1].get("content") == "hold":
            stats["holding"] += 1
            try:
                await asyncio.wait_for(release.wait(), 600)
            except TimeoutError:
                pass
            finally:
                stats["holding"] -= 1
        for part in continuous if options.get("continuous_usage_stats") else plain:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        if options.get("include_usage"):
            await send({"type": "http.response.body", "body": usage_chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="off")


def serve_passthrough(port: int, backend_url: str) -> None:
    """The least a Python proxy does: read the body, stream the backend's answer back."""
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    client = httpx.AsyncClient(base_url=backend_url, timeout=30)
    headers = {"Authorization": f"Bearer {BACKEND_KEY}", "Content-Type": "application/json"}

    async def forward(request):
        upstream = await client.send(client.build_request(
            "POST", "/v1/chat/completions", content=await request.body(), headers=headers),
            stream=True)
        return StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code,
                                 media_type="text/event-stream",
                                 background=BackgroundTask(upstream.aclose))

    async def models(request):
        upstream = await client.get("/v1/models", headers=headers)
        return StreamingResponse(iter([upstream.content]), media_type="application/json")

    app = Starlette(routes=[Route("/v1/chat/completions", forward, methods=["POST"]),
                            Route("/v1/models", models)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="off")


# -- processes --------------------------------------------------------------------------------


class Cleanup:
    """Stop everything started, last first, whatever happens (Ctrl-C included)."""

    def __init__(self):
        self.steps: list[tuple[str, Callable[[], object]]] = []

    def push(self, name: str, step: Callable[[], object]) -> None:
        self.steps.append((name, step))

    def run_one(self, name: str) -> None:
        for i in range(len(self.steps) - 1, -1, -1):
            if self.steps[i][0] == name:
                _, step = self.steps.pop(i)
                self._safely(name, step)
                return

    def run_all(self) -> None:
        while self.steps:
            name, step = self.steps.pop()
            self._safely(name, step)

    @staticmethod
    def _safely(name: str, step: Callable[[], object]) -> None:
        try:
            step()
        except BaseException as e:  # noqa: BLE001 - cleanup must go on
            print(f"  (cleanup of {name} failed: {type(e).__name__}: {e})", file=sys.stderr)


def terminate(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None,
              headers: dict | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode} before {url} answered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.2)


def start_backend(cleanup: Cleanup, name: str) -> str:
    from tests.support.stack import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve-backend", str(port)])
    cleanup.push(name, lambda: terminate(proc))
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/v1/models", 30, proc, {"Authorization": f"Bearer {BACKEND_KEY}"})
    return url


def start_passthrough(cleanup: Cleanup, backend_url: str) -> tuple[str, subprocess.Popen]:
    from tests.support.stack import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve-passthrough", str(port),
                             backend_url])
    cleanup.push("passthrough", lambda: terminate(proc))
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/v1/models", 30, proc)
    return url, proc


def start_stack(cleanup: Cleanup, name: str, tmp: Path, backend_url: str, **settings: str):
    """The real SportHub stack in front of the fast backend, and a normal user's token (an
    athlete's: membership of a role group is what grants the LLM scope, so the group's budget is
    raised to ``llm_tokens_per_day`` too; the athletes' own 50k would end the run with 429s)."""
    from tests.support.stack import HubClient, make_stack

    budget = int(settings["llm_tokens_per_day"])
    settings.setdefault("llm_groups", json.dumps(
        {"athletes": {"llm_tokens_per_day": budget, "llm_priority": 0}}))
    backends = json.dumps([{"name": "fast", "url": backend_url, "api_key": BACKEND_KEY,
                            "models": [MODEL], "max_concurrency": int(settings.pop("slots"))}])
    stack = make_stack(tmp / name, llm_backends=backends, **settings)

    def stop():
        if stack.proc is None:
            return
        with contextlib.suppress(Exception):
            stack.descendants = stack.processes()
        alive = stack.stop()
        for proc in alive:
            with contextlib.suppress(Exception):
                proc.kill()

    cleanup.push(name, stop)
    stack.start()
    admin = HubClient.admin(stack)
    response = admin.api("POST", "/users/bench")
    assert response.status_code == 201, response.text
    # membership of a role group is what grants the LLM scope (as in tests/gateway/test_gateway_queue.py)
    admin.api("POST", "/groups/athletes")  # 201, or 409 when it exists
    response = admin.api("POST", "/groups/athletes/users", json={"users": ["bench"]})
    assert response.status_code == 200, response.text
    token = admin.new_token("bench", note="gateway benchmark")
    return stack, token


def gateway_process(stack):
    for proc in stack.processes():
        with contextlib.suppress(Exception):
            if "sporthub.gateway" in " ".join(proc.cmdline()):
                return proc
    raise RuntimeError("no process with 'sporthub.gateway' in its command line")


# -- LiteLLM ----------------------------------------------------------------------------------


class LiteLLMMissing(Exception):
    pass


def _venv_litellm_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists() or not (venv / "bin" / "litellm").exists():
        return None
    result = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        check=False, capture_output=True, text=True)
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def ensure_litellm(venv: Path) -> tuple[str, str]:
    """LiteLLM proxy in its own venv, installed on the first run: (version, note)."""
    note_file = venv / "BENCH_NOTE.txt"
    version = _venv_litellm_version(venv)
    if version:
        return version, note_file.read_text().strip() if note_file.exists() else ""
    try:
        wanted = importlib.metadata.version("litellm")  # what Jupyter AI uses in the project venv
    except importlib.metadata.PackageNotFoundError:
        wanted = LITELLM_FALLBACK_VERSION
    print(f"LiteLLM proxy is not installed yet: creating {venv} "
          "(first run only, a few minutes) ...", flush=True)
    if not (venv / "bin" / "pip").exists():
        result = subprocess.run([sys.executable, "-m", "venv", str(venv)],
                                check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise LiteLLMMissing(f"python -m venv failed: {result.stderr.strip()[-300:]}")
    failures = []
    for candidate in dict.fromkeys([wanted, LITELLM_FALLBACK_VERSION]):
        print(f"  pip install 'litellm[proxy]=={candidate}' ...", flush=True)
        ok, tail = pip_install(venv, f"litellm[proxy]=={candidate}")
        if ok:
            note = "" if not failures else (
                f"litellm[proxy]=={wanted} (the project venv's version) is not installable "
                f"here ({failures[0]}); using {candidate}")
            note_file.write_text(note + "\n")
            return candidate, note
        reason = next((t for t in reversed(tail) if "No matching distribution" in t), tail[-1:])
        failures.append(str(reason)[:200])
        print(f"  failed: {failures[-1]}", flush=True)
    raise LiteLLMMissing("pip could not install litellm[proxy]: " + " / ".join(failures))


def start_litellm(cleanup: Cleanup, tmp: Path, venv: Path, backend_url: str):
    """LiteLLM proxy as a plain pass-through to the fast backend; returns (proc, url)."""
    from tests.support.stack import free_port

    config = tmp / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {backend_url}/v1\n"
        f"      api_key: {BACKEND_KEY}\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPORTHUB_", "DATABASE_URL", "LITELLM_", "OPENAI_"))}
    env.update({"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "DISABLE_ADMIN_UI": "True", "NO_DOCS": "True", "PYTHONUNBUFFERED": "1"})
    log = tmp / "litellm.log"
    proc = subprocess.Popen(
        [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1",
         "--port", str(port), "--num_workers", "1"],
        env=env, cwd=tmp, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    cleanup.push("litellm", lambda: terminate(proc))
    return proc, f"http://127.0.0.1:{port}", log


# -- measuring --------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def one_stream(client, url: str, headers: dict, body: bytes) -> tuple[float, float, float]:
    """(ttft, total, end) in ms of one streaming request."""
    start = time.perf_counter()
    ttft = total = None
    async with client.stream("POST", url, content=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {(await response.aread())[:300]}")
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                total = time.perf_counter()
            elif ttft is None:
                choices = json.loads(data).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    ttft = time.perf_counter()
    end = time.perf_counter()
    if ttft is None or total is None:
        raise RuntimeError(f"{url}: the stream had no content or no [DONE]")
    return (ttft - start) * 1000, (total - start) * 1000, (end - start) * 1000


def cpu_seconds(procs: list) -> float:
    """User + system CPU of these processes and their children, in seconds."""
    total = 0.0
    for proc in procs:
        with contextlib.suppress(Exception):
            for p in [proc, *proc.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
    return total


async def overhead_rounds(targets: dict[str, tuple[str, dict]], requests: int, warmup: int,
                          servers: dict[str, list] | None = None, blocks: int = 1,
                          seed: int = 1) -> dict[str, dict[str, list[float]]]:
    """The interleaved rounds; ``servers`` (name -> processes) get their CPU per request measured
    over the measured rounds, in ``results["cpu_s"]``, and over each of ``blocks`` equal runs of
    rounds, in ``results["blocks"]`` (each: the CPU seconds and the answers of each path)."""
    import httpx

    body = json.dumps(PROMPT).encode()
    clients = {name: httpx.AsyncClient(timeout=30, limits=httpx.Limits(
        max_connections=1, max_keepalive_connections=1)) for name in targets}
    results = {name: {"ttft": [], "total": [], "end": [], "errors": []} for name in targets}
    rng = random.Random(seed)
    names = list(targets)
    servers = servers or {}
    cpu_before: dict[str, float] = {}
    block_size = max(1, requests // max(1, blocks))
    marks: list[tuple[dict[str, float], dict[str, int]]] = []  # at each block's start

    def mark() -> None:
        marks.append(({name: cpu_seconds(procs) for name, procs in servers.items()},
                      {name: len(results[name]["total"]) for name in names}))

    try:
        started = time.monotonic()
        for i in range(warmup + requests):
            if i >= warmup and (i - warmup) % block_size == 0 and len(marks) < blocks:
                mark()
            if i == warmup:
                cpu_before = dict(marks[-1][0])
            rng.shuffle(names)
            for name in names:
                url, headers = targets[name]
                try:
                    ttft, total, end = await one_stream(clients[name], url, {
                        **headers, "Content-Type": "application/json"}, body)
                except Exception as e:  # counted and reported
                    results[name]["errors"].append(f"{type(e).__name__}: {e}"[:200])
                    if len(results[name]["errors"]) > max(10, requests // 50):
                        raise RuntimeError(f"too many errors on {name}: "
                                           f"{results[name]['errors'][-1]}") from e
                    continue
                if i >= warmup:
                    results[name]["ttft"].append(ttft)
                    results[name]["total"].append(total)
                    results[name]["end"].append(end)
            if i == warmup - 1:
                print(f"  warm-up done ({warmup} rounds, {time.monotonic() - started:.0f} s)",
                      flush=True)
            elif i >= warmup and (i - warmup + 1) % max(1, requests // 4) == 0:
                print(f"  {i - warmup + 1}/{requests} rounds "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
        mark()
        results["cpu_s"] = {name: marks[-1][0][name] - cpu_before.get(name, 0.0)
                            for name in servers}
        results["blocks"] = [
            {"cpu_s": {n: end[0][n] - start[0][n] for n in servers},
             "answers": {n: (start[1][n], end[1][n]) for n in names}}
            for start, end in itertools.pairwise(marks)]
    finally:
        for client in clients.values():
            await client.aclose()
    return results


async def waiting_clients(gateway_url: str, token: str, backend_url: str, proc, count: int,
                          rate: float) -> dict:
    """Hold the single slot, queue ``count`` streams behind it; memory, CPU, admission latency."""
    import httpx

    url = f"{gateway_url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps(PROMPT).encode()
    hold = json.dumps({**PROMPT, "messages": [{"role": "user", "content": "hold"}]}).encode()
    client = httpx.AsyncClient(timeout=httpx.Timeout(300, connect=30), limits=httpx.Limits(
        max_connections=count + 10, max_keepalive_connections=0))
    control = httpx.AsyncClient(timeout=30)
    admitted: list[float] = []
    outcome = {"done": 0, "errors": []}
    try:
        # warm the gateway's token, group and budget caches, and its connection to the backend
        for _ in range(20):
            await one_stream(client, url, headers, body)
        await asyncio.sleep(1.0)
        rss_before = proc.memory_info().rss
        cpu_idle = await cpu_percent(proc, 2.0)

        holder = asyncio.create_task(one_stream(client, url, headers, hold))
        while (await control.get(f"{backend_url}/stats")).json()["holding"] < 1:
            await asyncio.sleep(0.02)

        async def waiter():
            start = time.perf_counter()
            try:
                async with client.stream("POST", url, content=body, headers=headers) as response:
                    if response.status_code != 200:
                        raise RuntimeError(f"HTTP {response.status_code}")
                    async for line in response.aiter_lines():
                        if start is not None and line.startswith(": queue position="):
                            admitted.append((time.perf_counter() - start) * 1000)
                            start = None
                        elif line == "data: [DONE]":
                            outcome["done"] += 1
            except Exception as e:  # noqa: BLE001 - counted and reported
                outcome["errors"].append(f"{type(e).__name__}: {e}"[:200])

        tasks = []
        opened = time.monotonic()
        for _ in range(count):
            tasks.append(asyncio.create_task(waiter()))
            await asyncio.sleep(1 / rate)
        deadline = time.monotonic() + 60
        while len(admitted) + len(outcome["errors"]) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        all_queued_s = time.monotonic() - opened
        await asyncio.sleep(2.0)
        rss_waiting = proc.memory_info().rss
        cpu_waiting = await cpu_percent(proc, 3.0)

        released = time.monotonic()
        await control.post(f"{backend_url}/release")
        await asyncio.wait_for(holder, 60)
        _, pending = await asyncio.wait(tasks, timeout=180)
        for task in pending:
            task.cancel()
        drain_s = time.monotonic() - released
        await asyncio.sleep(2.0)
        rss_after = proc.memory_info().rss
    finally:
        await client.aclose()
        await control.aclose()
    return {"rss_before": rss_before, "rss_waiting": rss_waiting, "rss_after": rss_after,
            "cpu_idle": cpu_idle, "cpu_waiting": cpu_waiting, "admitted": admitted,
            "all_queued_s": all_queued_s, "drain_s": drain_s, "done": outcome["done"],
            "errors": outcome["errors"]}


BUSY_STREAMS = 4  # the embedded model's slots (SPORTHUB_LLM_MAX_CONCURRENCY's default)


def start_embedded_stack(cleanup: Cleanup, tmp: Path):
    """The real stack on the embedded model (llama-server + SmolLM2), one user who may use every
    slot at once; the backend's own URL and key for the direct path."""
    from tests.support.stack import HubClient, make_stack

    stack = make_stack(tmp / "busy", llm_tokens_per_day="1000000000",
                       llm_max_running_per_user=str(BUSY_STREAMS), llm_groups=json.dumps(
                           {"athletes": {"llm_tokens_per_day": 1000000000, "llm_priority": 0}}))
    cleanup.push("busy", lambda: (setattr(stack, "descendants", stack.processes()),
                                  stack.stop()))
    stack.start()
    admin = HubClient.admin(stack)
    assert admin.api("POST", "/users/bench").status_code == 201
    admin.api("POST", "/groups/athletes")
    admin.api("POST", "/groups/athletes/users", json={"users": ["bench"]})
    key = (stack.data_dir / "secrets" / "embedded-llm-key").read_text().strip()
    return stack, admin.new_token("bench", note="gateway benchmark"), key


async def busy_rounds(stack, token: str, key: str, rounds: int, gateway_proc) -> dict:
    """``rounds`` times: 4 streams sent at once (every slot busy) directly, and 4 through the
    gateway, in a shuffled order. Each stream's time to its response head and to its first
    token, and the backend's own prompt time (llama-server's ``timings.prompt_ms``); the
    gateway's CPU while its streams ran."""
    import httpx

    gateway = f"http://127.0.0.1:{stack.env['SPORTHUB_GATEWAY_PORT']}/services/llm"
    paths = {"direct": (f"{stack.llm_url}/v1/chat/completions", key),
             "gateway": (f"{gateway}/v1/chat/completions", token)}
    body = json.dumps({"model": "smollm2-135m-instruct", "stream": True, "max_tokens": 8,
                       "temperature": 0, "messages": [{"role": "user", "content":
                                                       "One tip for a 10 km race?"}]}).encode()
    clients = {name: httpx.AsyncClient(timeout=120, limits=httpx.Limits(
        max_connections=BUSY_STREAMS)) for name in paths}
    out = {name: {"head": [], "ttft": [], "first": [], "last": [], "prompt_ms": [], "errors": []}
           for name in paths}
    gateway_cpu_s = 0.0

    async def one(name: str) -> tuple[float, float, float | None]:
        url, bearer = paths[name]
        start = time.perf_counter()
        head = ttft = prompt_ms = None
        async with clients[name].stream("POST", url, content=body, headers={
                "Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}) as r:
            head = time.perf_counter()
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:200]}")
            async for line in r.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                if ttft is None and any((c.get("delta") or {}).get("content")
                                        for c in chunk.get("choices") or []):
                    ttft = time.perf_counter()
                prompt_ms = (chunk.get("timings") or {}).get("prompt_ms", prompt_ms)
        if ttft is None:
            raise RuntimeError("no content")
        return (head - start) * 1000, (ttft - start) * 1000, prompt_ms

    try:
        for name in paths:  # warm: connections, caches, the model's first run
            await asyncio.gather(*(one(name) for _ in range(BUSY_STREAMS)))
        rng = random.Random(2)
        for _ in range(rounds):
            order = list(paths)
            rng.shuffle(order)
            for name in order:
                before = cpu_seconds([gateway_proc]) if name == "gateway" else 0.0
                answers = await asyncio.gather(*(one(name) for _ in range(BUSY_STREAMS)),
                                               return_exceptions=True)
                if name == "gateway":
                    gateway_cpu_s += cpu_seconds([gateway_proc]) - before
                ok = [a for a in answers if not isinstance(a, BaseException)]
                out[name]["errors"] += [f"{type(a).__name__}: {a}"[:200] for a in answers
                                        if isinstance(a, BaseException)]
                for head, ttft, prompt_ms in ok:
                    out[name]["head"].append(head)
                    out[name]["ttft"].append(ttft)
                    if prompt_ms is not None:
                        out[name]["prompt_ms"].append(prompt_ms)
                if ok:
                    out[name]["first"].append(min(t for _, t, _ in ok))
                    out[name]["last"].append(max(t for _, t, _ in ok))
                await asyncio.sleep(0.2)  # the slots free before the other path's turn
    finally:
        for client in clients.values():
            await client.aclose()
    out["gateway_cpu_ms_per_stream"] = 1000 * gateway_cpu_s / max(1, len(out["gateway"]["ttft"]))
    return out


def report_busy(busy: dict, rows: list[dict], rounds: int) -> dict:
    """Where the first token's time goes with every slot busy; ``rows``: the gateway's ledger
    rows of these streams (its own view: ``queued_ms`` from arrival to a slot, ``ttft_ms`` from
    arrival to the first token relayed)."""
    def q(values: list[float], at: float) -> float | None:
        return round(pct(values, at), 1) if values else None

    print(f"\nevery slot busy: {rounds} rounds of {BUSY_STREAMS} streams at once on the embedded "
          "model, directly and through the gateway (ms; p10 / p50 / p90)")
    summary = {}
    for name in ("direct", "gateway"):
        b = busy[name]
        print(f"  {name:<8} TTFT {q(b['ttft'], .1)} / {q(b['ttft'], .5)} / {q(b['ttft'], .9)}"
              f"; first of 4 p50 {q(b['first'], .5)}, last of 4 p50 {q(b['last'], .5)}"
              f"; response head p50 {q(b['head'], .5)}; backend prompt_ms p50 "
              f"{q(b['prompt_ms'], .5)}; errors {len(b['errors'])}"
              + (f" e.g. {b['errors'][0]}" if b["errors"] else ""))
        summary[f"busy_{name}_ttft_p50_ms"] = q(b["ttft"], .5)
        summary[f"busy_{name}_prompt_ms_p50"] = q(b["prompt_ms"], .5)
    queued = [r["queued_ms"] for r in rows if r["queued_ms"] is not None]
    ttft = [r["ttft_ms"] for r in rows if r["ttft_ms"] is not None]
    print(f"  gateway's own view ({len(rows)} ledger rows): queued_ms p50 {q(queued, .5)} p90 "
          f"{q(queued, .9)}; ttft_ms (arrival -> first token relayed) p50 {q(ttft, .5)}; CPU "
          f"{busy['gateway_cpu_ms_per_stream']:.2f} ms per stream")
    summary["busy_gateway_queued_ms_p50"] = q(queued, .5)
    summary["busy_gateway_cpu_ms_per_stream"] = round(busy["gateway_cpu_ms_per_stream"], 2)
    return summary


async def cpu_percent(proc, seconds: float) -> float:
    before = proc.cpu_times()
    start = time.monotonic()
    await asyncio.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / (time.monotonic() - start)


# -- report -----------------------------------------------------------------------------------


LABELS = {"direct": "a) direct", "gateway": "b) SportHub gateway", "litellm": "c) LiteLLM proxy",
          "via_proxy": "d) gateway via hub proxy", "passthrough": "e) bare pass-through"}


def report_overhead(results: dict) -> dict[str, dict[str, float]]:
    print()
    print(f"{'path':<26}{'n':>6}{'TTFT p50':>10}{'TTFT p99':>10}{'total p50':>11}"
          f"{'total p99':>11}{'end p50':>9}{'end p99':>9}{'errors':>8}   (ms)")
    stats = {}
    for name, r in results.items():
        if not r["total"]:
            continue
        stats[name] = {f"{m}_{q}": pct(r[m], p) for m in ("ttft", "total", "end")
                       for q, p in (("p50", 0.5), ("p99", 0.99))}
        s = stats[name]
        print(f"{LABELS[name]:<26}{len(r['total']):>6}{s['ttft_p50']:>10.2f}{s['ttft_p99']:>10.2f}"
              f"{s['total_p50']:>11.2f}{s['total_p99']:>11.2f}{s['end_p50']:>9.2f}"
              f"{s['end_p99']:>9.2f}{len(r['errors']):>8}")
    print()
    print(f"{'added over a) direct':<26}{'':>6}{'TTFT p50':>10}{'TTFT p99':>10}{'total p50':>11}"
          f"{'total p99':>11}{'end p50':>9}{'end p99':>9}   (ms)")
    added = {}
    for name in ("gateway", "litellm", "via_proxy", "passthrough"):
        if name not in stats:
            continue
        added[name] = {k: stats[name][k] - stats["direct"][k] for k in stats[name]}
        d = added[name]
        print(f"{LABELS[name]:<26}{'':>6}{d['ttft_p50']:>+10.2f}{d['ttft_p99']:>+10.2f}"
              f"{d['total_p50']:>+11.2f}{d['total_p99']:>+11.2f}{d['end_p50']:>+9.2f}"
              f"{d['end_p99']:>+9.2f}")
    for name, r in results.items():
        if r["errors"]:
            print(f"  {LABELS[name]}: {len(r['errors'])} errors, e.g. {r['errors'][0]}")
    return added


def report_blocks(results: dict, blocks: list[dict]) -> dict:
    """The two ratios the gateway is held to (added p50 and CPU per request, each over the bare
    pass-through's) in each block of rounds, and their medians: a burst of the machine's other
    work moves one block, not the median."""
    def added(name: str, span: tuple[int, int]) -> float:
        lo, hi = span
        return (pct(results[name]["total"][lo:hi], 0.5)
                - pct(results["direct"]["total"][lo:hi], 0.5))

    latency, cpu = [], []
    for block in blocks:
        a = block["answers"]
        if min(hi - lo for lo, hi in a.values()) < 2:
            continue
        floor = added("passthrough", a["passthrough"])
        if floor > 0:
            latency.append(added("gateway", a["gateway"]) / floor)
        served = sum(hi - lo for name, (lo, hi) in a.items() if name in ("gateway", "via_proxy"))
        passthrough = block["cpu_s"]["passthrough"] / (a["passthrough"][1] - a["passthrough"][0])
        if passthrough > 0 and served:
            cpu.append(block["cpu_s"]["gateway"] / served / passthrough)
    out = {"blocks": len(latency),
           "median_ratio_gateway_to_passthrough": round(statistics.median(latency), 3)
           if latency else None,
           "median_ratio_cpu_gateway_to_passthrough": round(statistics.median(cpu), 3)
           if cpu else None}
    print(f"ratios to the bare pass-through in {len(latency)} blocks of rounds: added p50 "
          + " ".join(f"{r:.2f}" for r in latency)
          + f" (median {out['median_ratio_gateway_to_passthrough']}); CPU per request "
          + " ".join(f"{r:.2f}" for r in cpu)
          + f" (median {out['median_ratio_cpu_gateway_to_passthrough']}); targets <= 1.1 and "
            "<= 1.5")
    return out


def report_waiting(w: dict, count: int) -> dict:
    mib = 2 ** 20
    extra = (w["rss_waiting"] - w["rss_before"]) / mib
    a = w["admitted"]
    out = {"waiting_clients": count, "waiting_queued": len(a),
           "waiting_extra_rss_mib": round(extra, 2),
           "waiting_rss_per_client_kib": round(extra * 1024 / max(1, len(a)), 1),
           "admission_p50_ms": round(pct(a, 0.5), 3) if a else None,
           "admission_p99_ms": round(pct(a, 0.99), 3) if a else None}
    print()
    print(f"{count} waiting clients (backend with 1 slot held; one user; opened over "
          f"{w['all_queued_s']:.1f} s):")
    print(f"  queued (got a position comment): {len(a)}/{count}, errors: {len(w['errors'])}"
          + (f" e.g. {w['errors'][0]}" if w["errors"] else ""))
    print(f"  gateway RSS: {w['rss_before'] / mib:.1f} MiB before, {w['rss_waiting'] / mib:.1f} "
          f"MiB while waiting (+{extra:.1f} MiB, {out['waiting_rss_per_client_kib']} KiB each), "
          f"{w['rss_after'] / mib:.1f} MiB after the drain")
    print(f"  gateway CPU: {w['cpu_idle']:.1f} % of a core idle, {w['cpu_waiting']:.1f} % "
          f"while {len(a)} wait")
    if a:
        print(f"  admission latency (sent -> first ': queue position='): p50 "
              f"{pct(a, 0.5):.2f} ms, p99 {pct(a, 0.99):.2f} ms, max {max(a):.2f} ms; "
              + (f"last 100 (queue {len(a) - 100}+ deep) p50 {pct(a[-100:], 0.5):.2f} ms; "
                 if len(a) > 100 else "")
              + f"{sum(1 for x in a if x > 50)} took over 50 ms")
    print(f"  drain after release: {w['done']}/{count} answered in {w['drain_s']:.1f} s")
    return out


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per path")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured rounds first")
    parser.add_argument("--waiting", type=int, default=500, help="queued clients (0: skip)")
    parser.add_argument("--waiting-rate", type=float, default=250.0,
                        help="how many queued clients are opened per second")
    parser.add_argument("--blocks", type=int, default=5,
                        help="the ratios to the bare pass-through are also given per block of "
                             "rounds, and their median")
    parser.add_argument("--busy", type=int, default=0,
                        help="rounds of 4 streams at once on the embedded model, every slot "
                             "busy, directly and through the gateway (0: skip)")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM proxy")
    parser.add_argument("--no-hub-proxy", action="store_true",
                        help="skip d) (the gateway through the hub's proxy)")
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data and logs")
    parser.add_argument("--smoke", action="store_true",
                        help="a few requests on every path but LiteLLM, for CI: it still runs")
    parser.add_argument("--serve-backend", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-passthrough", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_backend:
        serve_backend(args.serve_backend)
        return
    if args.serve_passthrough:
        serve_passthrough(int(args.serve_passthrough[0]), args.serve_passthrough[1])
        return
    if args.smoke:
        args.requests, args.warmup, args.waiting, args.no_litellm = 10, 2, 10, True
        args.blocks, args.busy = 2, min(args.busy, 2)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    cleanup = Cleanup()
    summary: dict = {"gateway_added_p50_ms": None, "litellm_added_p50_ms": None,
                     "passthrough_added_p50_ms": None, "ratio_gateway_to_litellm": None}
    litellm_version, litellm_why_missing, litellm_note = None, None, ""
    try:
        print(f"gateway overhead benchmark: python {platform.python_version()}, "
              f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.2f}), "
              f"{args.requests} requests per path, data in {tmp}", flush=True)
        if args.no_litellm:
            litellm_why_missing = "skipped (--no-litellm)"
        else:
            try:
                litellm_version, litellm_note = ensure_litellm(args.litellm_venv.resolve())
            except LiteLLMMissing as e:
                litellm_why_missing = str(e)
            except (OSError, subprocess.SubprocessError) as e:
                litellm_why_missing = f"installing it failed: {type(e).__name__}: {e}"


        print("starting the fast backend, the SportHub stack and LiteLLM proxy ...", flush=True)
        setup = time.monotonic()
        backend_url = start_backend(cleanup, "backend")
        litellm = None
        if litellm_version:
            litellm = start_litellm(cleanup, tmp, args.litellm_venv.resolve(), backend_url)
        passthrough, passthrough_proc = start_passthrough(cleanup, backend_url)
        stack, token = start_stack(cleanup, "stack", tmp, backend_url, slots="64",
                                   llm_tokens_per_day="1000000000",
                                   llm_max_running_per_user="64")
        gateway = f"http://127.0.0.1:{stack.env['SPORTHUB_GATEWAY_PORT']}/services/llm"
        targets = {
            "direct": (f"{backend_url}/v1/chat/completions",
                       {"Authorization": f"Bearer {BACKEND_KEY}"}),
            "gateway": (f"{gateway}/v1/chat/completions", {"Authorization": f"Bearer {token}"}),
            "passthrough": (f"{passthrough}/v1/chat/completions", {}),
        }
        if litellm is not None:
            proc, url, log = litellm
            try:
                wait_http(f"{url}/health/liveliness", 240, proc)
                targets["litellm"] = (f"{url}/v1/chat/completions",
                                      {"Authorization": f"Bearer {LITELLM_KEY}"})
            except RuntimeError as e:
                tail = log.read_text(errors="replace").strip().splitlines()[-8:]
                litellm_why_missing = f"LiteLLM proxy did not start: {e}; log: " + " | ".join(tail)
                cleanup.run_one("litellm")
        if not args.no_hub_proxy:
            targets["via_proxy"] = (f"{stack.gateway}/v1/chat/completions",
                                    {"Authorization": f"Bearer {token}"})
        print(f"ready after {time.monotonic() - setup:.0f} s; LiteLLM: "
              f"{litellm_version if 'litellm' in targets else 'MISSING - ' + str(litellm_why_missing)}",
              flush=True)
        if litellm_note:
            print(f"  note: {litellm_note}")
        print(f"measuring {', '.join(LABELS[t] for t in targets)}: sequential, shuffled rounds",
              flush=True)
        import psutil

        servers = {"gateway": [gateway_process(stack)],
                   "passthrough": [psutil.Process(passthrough_proc.pid)]}
        if "litellm" in targets:
            servers["litellm"] = [psutil.Process(litellm[0].pid)]
        results = asyncio.run(overhead_rounds(targets, args.requests, args.warmup, servers,
                                              args.blocks))
        cpu_s = results.pop("cpu_s")
        blocks = results.pop("blocks")
        cleanup.run_one("litellm")
        cleanup.run_one("passthrough")
        cleanup.run_one("stack")
        added = report_overhead(results)
        if args.smoke and any(r["errors"] for r in results.values()):
            raise SystemExit("smoke run: a path answered with errors (above)")
        served = {"gateway": sum(len(results[t]["total"]) for t in ("gateway", "via_proxy")
                                 if t in results),
                  "litellm": len(results.get("litellm", {}).get("total", [])),
                  "passthrough": len(results["passthrough"]["total"])}
        cpu_ms = {name: 1000 * cpu_s[name] / served[name] for name in cpu_s if served[name]}
        print("server CPU per request (user+system, incl. its own health checks): "
              + ", ".join(f"{LABELS[n][3:]} {ms:.2f} ms" for n, ms in cpu_ms.items()))

        gw = added["gateway"]["total_p50"]
        summary["gateway_added_p50_ms"] = round(gw, 3)
        summary["gateway_added_p99_ms"] = round(added["gateway"]["total_p99"], 3)
        summary["gateway_added_ttft_p50_ms"] = round(added["gateway"]["ttft_p50"], 3)
        summary["gateway_added_ttft_p99_ms"] = round(added["gateway"]["ttft_p99"], 3)
        if "litellm" in added:
            lt = added["litellm"]["total_p50"]
            summary["litellm_added_p50_ms"] = round(lt, 3)
            summary["litellm_added_p99_ms"] = round(added["litellm"]["total_p99"], 3)
            summary["litellm_added_ttft_p50_ms"] = round(added["litellm"]["ttft_p50"], 3)
            summary["ratio_gateway_to_litellm"] = round(gw / lt, 3) if lt > 0 else None
        if "via_proxy" in added:
            summary["via_hub_proxy_added_p50_ms"] = round(added["via_proxy"]["total_p50"], 3)
        floor = added["passthrough"]["total_p50"]
        summary["passthrough_added_p50_ms"] = round(floor, 3)
        summary["passthrough_added_p99_ms"] = round(added["passthrough"]["total_p99"], 3)
        # the gateway's cost over the floor any Python proxy pays
        summary["ratio_gateway_to_passthrough"] = round(gw / floor, 3) if floor > 0 else None
        summary["passthrough_cpu_ms_per_request"] = round(cpu_ms.get("passthrough", 0), 3) or None
        summary["gateway_cpu_ms_per_request"] = round(cpu_ms.get("gateway", 0), 3) or None
        if cpu_ms.get("passthrough"):
            summary["ratio_cpu_gateway_to_passthrough"] = round(
                cpu_ms.get("gateway", 0) / cpu_ms["passthrough"], 3) or None
        summary.update(report_blocks(results, blocks))
        summary["litellm_cpu_ms_per_request"] = round(cpu_ms.get("litellm", 0), 3) or None
        summary["requests_per_path"] = args.requests
        summary["litellm_version"] = litellm_version if "litellm" in added else None
        print()
        if "litellm" not in added:
            print(f"LiteLLM proxy is MISSING from this run: {litellm_why_missing}")
        ratio = summary["ratio_gateway_to_litellm"]
        print(f"target: gateway adds <= 1 ms at p50: {'yes' if gw <= 1.0 else 'NO'} "
              f"({gw:.2f} ms); less than a third of LiteLLM: "
              + ("unknown (no LiteLLM)" if ratio is None and "litellm" not in added
                 else f"{'yes' if ratio is not None and ratio < 1 / 3 else 'NO'} "
                      f"(ratio {ratio})"), flush=True)
        summary["target_met"] = bool(gw <= 1.0 and ratio is not None and ratio < 1 / 3)

        if args.waiting > 0:
            print(f"\nstarting a second stack (1 backend slot) for {args.waiting} waiting "
                  "clients ...", flush=True)
            stack2, token2 = start_stack(
                cleanup, "stack2", tmp, backend_url, slots="1", llm_tokens_per_day="1000000000",
                llm_max_queued_per_user=str(args.waiting + 100),
                llm_max_running_per_user=str(args.waiting + 100))
            gateway2 = f"http://127.0.0.1:{stack2.env['SPORTHUB_GATEWAY_PORT']}/services/llm"
            waited = asyncio.run(waiting_clients(gateway2, token2, backend_url,
                                                 gateway_process(stack2), args.waiting,
                                                 args.waiting_rate))
            cleanup.run_one("stack2")
            summary.update(report_waiting(waited, args.waiting))
            if args.smoke and (waited["errors"] or waited["done"] < args.waiting):
                raise SystemExit("smoke run: a waiting client got no answer (above)")
        if args.busy > 0:
            print(f"\nstarting a stack on the embedded model for {args.busy} busy rounds ...",
                  flush=True)
            busy_stack, busy_token, busy_key = start_embedded_stack(cleanup, tmp)
            busy = asyncio.run(busy_rounds(busy_stack, busy_token, busy_key, args.busy,
                                           gateway_process(busy_stack)))
            rows = [r for r in busy_stack.ledger_rows() if r["user"] == "bench"]
            summary.update(report_busy(busy, rows[BUSY_STREAMS:], args.busy))
            cleanup.run_one("busy")
            if args.smoke and (busy["direct"]["errors"] or busy["gateway"]["errors"]):
                raise SystemExit("smoke run: a busy stream failed (above)")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything ...", file=sys.stderr)
        raise
    finally:
        cleanup.run_all()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    summary["elapsed_s"] = round(time.monotonic() - began, 1)
    summary["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(f"\ntook {summary['elapsed_s']:.0f} s (load average at the end "
          f"{summary['load_average_1m_at_end']:.2f}: other work on the machine skews the figures)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
