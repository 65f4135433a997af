"""One module per profile: ``local``, ``docker``, ``k8s`` (``SPORTHUB_PROFILE``).

Each holds everything its profile does and refuses every setting it would ignore, with a message
naming what decides instead; the hub pieces they share are in :mod:`sporthub.hub.common`, and the
per-group resource limits in :mod:`sporthub.hub.limits` (one ``pre_spawn_hook``, each profile's
``apply_limits``). Every module offers the same four functions:

- ``check(settings)``: stop a start the profile cannot honour; return a notice for the admin;
- ``prepare(settings)``: what must exist before the hub starts (``sporthub prepare``);
- ``configure(c, settings)``: the whole hub configuration (k8s: added to the chart's);
- ``apply_limits(spawner, limits)``: one person's resolved limits onto their spawner.

and answers what the rest of SportHub asks of a profile, so no other module compares its name:

- ``COMMANDS_ELSEWHERE``: the ``sporthub`` commands that do not run here in this profile, each
  with what to do instead;
- ``RUNS_CONTAINERS``: people's servers run from SportHub's images (``make images``);
- ``HOMES``: where people's homes are, for backup and restore: ``"here"`` (folders on this
  machine), ``"volumes"`` (the container engine's named volumes) or ``"cluster"`` (the
  cluster's volumes, out of a backup's reach);
- ``STACK_SECRETS``: ``<data>/secrets`` is the Compose stack's, read by its other containers.
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
