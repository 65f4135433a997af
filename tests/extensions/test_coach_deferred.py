"""What an athlete waits for before the Coach is ready: Jupyternaut is loaded after a user
server's start (sporthub_coach/deferred.py), so the server answers without waiting for LiteLLM's
and LangChain's imports, and the Coach's persona, loaded as a chat opens, imports no sportlab."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sporthub_coach import deferred
from tests.support.stack import REPO, free_port

CONFIG = REPO / "sporthub" / "singleuser" / "jupyter_server_config.py"
TOKEN = "deferred-test-token"


def test_only_jupyternaut_and_its_companions_are_deferred():
    assert deferred.deferred("jupyter_ai_jupyternaut.jupyternaut.jupyternaut:JupyternautPersona")
    assert deferred.deferred("jupyter_ai_acp_client.acp_personas.claude:ClaudeAcpPersona")
    assert not deferred.deferred("sporthub_coach.persona:CoachPersona")
    assert deferred.deferred_persona(
        "jupyter-ai-personas::jupyter_ai_jupyternaut::JupyternautPersona")
    assert not deferred.deferred_persona("jupyter-ai-personas::sporthub_coach::CoachPersona")
    # each deferred extension is left out of the start by the servers' config
    config = CONFIG.read_text()
    assert all(f'"{name}": False' in config for name in deferred.EXTENSIONS)


def test_the_coachs_persona_loads_without_sportlab_or_litellm():
    # loaded when a chat opens, while the athlete waits: pandas and SciPy come at the first
    # question or /log, LiteLLM with Jupyternaut
    code = ("import sys, sporthub_coach.persona; "
            "print(sorted({'pandas', 'scipy', 'sportlab', 'litellm'} & set(sys.modules)))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, check=True)
    assert shown.stdout.strip() == "[]"


def wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while text not in (seen := log.read_text(errors="replace")):
        assert proc.poll() is None, f"the server exited:\n{seen[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in:\n{seen[-3000:]}"
        time.sleep(0.2)
    return seen


@pytest.mark.stack  # a real user server: tens of seconds on a busy machine
def test_the_server_answers_before_jupyternaut_loads_and_serves_it_after(tmp_path):
    port = free_port()
    # what the hub's spawner gives a person's server (Jupyter AI's configuration reads these)
    env = {**os.environ, "OPENAI_API_BASE": "http://127.0.0.1:9/v1",
           "LLM_GATEWAY_MODEL": "smollm2-135m-instruct", "JUPYTERHUB_API_TOKEN": TOKEN}
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        [str(Path(sys.prefix) / "bin" / "jupyter-server"), f"--config={CONFIG}",
         f"--port={port}", f"--IdentityProvider.token={TOKEN}", "--no-browser",
         f"--ServerApp.root_dir={tmp_path}", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=tmp_path, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        started = wait_for(log, "is running at", proc)
        # the start imported none of it: Jupyter Server names each package it imports
        assert "Extension package jupyter_ai_jupyternaut" not in started
        assert "SportHub: loaded after the start" not in started
        loaded = wait_for(log, "SportHub: loaded after the start", proc)
        assert all(f"{name} | extension was successfully loaded" in loaded
                   for name in ("jupyter_ai_jupyternaut", "jupyter_ai_litellm"))
        # Jupyternaut's settings API, with the gateway's model the config gave it
        config = httpx.get(f"http://127.0.0.1:{port}/api/jupyternaut/config",
                           headers={"Authorization": f"token {TOKEN}"}, timeout=30)
        assert config.status_code == 200, config.text
        assert config.json()["model_provider_id"] == "openai/smollm2-135m-instruct"
        models = httpx.get(f"http://127.0.0.1:{port}/api/ai/models/chat",
                           headers={"Authorization": f"token {TOKEN}"}, timeout=30)
        assert models.status_code == 200, models.text
    finally:
        proc.terminate()
        proc.wait(30)
