"""Choosing the embedded engine (SPORTHUB_EMBEDDED_BACKEND): fast checks, no engine started.

The engines themselves are exercised by the slow tier, tests/gateway/test_backend_contract.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sporthub.llm import vllm_cpu, vllm_routes
from sporthub.settings import SettingsError, load_settings


def test_vllm_is_the_embedded_backend_with_tools(tmp_path):
    default = load_settings(data_dir=tmp_path).backends()[0]
    vllm = load_settings(data_dir=tmp_path, embedded_backend="vllm").backends()[0]
    assert (default.supports_tools, vllm.supports_tools) == (False, True)
    # the same name, model and key either way: the ledger and the clients see no difference
    assert (default.name, default.models, default.api_key) == (vllm.name, vllm.models, vllm.api_key)


@pytest.mark.parametrize("settings, named", [
    ({"embedded_backend": "ollama"}, "SPORTHUB_EMBEDDED_BACKEND"),
    ({"embedded_backend": "vllm", "llm_backends": [
        {"name": "gpu", "url": "http://127.0.0.1:1", "models": ["m"]}]},
     "SPORTHUB_EMBEDDED_BACKEND has no effect when SPORTHUB_LLM_BACKENDS is set"),
])
def test_a_setting_without_effect_is_refused_by_name(tmp_path, settings, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(data_dir=tmp_path, **settings)


def test_vllm_is_started_like_production_with_the_key_out_of_sight():
    argv = vllm_cpu.server_command("smollm2-135m-instruct", 8123, 3)
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    flags = " ".join(argv)
    assert "--max-num-seqs 3 --max-model-len 4096 --enforce-eager" in flags
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in flags
    assert "--host 127.0.0.1 --port 8123" in flags and "--api-key" not in flags
    env = vllm_cpu.server_environment("the-key")
    assert env["VLLM_API_KEY"] == "the-key" and "the-key" not in flags
    assert env["HF_HUB_OFFLINE"] == env["VLLM_NO_USAGE_STATS"] == env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["VLLM_CACHE_ROOT"].startswith(str(vllm_cpu.cache_dir()))


def test_an_unprepared_vllm_stops_the_service_with_a_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPORTHUB_")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), SPORTHUB_DATA_DIR=str(tmp_path / "data"),
               SPORTHUB_EMBEDDED_BACKEND="vllm")
    result = subprocess.run([sys.executable, "-m", "sporthub.llm"], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "vLLM is not prepared yet: run `sporthub prepare`" in result.stderr


def test_vllm_serves_only_the_gateways_routes(tmp_path, monkeypatch):
    """Issue 17, item 5: vLLM's key guards /v1 only; its other routes must not answer."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    argv = vllm_cpu.server_command("smollm2-135m-instruct", 8123, 3)
    assert argv[-2:] == ["--middleware", f"{vllm_cpu.ROUTES_MODULE}.OnlyGatewayRoutes"]
    env = vllm_cpu.server_environment("the-key")
    copied = Path(env["PYTHONPATH"]) / f"{vllm_cpu.ROUTES_MODULE}.py"
    # vLLM's own Python has no SportHub: the copy imports on a bare interpreter
    load = f"import sys; sys.path.insert(0, {str(copied.parent)!r}); " \
        f"import {vllm_cpu.ROUTES_MODULE}"
    bare = subprocess.run(["/usr/bin/python3", "-I", "-c", load], capture_output=True,
                          text=True, timeout=60, check=False)
    assert bare.returncode == 0, bare.stderr

    def ok(request):
        return PlainTextResponse("served")

    paths = ["/v1/chat/completions", "/v1/models", "/health", "/metrics", "/invocations",
             "/pause", "/update_weights", "/tokenize", "/v1/load_lora_adapter"]
    app = Starlette(routes=[Route(p, ok, methods=["GET", "POST"]) for p in paths])
    app.add_middleware(vllm_routes.OnlyGatewayRoutes)  # as vLLM adds a class from --middleware
    with TestClient(app) as client:
        answers = {p: client.post(p).status_code for p in paths}
    assert answers == {**{p: 200 for p in paths[:4]}, **{p: 404 for p in paths[4:]}}
