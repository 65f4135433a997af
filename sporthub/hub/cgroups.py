"""Per-person limits in the local profile (hub run as root), written to the kernel's cgroups.

The Littlest JupyterHub gives each user a systemd slice; on these machines PID 1 is not systemd,
so SportHub makes a cgroup per person itself: memory, a CPU quota and a process limit, on cgroup
v2 (one unified tree) or v1 (a tree per controller). Each person's group is made under the hub's
own cgroup, so it nests inside whatever already holds the hub. The server's process joins its
group in the spawner's preexec function, as root, before it becomes the person's user: everything
it starts (kernels, terminals) is held too, and the person cannot leave the group (the files are
root's).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
# as the docker profile's containers (pids_limit)
PROCESS_LIMIT = 1024


class CgroupError(RuntimeError):
    """The person's limits could not be set: their server does not start without them."""


def version(root: Path = ROOT) -> int:
    return 2 if (root / "cgroup.controllers").exists() else 1


def own_path(controller: str | None, text: str | None = None) -> str:
    """This process's cgroup path in ``controller``'s hierarchy (None: the unified one, v2)."""
    text = text if text is not None else Path("/proc/self/cgroup").read_text()
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or \
                (controller is not None and controller in controllers.split(",")):
            return path
    raise CgroupError(f"this process is in no {controller or 'cgroup v2'} hierarchy")


def prepare(name: str, mem_bytes: int | None, cpus: float | None, root: Path = ROOT,
            proc_self: str | None = None) -> list[Path]:
    """Make (or update) the person's cgroup with these limits; returns the ``cgroup.procs``
    files their server's process joins. ``None``: no limit of that kind."""
    quota = int(cpus * PERIOD_US) if cpus else None
    group = f"sporthub-{name}"
    try:
        if version(root) == 2:
            base = root / own_path(None, proc_self).lstrip("/")
            # a v2 group holds processes only at its leaves: the controllers are enabled for
            # the hub's children, and the people's groups are its children
            (base / "cgroup.subtree_control").write_text("+memory +cpu +pids")
            target = base / group
            target.mkdir(exist_ok=True)
            _write(target, {"memory.max": mem_bytes or "max",
                            "cpu.max": f"{quota or 'max'} {PERIOD_US}",
                            "pids.max": PROCESS_LIMIT})
            return [target / "cgroup.procs"]
        procs = []
        for controller, values in (
                ("memory", {"memory.limit_in_bytes": mem_bytes or -1}),
                ("cpu", {"cpu.cfs_period_us": PERIOD_US, "cpu.cfs_quota_us": quota or -1}),
                ("pids", {"pids.max": PROCESS_LIMIT})):
            target = root / controller / own_path(controller, proc_self).lstrip("/") / group
            target.mkdir(exist_ok=True)
            _write(target, values)
            procs.append(target / "cgroup.procs")
        return procs
    except OSError as e:
        raise CgroupError(f"cannot set {name}'s limits in {e.filename or root}: {e.strerror} "
                          "(SPORTHUB_USER_MEM_LIMIT / SPORTHUB_USER_CPU_LIMIT and the groups' "
                          "user_mem_limit / user_cpu_limit need a writable cgroup file "
                          "system)") from None


def _write(target: Path, values: dict) -> None:
    for file, value in values.items():
        (target / file).write_text(str(value))


def join(procs: list[Path]) -> None:
    """Put this process into the groups (the server's child, as root, before it drops)."""
    for path in procs:
        path.write_text(str(os.getpid()))
