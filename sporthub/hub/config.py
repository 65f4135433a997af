"""Build the whole JupyterHub configuration from the settings object.

``jupyterhub_config.py`` (and, in the k8s profile, the chart's ``hub.extraConfig``) calls
:func:`configure`. The profile's module (``sporthub.hub.profiles``) builds it from the pieces every
profile shares (``sporthub.hub.common``); a profile changes configuration only, never code.
"""

from __future__ import annotations

from sporthub import quickexit
from sporthub.hub.profiles import profile_of
from sporthub.settings import Settings


def configure(c, settings: Settings) -> None:
    # this runs inside the hub's process: its exit (after a Ctrl-C) skips the full collection
    quickexit.enable()
    profile_of(settings).configure(c, settings)
