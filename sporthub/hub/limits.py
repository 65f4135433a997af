"""Per-group resource limits of a person's server, applied by one ``pre_spawn_hook`` in every profile.

The admin gives a group the properties ``user_mem_limit`` (``"4G"``), ``user_cpu_limit`` (``2``)
and ``user_storage_limit`` (``"10G"``, the size of the person's home) in the admin panel; a
person gets the most generous value of their groups, read at each start (the admin may edit them
at any time), and the profile's default when no group sets one. What "applying" a limit means is
the profile's: the container's limits (docker), the pod's resources (k8s), the system user's
cgroup (local, hub run as root); the home's size is the docker profile's home volume (made with
the engine's size option) and the k8s profile's volume claim, and the local profile refuses it.
So the hook resolves the numbers here and hands them to the profile's
``apply_limits(spawner, limits)``; no spawner is subclassed for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from jupyterhub.traitlets import ByteSpecification
from traitlets import HasTraits, TraitError

MEM_PROPERTY = "user_mem_limit"
CPU_PROPERTY = "user_cpu_limit"
STORAGE_PROPERTY = "user_storage_limit"


@dataclass(frozen=True)
class Limits:
    """What one person's server may use; ``None``: no limit."""

    mem_bytes: int | None
    cpus: float | None
    storage_bytes: int | None = None  # the home's size


class _Size(HasTraits):
    value = ByteSpecification()


def parse_bytes(value) -> int:
    """``"2G"``, ``"512M"`` or a number of bytes, as JupyterHub's own limits are written."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)  # ByteSpecification wants a unit in a string; settings allow none
    holder = _Size()
    holder.value = value if isinstance(value, int) else str(value).strip()
    return int(holder.value)


def group_sizes(groups: dict[str, dict], name: str, example: str) -> list[int]:
    """The sizes (bytes) the groups give in their property ``name``; a value that is not a size
    stops the start, naming the group."""
    sizes = []
    for group, properties in groups.items():
        value = properties.get(name)
        if value not in (None, ""):
            try:
                sizes.append(parse_bytes(value))
            except TraitError:
                raise ValueError(f"group {group}: {name}={value!r} is not a size such as "
                                 f"{example}") from None
    return sizes


def resolve_limits(groups: dict[str, dict], mem_default: str | int,
                   cpu_default: float) -> tuple[int, float]:
    """Memory (bytes) and CPUs for a person in these groups ({group: its properties}).

    The most generous value that any of the groups sets wins; the default applies only when none
    sets one. A value that is not a size (or a number of CPUs) stops the start, naming the group.
    """
    mems = group_sizes(groups, MEM_PROPERTY, "'4G' or '512M'")
    cpus = []
    for name, properties in groups.items():
        cpu = properties.get(CPU_PROPERTY)
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


def resolve_storage(groups: dict[str, dict], default: str | int | None) -> int | None:
    """The size of a person's home in these groups (bytes; None: no limit), as the others: the
    most generous group wins, the default applies only when none sets one."""
    sizes = group_sizes(groups, STORAGE_PROPERTY, "'10G' or '500M'")
    if sizes:
        return max(sizes)
    return parse_bytes(default) if default else None


class LimitsHook:
    """The ``pre_spawn_hook`` of every profile: resolve the person's limits, let the profile apply
    them. JupyterHub calls it before each start (``Spawner.run_pre_spawn_hook``); a bad group
    property stops that start with a message naming the group."""

    def __init__(self, apply: Callable[[object, Limits], Awaitable | None],
                 mem_default: str | int | None, cpu_default: float | None,
                 storage_default: str | int | None = None):
        self.apply = apply
        # None (the k8s chart's "no limit") is 0 while resolving, and None again after
        self.mem_default = mem_default or 0
        self.cpu_default = cpu_default or 0
        self.storage_default = storage_default

    def limits_for(self, user) -> Limits:
        # group properties are the admin's to edit at any time: read them at each start
        groups = {g.name: dict(g.properties or {}) for g in user.groups}
        mem, cpus = resolve_limits(groups, self.mem_default, self.cpu_default)
        return Limits(mem_bytes=mem or None, cpus=cpus or None,
                      storage_bytes=resolve_storage(groups, self.storage_default))

    def __call__(self, spawner) -> Awaitable | None:
        limits = self.limits_for(spawner.user)
        spawner.log.info("%s's server: %s bytes of memory, %s CPUs, a home of %s bytes",
                         spawner.user.name, limits.mem_bytes, limits.cpus, limits.storage_bytes)
        # a profile that asks the engine (the docker profile's home volume) returns an
        # awaitable; JupyterHub awaits what the hook returns before it starts the server
        return self.apply(spawner, limits)
