# SportHub's JupyterHub configuration: everything is built from the one settings object
# (environment variables SPORTHUB_*, or sporthub.toml); see README.md for the settings.
from sporthub.hub.config import configure
from sporthub.settings import load_settings

configure(c, load_settings())  # noqa: F821
