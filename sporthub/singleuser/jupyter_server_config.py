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

# Jupyter AI's MCP server would listen unauthenticated on a fixed port shared by every user on the
# machine, letting one user drive another's kernel: keep it off.
# sporthub_coach: makes ~/activities (the Coach's data folder) on the first start
c.ServerApp.jpserver_extensions = {"jupyter_server_mcp": False, "sporthub_coach": True}
c.PersonaManager.builtin_mcp_servers = []
