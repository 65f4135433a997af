"""Run the embedded llama-server in place of this process (started by the hub as a managed service).

``exec`` rather than a child process: the hub's SIGTERM then reaches llama-server directly, and no
wrapper is left behind when it stops.
"""

import os
import sys

from sporthub.llm.build import model_file, server_binary
from sporthub.settings import EMBEDDED_MODEL, load_settings


def main() -> None:
    settings = load_settings()
    backend = settings.backends()[0]
    slots = backend.max_concurrency or settings.llm_max_concurrency
    binary = server_binary()
    if not binary.exists():
        sys.exit(f"llama-server is not built yet: run `sporthub llm build` ({binary})")
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
    os.environ["LLAMA_API_KEY"] = backend.api_key.get_secret_value()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
