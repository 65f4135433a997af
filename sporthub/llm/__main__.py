"""Run the embedded LLM backend (started by the hub as a managed service).

llama-server replaces this process (``exec``): the hub's signals reach it directly and no wrapper is
left behind. vLLM is a tree (API server plus engine process), so it runs in its own process group and
this process stays as its keeper: a SIGTERM or SIGINT from the hub stops the whole group.
"""

import os
import signal
import subprocess
import sys

from sporthub.llm import vllm_cpu
from sporthub.llm.build import model_file, server_binary
from sporthub.settings import EMBEDDED_MODEL, load_settings

VLLM_STOP_GRACE_S = 30


def main() -> None:
    settings = load_settings()
    backend = settings.backends()[0]
    slots = backend.max_concurrency or settings.llm_max_concurrency
    key = backend.api_key.get_secret_value()
    if settings.embedded_backend == "vllm":
        sys.exit(run_vllm(settings.embedded_llm_port, slots, key))
    binary = server_binary()
    if not binary.exists():
        sys.exit(f"llama-server is not built yet: run `sporthub prepare` ({binary})")
    argv = [
        str(binary),
        "--model", str(model_file()),
        "--alias", EMBEDDED_MODEL,
        "--host", "127.0.0.1",
        "--port", str(settings.embedded_llm_port),
        "--parallel", str(slots),
        # 4096 tokens of context per slot: SmolLM2 is trained for 8k, chat prompts are short
        "--ctx-size", str(4096 * slots),
        "--threads", str(os.cpu_count() or 2),
        "--jinja",
        "--no-webui",
    ]
    # the key goes through the environment, not argv, so `ps` does not show it
    os.environ["LLAMA_API_KEY"] = key
    os.execv(argv[0], argv)


def run_vllm(port: int, slots: int, key: str) -> int:
    if not vllm_cpu.is_ready():
        return f"vLLM is not prepared yet: run `sporthub prepare` ({vllm_cpu.cache_dir()})"
    server = subprocess.Popen(vllm_cpu.server_command(EMBEDDED_MODEL, port, slots),
                              env=vllm_cpu.server_environment(key), start_new_session=True)

    def stop(signum, frame):
        _signal_group(server.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return server.wait()
    finally:
        # whatever ended us, nothing of vLLM (3.5 GB) may outlive its keeper
        try:
            server.wait(VLLM_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(server.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    main()
