# SportHub: system-wide Jupyter Server configuration for every user server.
#
# Installed as {sys.prefix}/etc/jupyter/jupyter_server_config.py (by `sporthub up` in the local
# profile, by the Dockerfile in production). The hub's spawner sets the variables read here, so a
# user has nothing to configure: Jupyter AI talks to the SportHub gateway with the user's own
# server token and the shared model.
import os

c = get_config()  # noqa: F821

gateway = os.environ.get("OPENAI_API_BASE")
model = os.environ.get("LLM_GATEWAY_MODEL")
if gateway and model and os.environ.get("JUPYTERHUB_API_TOKEN"):
    # litellm reads the key from the environment at request time: the server's own hub token
    os.environ["OPENAI_API_KEY"] = os.environ["JUPYTERHUB_API_TOKEN"]
    # litellm must not fetch its price list from the internet at import time
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    model_id = f"openai/{model}"
    c.JupyternautExtension.initial_language_model = model_id
    c.JupyternautExtension.model_parameters = {model_id: {"api_base": gateway}}
    # the Coach (package sporthub-coach) answers unless a message names another persona;
    # the shipped default id names a package that does not exist in Jupyter AI 3.2
    c.PersonaManager.default_persona_id = "jupyter-ai-personas::sporthub_coach::CoachPersona"
    # the page tells JupyterLab the default from the configured class's own section (below)
    c.SportHubPersonaManager.default_persona_id = c.PersonaManager.default_persona_id

# Jupyter AI's MCP server would listen unauthenticated on a fixed port shared by every user on the
# machine, letting one user drive another's kernel: keep it off.
# sporthub_coach: makes ~/activities (the Coach's data folder) on the first start, and loads
# Jupyternaut and the ACP agents once the server runs: importing them (LiteLLM, LangChain) was
# most of a server's start, and the Coach needs none of it (sporthub_coach/deferred.py)
c.ServerApp.jpserver_extensions = {"jupyter_server_mcp": False, "sporthub_coach": True,
                                   "jupyter_ai_jupyternaut": False, "jupyter_ai_litellm": False,
                                   "jupyter_ai_acp_client": False}
c.PersonaManagerExtension.persona_manager_class = "sporthub_coach.deferred.SportHubPersonaManager"
# what Jupyternaut's extension sets when it is linked at the start, which it no longer is
c.ContentsManager.allow_hidden = True
c.ContentsManager.hide_globs = ["__pycache__", "*.pyc", "*.pyo", ".DS_Store", "*~",
                                ".ipynb_checkpoints", ".git", ".venv", "venv", "node_modules",
                                ".pytest_cache", ".mypy_cache", "*.egg-info"]
c.PersonaManager.builtin_mcp_servers = []
