"""Docker Engine for the container tier: Debian's ``dockerd`` (package ``docker.io``, 20.10), with a
socket, data root and exec root of its own, started and stopped here.

The guide names Docker Engine first, so the tier runs on it as well as on podman. Nothing of the
machine's own Docker (if any) is touched: no /var/run/docker.sock, no /var/lib/docker, its own
config file. Its data root stays in ``~/.cache/sporthub/docker`` (as podman's storage stays in
``~/.cache/sporthub/podman``): the base image, the images built by their inputs and BuildKit's
pip cache are there for the next run, which rebuilds only what changed. One dockerd at a time
uses it (a lock file): a second run waits for the first.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sporthub.containers import engine as engines
from sporthub.containers import images
from sporthub.containers.engine import Engine, EngineError

PACKAGES = ("docker.io", "runc", "containerd", "iptables")
# Debian's 20.10 client, which builds with BuildKit itself; a newer static `docker` earlier on
# PATH would need the buildx plugin
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# kept between runs (images, build cache); the exec root holds containerd's sockets (a socket's
# path has 108 bytes at most) and the daemon's run state: short, and gone with the machine
DATA_ROOT = engines.CACHE.parent / "docker"
RUN_ROOT = Path("/run/sporthub-dockerd")


@dataclass
class Dockerd(Engine):
    lock: int | None = None  # the data root's lock, held while this dockerd runs
    host_forwarding: dict | None = None  # what dockerd changes on the host, as it was before

    def stop(self) -> None:
        if self.service is not None and self.service.poll() is None:
            # the bridges of its networks would outlive the daemon; containers left by a test
            # that failed half-way would hold on to their volumes in the kept data root
            self.run("container", "prune", "--force", check=False, capture_output=True)
            self.run("network", "prune", "--force", check=False, capture_output=True)
        super().stop()  # SIGTERM: dockerd stops its containers and its containerd, then exits
        if self.host_forwarding is not None:
            restore_forwarding(self.host_forwarding)
            self.host_forwarding = None
        if self.lock is not None:
            os.close(self.lock)  # releases the flock
            self.lock = None


# dockerd sets the host's FORWARD policy to DROP and makes bridged traffic pass iptables
# (br_netfilter); it leaves both so when it stops. Podman's internal networks (the Compose
# stack's db, users, llm and metrics) get no ACCEPT rule from netavark, so after a Docker run their
# containers could no longer reach each other: the compose tier's hub never reached PostgreSQL
BRIDGE_SYSCTLS = tuple(Path("/proc/sys/net/bridge") / f"bridge-nf-call-{table}"
                       for table in ("iptables", "ip6tables"))


def save_forwarding() -> dict:
    """The FORWARD policies and bridge sysctls as they are now (None: not there yet)."""
    state: dict = {}
    for tool in ("iptables", "ip6tables"):
        listed = subprocess.run([tool, "-S", "FORWARD"], capture_output=True, text=True,
                                check=False, env={**os.environ, "PATH": PATH})
        first = listed.stdout.split("\n", 1)[0].split()
        state[tool] = first[2] if listed.returncode == 0 and first[:2] == ["-P", "FORWARD"] \
            else None
    for sysctl in BRIDGE_SYSCTLS:
        state[str(sysctl)] = sysctl.read_text().strip() if sysctl.exists() else "0"
    return state


def restore_forwarding(state: dict) -> None:
    for tool in ("iptables", "ip6tables"):
        if state.get(tool):
            subprocess.run([tool, "-P", "FORWARD", state[tool]], capture_output=True,
                           check=False, env={**os.environ, "PATH": PATH})
    for sysctl in BRIDGE_SYSCTLS:
        if sysctl.exists():
            sysctl.write_text(state[str(sysctl)] + "\n")


def install(progress=print) -> None:
    missing = [p for p in PACKAGES if not engines._installed(p)]
    if missing:
        engines.apt_install(missing, progress)


def lock_data_root(progress=print, timeout: float = 1500) -> int:
    """An exclusive lock on the data root (two dockerds on one data root corrupt it)."""
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    fd = os.open(DATA_ROOT.parent / "docker.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise EngineError(f"{DATA_ROOT} stayed in use by another test run") from None
            if not said:
                progress(f"{DATA_ROOT} is in use by another test run: waiting for it")
                said = True
            time.sleep(2)


def start(progress=print, timeout: float = 90) -> Dockerd:
    """A dockerd of the tests' own; fails with dockerd's own words."""
    if os.geteuid() != 0:
        raise EngineError("dockerd runs as root here (bridge networks, cgroup limits)")
    install(progress)
    lock = lock_data_root(progress)
    RUN_ROOT.mkdir(mode=0o700, exist_ok=True)
    socket = RUN_ROOT / "docker.sock"
    socket.unlink(missing_ok=True)  # left by a run that was killed
    (RUN_ROOT / "daemon.json").write_text("{}\n")
    log = DATA_ROOT.parent / "dockerd.log"
    command = [
        "dockerd", "--host", f"unix://{socket}", "--data-root", str(DATA_ROOT),
        "--exec-root", str(RUN_ROOT / "exec"), "--pidfile", str(RUN_ROOT / "dockerd.pid"),
        "--config-file", str(RUN_ROOT / "daemon.json"),
        # no default bridge (docker0 may be another daemon's): DockerSpawner makes its own network
        "--bridge", "none",
        # what works on these machines without systemd (as for podman): cgroupfs, runc,
        # ulimits at or below the machine's
        "--exec-opt", "native.cgroupdriver=cgroupfs", "--default-runtime", "runc",
        "--default-ulimit", "nofile=20000:20000", "--default-ulimit", "nproc=4096:4096",
    ]
    progress(f"starting dockerd on {socket} (log: {log})")
    forwarding = save_forwarding()
    started = time.monotonic()
    with log.open("wb") as out:  # this run's only
        service = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, "PATH": PATH})
    engine = Dockerd("docker", socket, env={"DOCKER_HOST": f"unix://{socket}",
                                            "DOCKER_BUILDKIT": "1", "PATH": PATH},
                     service=service, lock=lock, host_forwarding=forwarding)
    while not engines.answers(socket):
        if service.poll() is not None or time.monotonic() - started > timeout:
            text = log.read_text(errors="replace")[-3000:]
            engine.stop()
            raise EngineError(f"dockerd did not start:\n{text}")
        time.sleep(0.2)
    progress(f"dockerd answers after {time.monotonic() - started:.1f} s")
    return engine


def carry_over(engine: Engine, tags: dict[str, str], progress=print) -> list[str]:
    """A new data root (no Debian base yet): load the base podman made and each image podman has
    up to date ({tag: image name}) instead of building them again; returns the tags carried.

    An image's ID is the digest of its configuration, the same on both engines: with the same
    base, the inputs label matches. A data root with a base of its own builds its own images
    (BuildKit's layer cache keeps that short), so Docker Engine's builds are tested too."""
    podman = Engine("podman", engines.PODMAN_SOCKET, env=engines.podman_environment())
    if images.image_id(engine, images.DEBIAN_BASE) or not images.image_id(podman,
                                                                          images.DEBIAN_BASE):
        return []
    carried = [images.DEBIAN_BASE]
    _carry(podman, engine, images.DEBIAN_BASE, progress)
    for tag, name in tags.items():
        if images.image_label(podman, tag) == images.expected_digest(engine, name, "debian"):
            _carry(podman, engine, tag, progress)
            carried.append(tag)
    return carried


def _carry(podman: Engine, engine: Engine, image: str, progress=print) -> None:
    progress(f"carrying {image} over from podman")
    save = subprocess.Popen(podman.cli("save", "--format", "docker-archive", image),
                            env={**os.environ, **podman.env}, stdout=subprocess.PIPE)
    engine.run("load", stdin=save.stdout, stdout=subprocess.DEVNULL)
    if save.wait() != 0:
        raise EngineError(f"podman save {image} failed")
    # podman names a short name localhost/<name> in the archive; Docker then knows only that
    # name: the same image (its ID) gets the name the tier asks for
    tagged = engine.run("tag", images.image_id(podman, image), image, check=False,
                        capture_output=True)
    if tagged.returncode != 0:
        progress(f"{image} loaded with another ID than podman's ({tagged.stderr.strip()}): "
                 "Docker Engine builds it")
