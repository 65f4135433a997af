"""Choosing the embedded engine (SPORTHUB_EMBEDDED_BACKEND): fast checks, no engine started.

The engines themselves are exercised by the slow tier, tests/gateway/test_backend_contract.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sporthub.llm import vllm_cpu
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
