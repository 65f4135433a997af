"""The embedded LLM of the ``local`` profile: llama-server serving SmolLM2-135M-Instruct."""
