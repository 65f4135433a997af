"""Per-group resource limits of a person's server, applied by one ``pre_spawn_hook`` in every profile.

The admin gives a group the properties ``user_mem_limit`` (``"4G"``) and ``user_cpu_limit`` (``2``)
in the admin panel; a person gets the most generous value of their groups, read at each start
(the admin may edit them at any time), and the profile's default when no group sets one. What
"applying" a limit means is the profile's: the container's limits (docker), the pod's resources
(k8s), the system user's cgroup (local, hub run as root). So the hook resolves the numbers here and
hands them to the profile's ``apply_limits(spawner, limits)``; no spawner is subclassed for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jupyterhub.traitlets import ByteSpecification
from traitlets import HasTraits, TraitError

MEM_PROPERTY = "user_mem_limit"
CPU_PROPERTY = "user_cpu_limit"


@dataclass(frozen=True)
class Limits:
    """What one person's server may use; ``None``: no limit."""

    mem_bytes: int | None
    cpus: float | None


class _Size(HasTraits):
    value = ByteSpecification()


def parse_bytes(value) -> int:
    """``"2G"``, ``"512M"`` or a number of bytes, as JupyterHub's own limits are written."""
    holder = _Size()
    holder.value = value if isinstance(value, int) else str(value).strip()
    return int(holder.value)


def resolve_limits(groups: dict[str, dict], mem_default: str | int,
                   cpu_default: float) -> tuple[int, float]:
    """Memory (bytes) and CPUs for a person in these groups ({group: its properties}).

    The most generous value that any of the groups sets wins; the default applies only when none
    sets one. A value that is not a size (or a number of CPUs) stops the start, naming the group.
    """
    mems, cpus = [], []
    for name, properties in groups.items():
        mem, cpu = properties.get(MEM_PROPERTY), properties.get(CPU_PROPERTY)
        if mem not in (None, ""):
            try:
                mems.append(parse_bytes(mem))
            except TraitError:
                raise ValueError(f"group {name}: {MEM_PROPERTY}={mem!r} is not a size such as "
                                 "'4G' or '512M'") from None
        if cpu not in (None, ""):
            try:
                cpus.append(float(cpu))
                if cpus[-1] <= 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise ValueError(f"group {name}: {CPU_PROPERTY}={cpu!r} is not a positive "
                                 "number of CPUs such as 2 or 0.5") from None
    return (max(mems) if mems else parse_bytes(mem_default),
            max(cpus) if cpus else cpu_default)


class LimitsHook:
    """The ``pre_spawn_hook`` of every profile: resolve the person's limits, let the profile apply
    them. JupyterHub calls it before each start (``Spawner.run_pre_spawn_hook``); a bad group
    property stops that start with a message naming the group."""

    def __init__(self, apply: Callable[[object, Limits], None], mem_default: str | int | None,
                 cpu_default: float | None):
        self.apply = apply
        # None (the k8s chart's "no limit") is 0 while resolving, and None again after
        self.mem_default = mem_default or 0
        self.cpu_default = cpu_default or 0

    def limits_for(self, user) -> Limits:
        # group properties are the admin's to edit at any time: read them at each start
        groups = {g.name: dict(g.properties or {}) for g in user.groups}
        mem, cpus = resolve_limits(groups, self.mem_default, self.cpu_default)
        return Limits(mem_bytes=mem or None, cpus=cpus or None)

    def __call__(self, spawner) -> None:
        limits = self.limits_for(spawner.user)
        self.apply(spawner, limits)
        spawner.log.info("%s's server: %s bytes of memory, %s CPUs", spawner.user.name,
                         limits.mem_bytes, limits.cpus)
