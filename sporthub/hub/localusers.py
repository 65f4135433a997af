"""The ``local`` profile made safe: a system user per person, or a single-person trial.

A hub running as root starts each person's server as a Unix user of its own, created on the first
start with a private home, the way The Littlest JupyterHub does (``useradd --create-home``, home
0700). The hub's data directory stays root's, so a person can read neither another's files nor the
hub's secrets. A hub that is not root can only run servers under its own account: everyone could
then read everything, so it serves one person on this machine (loopback) and nothing more.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import List, Unicode

from sporthub.hub.cgroups import join as join_cgroups
from sporthub.settings import SettingsError
from sporthub.stack_secrets import STACK_SECRETS

# Linux user names: at most 32 characters; these are safe for useradd everywhere
MAX_NAME = 32
SAFE = re.compile(r"[^a-z0-9_.-]")
# useradd gives ordinary users UIDs from here (login.defs UID_MIN); below are system accounts
UID_MIN = 1000
# what a person's server imports; each must be readable by a user that is not root
USER_MODULES = ("jupyterhub", "jupyter_server", "jupyterlab", "jupyter_ai", "sportlab",
                "sporthub_coach")


def system_username(hub_name: str, prefix: str) -> str:
    """``<prefix><hub name>``; a name that is too long or unsafe gets a hash so that two hub
    names never share a system user."""
    safe = SAFE.sub("-", hub_name.lower())
    name = prefix + safe
    if safe != hub_name or len(name) > MAX_NAME:
        digest = hashlib.sha256(hub_name.encode()).hexdigest()[:6]
        name = f"{prefix}{safe[:MAX_NAME - len(prefix) - 7]}-{digest}"
    return name


def ensure_system_user(name: str, hub_name: str) -> pwd.struct_passwd:
    """The system user ``name``, created if missing; its home exists, is its own and is 0700."""
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        # no password (locked): the person reaches this account through the hub only
        result = subprocess.run(
            ["useradd", "--create-home", "--user-group", "--shell", "/bin/bash",
             "--comment", f"SportHub user {hub_name}", name],
            capture_output=True, text=True, check=False)
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            raise RuntimeError(f"useradd {name} failed: {result.stderr.strip()}") from None
    if user.pw_uid < UID_MIN:
        # never start a person's server as root or as a service account
        raise RuntimeError(f"system user {name} is a system account (uid {user.pw_uid})")
    home = Path(user.pw_dir)
    home.mkdir(mode=0o700, exist_ok=True)
    os.chown(home, user.pw_uid, user.pw_gid)
    home.chmod(0o700)
    return user


class SystemUserSpawner(LocalProcessSpawner):
    """LocalProcessSpawner under ``<user_prefix><name>``, a system user made on first start."""

    user_prefix = Unicode("jupyter-", config=True, help="system user name = prefix + hub name")

    @property
    def system_user(self) -> str:
        return system_username(self.user.name, self.user_prefix)

    async def start(self):
        await asyncio.to_thread(ensure_system_user, self.system_user, self.user.name)
        return await super().start()

    # the person's cgroup files (sporthub.hub.cgroups), filled by the profile's pre_spawn_hook
    cgroup_procs = List(Unicode(), config=False)

    def make_preexec_fn(self, name):
        drop = super().make_preexec_fn(self.system_user)
        procs = [Path(p) for p in self.cgroup_procs]

        def preexec():
            # as root still: the person cannot move their processes out of the group later
            join_cgroups(procs)
            drop()

        return preexec

    def user_env(self, env):
        user = pwd.getpwnam(self.system_user)
        env.update(USER=user.pw_name, HOME=user.pw_dir, SHELL=user.pw_shell or "/bin/bash",
                   **user_environment_variables())
        return env


def is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


# people's Python environments live here: root writes, everyone reads
USER_ENVS = Path("/opt/sporthub-local")
VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"


def user_environment() -> Path:
    """The Python environment people's servers run: one per hub environment (``sys.prefix``)."""
    return USER_ENVS / f"user-{hashlib.sha256(sys.prefix.encode()).hexdigest()[:10]}"


def user_environment_variables() -> dict[str, str]:
    """What a process of the user environment needs: its PATH, and libpython of a runtime copy
    (the interpreter's RUNPATH names the original folder, which users may not enter)."""
    return {"PATH": f"{user_environment() / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "LD_LIBRARY_PATH": str(_runtime() / "lib")}


def prepare_user_environment() -> Path:
    """A virtualenv under /opt that sees the hub's packages, run by an interpreter users can read.

    The hub's own environment may sit where users cannot go (a clone in /root; here the
    interpreter is pyenv's in /root). TLJH keeps a user environment in /opt/tljh/user; this one
    shares the hub's installed packages through a .pth file and Jupyter's etc/ and share/ through
    links, so it needs no second install and stays in step with the hub's pins."""
    env = user_environment()
    runtime = _ensure_runtime()
    stamp = env / "sporthub-runtime"
    if stamp.exists() and stamp.read_text() == str(runtime):
        return env
    USER_ENVS.mkdir(mode=0o755, parents=True, exist_ok=True)
    staged = env.with_name(f"{env.name}.partial-{os.getpid()}")
    subprocess.run([str(runtime / "bin" / VERSION), "-m", "venv", "--without-pip", str(staged)],
                   check=True, capture_output=True)
    hub_site = Path(sysconfig.get_paths()["purelib"])
    site = staged / "lib" / VERSION / "site-packages"
    # addsitedir also runs the hub's .pth files (the editable installs of sportlab and the Coach)
    (site / "sporthub-hub-env.pth").write_text(f"import site; site.addsitedir({str(hub_site)!r})\n")
    for shared in ("etc", "share"):  # Jupyter's config (ours included) and data (lab extensions)
        (staged / shared).symlink_to(Path(sys.prefix) / shared)
    # the command people's servers run, under its usual name (ps, logs)
    script = staged / "bin" / "jupyterhub-singleuser"
    script.write_text(f"#!{env / 'bin' / 'python'}\n"
                      "from jupyterhub.singleuser import main\n\nmain()\n")
    script.chmod(0o755)
    (staged / "sporthub-runtime").write_text(str(runtime))
    shutil.rmtree(env, ignore_errors=True)
    staged.rename(env)
    return env


def _runtime() -> Path:
    """The interpreter's installation, or a copy of it under /opt when users cannot reach it."""
    base = Path(sys.base_prefix).resolve()
    if _untraversable(base / "bin") is None:
        return base
    return USER_ENVS / f"{VERSION}-{hashlib.sha256(str(base).encode()).hexdigest()[:10]}"


def _ensure_runtime() -> Path:
    runtime = _runtime()
    if runtime.exists():
        return runtime
    base = Path(sys.base_prefix).resolve()
    staged = runtime.with_name(f"{runtime.name}.partial-{os.getpid()}")
    USER_ENVS.mkdir(mode=0o755, parents=True, exist_ok=True)
    # hard links where possible: the same files, readable by their own modes, no extra space
    copy = _link_or_copy
    (staged / "bin").mkdir(parents=True)
    copy(base / "bin" / VERSION, staged / "bin" / VERSION)
    (staged / "lib").mkdir()
    for lib in (base / "lib").glob("libpython*"):
        copy(lib, staged / "lib" / lib.name)
    shutil.copytree(base / "lib" / VERSION, staged / "lib" / VERSION, copy_function=copy,
                    # with the compiled modules: users cannot write them, and without them every
                    # server would compile the standard library again at each start
                    symlinks=True, ignore=shutil.ignore_patterns("site-packages", "test"))
    (staged / "lib" / VERSION / "site-packages").mkdir()
    try:
        staged.rename(runtime)
    except OSError:  # another hub on this machine made it meanwhile
        shutil.rmtree(staged)
    return runtime


def _link_or_copy(source, destination) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


# run as nobody: can an unprivileged user open every module a person's server imports?
PROBE = """
import importlib.util, sys
for name in sys.argv[2:]:
    spec = importlib.util.find_spec(name)
    if spec is None:
        sys.exit(f"cannot import {name}")
    open(spec.origin, "rb").close()
open(sys.argv[1], "rb").close()
"""


def check_user_environment(env: Path) -> None:
    """People's servers run ``env`` as users that are not root: make sure they can.

    A hub environment under a folder others cannot traverse (a clone in ``/root``, which is 0700)
    fails here, with a message, rather than at the first spawn with an error in the hub's log."""
    config = env / "etc" / "jupyter" / "jupyter_server_config.py"
    nobody = _nobody()
    try:
        result = subprocess.run(
            [str(env / "bin" / "python"), "-c", PROBE, str(config), *USER_MODULES],
            user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], cwd="/",
            env=user_environment_variables(), capture_output=True, text=True, timeout=60,
            check=False)
        problem = result.stderr.strip().splitlines()[-1] if result.returncode else None
    except OSError as e:
        problem = str(e)
    if problem is None:
        return
    blocked = _untraversable(Path(sysconfig.get_paths()["purelib"])) or \
        _untraversable(Path(__file__).resolve())
    fix = (f" or, if nothing private lies in {blocked}, let others traverse it: "
           f"chmod o+x {blocked}") if blocked else ""
    raise SettingsError(
        f"people's servers run as system users of their own, and such a user cannot use "
        f"SportHub's Python environment ({problem}). Put SportHub in a folder "
        f"others may traverse (for example /srv/sporthub){fix}")


def _nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return pwd.struct_passwd(("nobody", "x", 65534, 65534, "", "/", "/bin/false"))


def _untraversable(path: Path) -> Path | None:
    """The first folder above ``path`` that others may not enter, if any."""
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def harden_data_dir(data_dir: Path, stack_secrets: bool = False) -> None:
    """The data directory and everything in it: the hub's account only (0700 folders, 0600 files).

    Homes of a single-person trial (``users/``) are that person's and left as they are. With
    ``stack_secrets`` (the docker profile, whose ``secrets/`` is the Compose stack's, mounted),
    the stack's secret files get the modes ``sporthub secrets`` gave them: Prometheus, Grafana
    and PostgreSQL read some as users of their own (the folder stays 0700 on the host)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for folder, dirs, files in os.walk(data_dir):
        if Path(folder) == data_dir and "users" in dirs:
            dirs.remove("users")
        for name in dirs:
            (Path(folder) / name).chmod(0o700)
        for name in files:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            if stack_secrets and Path(folder) == data_dir / "secrets" and name in STACK_SECRETS:
                path.chmod(STACK_SECRETS[name])
            else:
                path.chmod(stat.S_IMODE(path.stat().st_mode) & 0o700)
