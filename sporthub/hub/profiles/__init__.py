"""One module per profile: ``local``, ``docker``, ``k8s`` (``SPORTHUB_PROFILE``).

Each holds everything its profile does and refuses every setting it would ignore, with a message
naming what decides instead; the hub pieces they share are in :mod:`sporthub.hub.common`, and the
per-group resource limits in :mod:`sporthub.hub.limits` (one ``pre_spawn_hook``, each profile's
``apply_limits``). Every module offers the same four functions:

- ``check(settings)``: stop a start the profile cannot honour; return a notice for the admin;
- ``prepare(settings)``: what must exist before the hub starts (``sporthub prepare``);
- ``configure(c, settings)``: the whole hub configuration (k8s: added to the chart's);
- ``apply_limits(spawner, limits)``: one person's resolved limits onto their spawner.
"""

from __future__ import annotations

from types import ModuleType

from sporthub.settings import Settings


def profile_of(settings: Settings) -> ModuleType:
    """The module of ``SPORTHUB_PROFILE``: the one place a profile is chosen. Imported on demand:
    the docker SDK and KubeSpawner belong to their profile only."""
    if settings.profile == "k8s":
        from sporthub.hub.profiles import k8s

        return k8s
    if settings.profile == "docker":
        from sporthub.hub.profiles import docker

        return docker
    from sporthub.hub.profiles import local

    return local
