"""The ``local`` profile: people's servers as local processes on this machine (the embedded default).

Run as root, each person's server runs as a system user of their own (``sporthub.hub.localusers``,
as The Littlest JupyterHub does) and the hub's data stays root's. Run as an ordinary user, every
server runs under that one account and could read everything the hub holds: SportHub then serves
a single-person trial, on loopback only, and refuses what it could not honour there (system
users, per-person resource limits). The docker profile's settings are refused in this profile:
accepted, they would do nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sporthub.hub import cgroups, common, localusers
from sporthub.hub.limits import STORAGE_PROPERTY, Limits, LimitsHook
from sporthub.settings import ENV_PREFIX, Settings, SettingsError

# the docker profile's settings: this profile runs no container, so they would do nothing
IGNORED = {
    "singleuser_image": "people's servers run from this machine's environment, not an image",
    "docker_network": "no containers in this profile",
    "docker_hub_host": "no containers in this profile",
    "docker_name_prefix": "no containers in this profile",
}
# homes here are folders on this machine's disk (a system user's home, or <data>/users/<name>);
# SportHub makes no filesystem quota for them (this profile's machines often have none: no XFS
# or ext4 quota support in their kernels), so a home size is refused rather than ignored
STORAGE_REFUSED = ("{what}: the local profile does not limit the size of people's homes (they "
                   "are folders on this machine's disk); use SPORTHUB_PROFILE=docker with the "
                   "engine's volumes on XFS with project quotas (docs/production.md), or the "
                   "filesystem's own user quotas (setquota)")
# a hub that is not root cannot hold a person's server to a size: it runs under the hub's account
LIMITS = ("user_mem_limit", "user_cpu_limit")

# what the rest of SportHub asks of a profile (sporthub.hub.profiles)
COMMANDS_ELSEWHERE: dict[str, str] = {}
RUNS_CONTAINERS = False  # `make images` here builds the docker profile's images, and says so
HOMES = "here"  # <data>/users/<name>, or each person's system user's home (hub run as root)
STACK_SECRETS = False

# Jupyter AI's gateway configuration, installed where every user server of this Python reads it
SINGLEUSER_SOURCE = Path(__file__).resolve().parents[2] / "singleuser"
SINGLEUSER_FILES = {
    "jupyter_server_config.py": Path("etc/jupyter/jupyter_server_config.py"),
    "ipython_config.py": Path("etc/ipython/ipython_config.py"),
    # no "would you like news?" pop-up: the hub's users are not the place to ask, and a
    # closed server often cannot reach the news feed anyway
    "overrides.json": Path("share/jupyter/lab/settings/overrides.json"),
}


def is_root() -> bool:
    return os.geteuid() == 0


def check(settings: Settings) -> str | None:
    """Stop a start that would not be safe or would ignore a setting (:class:`SettingsError`);
    return what the admin should be told at start, if anything."""
    ignored = [f"{ENV_PREFIX}{name.upper()} ({why})" for name, why in IGNORED.items()
               if name in settings.model_fields_set]
    if ignored:
        raise SettingsError("SPORTHUB_PROFILE=local has no use for these (they are the docker "
                            "profile's): " + "; ".join(ignored))
    if settings.user_storage_limit is not None:
        raise SettingsError(STORAGE_REFUSED.format(what=f"{ENV_PREFIX}USER_STORAGE_LIMIT")
                            + "; unset it")
    if is_root():
        return None  # safe: prepare_user_environment and check_user_environment do the rest
    if "local_user_prefix" in settings.model_fields_set:
        raise SettingsError(
            f"{ENV_PREFIX}LOCAL_USER_PREFIX: system users are made only by a hub running as root")
    limits = [f"{ENV_PREFIX}{name.upper()}" for name in LIMITS if name in settings.model_fields_set]
    if limits:
        raise SettingsError(
            f"{', '.join(limits)}: this hub does not run as root, so every person's server runs "
            "under its own account and cannot be held to a size. Run the hub as root (each "
            "person's server then runs as a system user of their own, within these limits), use "
            f"{ENV_PREFIX}PROFILE=docker, or unset them.")
    if not localusers.is_loopback(settings.ip):
        raise SettingsError(
            f"{ENV_PREFIX}IP={settings.ip}: this hub does not run as root, so every person's "
            "server would run under its account and could read the others' files and the hub's "
            "secrets. It listens on this machine only (127.0.0.1). For several people run it as "
            f"root (each person gets a system user of their own) or use {ENV_PREFIX}PROFILE=docker.")
    return ("single-person trial: the hub does not run as root, so every server runs under "
            "this account and sees its files; it listens on this machine only")


def prepare(settings: Settings) -> None:
    install_singleuser_config()
    if is_root():
        # people's servers run as system users: they need a Python they may read
        localusers.check_user_environment(localusers.prepare_user_environment())


def install_singleuser_config() -> None:
    """Put Jupyter AI's gateway configuration where every user server of this Python reads it."""
    for name, target in SINGLEUSER_FILES.items():
        destination = Path(sys.prefix) / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        source = SINGLEUSER_SOURCE / name
        if not destination.exists() or destination.read_bytes() != source.read_bytes():
            shutil.copyfile(source, destination)


def configure(c, settings: Settings) -> None:
    check(settings)  # also when the hub is started without `sporthub up`
    data_dir = common.base(c, settings)
    common.accounts(c, settings)
    common.llm_access(c, settings)
    common.user_servers(c, settings)
    spawner(c, settings, data_dir)
    c.Spawner.pre_spawn_hook = LimitsHook(apply_limits, settings.user_mem_limit,
                                          settings.user_cpu_limit)
    common.capacity(c, settings, settings.idle_timeout_s)
    common.services(c, settings)


def spawner(c, settings: Settings, data_dir: Path) -> None:
    """Local processes: under a system user per person (hub as root), else the hub's own."""
    c.Spawner.start_timeout = 120
    # a first JupyterLab start imports Jupyter AI (12-20 s on a busy 2-core server); the
    # default 30 s for it to answer made the hub give up on servers that were nearly up
    c.Spawner.http_timeout = 120
    if is_root():
        c.JupyterHub.spawner_class = "sporthub.hub.localusers.SystemUserSpawner"
        c.SystemUserSpawner.user_prefix = settings.local_user_prefix
        # the environment `sporthub prepare` made for them under /opt
        c.Spawner.cmd = [str(localusers.user_environment() / "bin" / "jupyterhub-singleuser")]
    else:
        c.Spawner.cmd = [str(Path(sys.prefix) / "bin" / "jupyterhub-singleuser")]
        # a single-person trial (check keeps it on loopback): homes in the data dir
        c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
        c.SimpleLocalProcessSpawner.home_dir_template = str(data_dir / "users" / "{username}")


def apply_limits(spawner, limits: Limits) -> None:
    """One person's limits onto their local server (called by the profiles' one pre_spawn_hook).

    JupyterHub hands them to the server as ``MEM_LIMIT`` / ``CPU_LIMIT`` (shown by JupyterLab);
    holding the processes to them is the kernel's job. With the hub run as root, the person's
    system user's server joins a cgroup of these sizes (sporthub.hub.cgroups), made here before
    the start: a limit that cannot be set stops the start; a hub that is not root accepts no
    limit setting (``check``), so there is nothing to hold. A home size (a group's
    ``user_storage_limit``) stops the start: this profile cannot hold a home to it.
    """
    if limits.storage_bytes is not None:
        groups = sorted(g.name for g in spawner.user.groups
                        if (g.properties or {}).get(STORAGE_PROPERTY) not in (None, ""))
        raise ValueError(STORAGE_REFUSED.format(
            what=f"the group property {STORAGE_PROPERTY} (of {', '.join(groups)})")
            + "; remove it from those groups in the admin panel")
    spawner.mem_limit = limits.mem_bytes
    spawner.cpu_limit = limits.cpus
    if isinstance(spawner, localusers.SystemUserSpawner):  # the hub runs as root
        spawner.cgroup_procs = [str(p) for p in cgroups.prepare(
            spawner.system_user, limits.mem_bytes, limits.cpus)]
