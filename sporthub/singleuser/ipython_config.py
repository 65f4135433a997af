# SportHub: system-wide IPython configuration ({sys.prefix}/etc/ipython/ipython_config.py).
# `%%ai` in notebooks uses the SportHub gateway and the shared model, with the user's own token
# (OPENAI_API_KEY is set by the server configuration and inherited by every kernel).
import os

c = get_config()  # noqa: F821

if os.environ.get("OPENAI_API_BASE") and os.environ.get("LLM_GATEWAY_MODEL"):
    model_id = f"openai/{os.environ['LLM_GATEWAY_MODEL']}"
    c.AiMagics.initial_language_model = model_id
    c.AiMagics.initial_aliases = {
        "coach": {"target": model_id, "api_base": os.environ["OPENAI_API_BASE"],
                  "api_key_name": "OPENAI_API_KEY"},
    }
    c.InteractiveShellApp.extensions = ["jupyter_ai_magic_commands"]
