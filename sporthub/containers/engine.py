"""A Docker-compatible engine to build images and run user containers.

Docker Engine when its daemon answers; otherwise podman from Debian, set up by SportHub itself:
its packages installed with apt, its configuration and storage kept apart from any other podman
use on the machine (``~/.cache/sporthub/podman``), and its Docker-compatible API served on a socket
of its own. The settings are those measured to work on root-only VMs without systemd: runtime
``runc`` (crun fails there), cgroup manager ``cgroupfs``, explicit ulimits at or below the
machine's, and netavark bridge networks (real network namespaces; host networking would let a
container reach every service on the host's loopback).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sporthub" / "podman"
RUN_DIR = Path("/run/sporthub-podman")
PODMAN_SOCKET = RUN_DIR / "podman.sock"
DOCKER_SOCKET = Path("/var/run/docker.sock")
# what podman needs here: the OCI runtime, networking (netavark + iptables), an init for PID 1,
# and debootstrap for the base image built from Debian packages
PODMAN_PACKAGES = ("podman", "runc", "conmon", "netavark", "aardvark-dns", "iptables",
                   "slirp4netns", "uidmap", "catatonit", "debootstrap")

CONTAINERS_CONF = """\
# written by sporthub.containers.engine: podman settings that work on these machines
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
network_config_dir = "{cache}/networks"
"""

STORAGE_CONF = """\
# written by sporthub.containers.engine: SportHub's images and volumes, apart from other podman use
[storage]
driver = "overlay"
graphroot = "{cache}/storage"
runroot = "{run}/storage"
"""


class EngineError(Exception):
    """No engine could be found or started; the message says why."""


@dataclass
class Engine:
    kind: str  # "docker" or "podman"
    socket: Path
    env: dict[str, str] = field(default_factory=dict)
    service: subprocess.Popen | None = None  # the podman service, when we started it

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def cli(self, *args: str) -> list[str]:
        return [self.kind, *args]

    def run(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.cli(*args), env={**os.environ, **self.env}, check=check,
                              text=True, **kwargs)

    def stop(self) -> None:
        """Stop the API service if this process started it (never someone else's)."""
        if self.service is not None and self.service.poll() is None:
            self.service.terminate()
            try:
                self.service.wait(30)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait()
        self.service = None


def answers(socket: Path) -> bool:
    """Does a Docker-compatible API answer on this socket?"""
    if not socket.is_socket():
        return False
    try:
        transport = httpx.HTTPTransport(uds=str(socket))
        with httpx.Client(transport=transport, timeout=5) as client:
            return client.get("http://engine/_ping").text.strip() == "OK"
    except httpx.HTTPError:
        return False


def find(progress=print, serve: bool = True) -> Engine:
    """Docker Engine if it runs here, else podman (installed and configured if needed).

    With ``serve``, podman's Docker-compatible API is started if it is not answering yet; the
    returned engine stops it again in :meth:`Engine.stop` only if it started it.
    """
    if shutil.which("docker") and answers(DOCKER_SOCKET):
        return Engine("docker", DOCKER_SOCKET)
    engine = Engine("podman", PODMAN_SOCKET, env=podman_environment())
    install_podman(progress)
    if serve and not answers(PODMAN_SOCKET):
        engine.service = start_service(engine, progress)
    return engine


def podman_environment() -> dict[str, str]:
    """Point podman at SportHub's own configuration (written here, once or when it changed)."""
    values = {"cache": CACHE, "run": RUN_DIR}
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "networks").mkdir(exist_ok=True)
    files = {"containers.conf": CONTAINERS_CONF, "storage.conf": STORAGE_CONF}
    for name, template in files.items():
        path = CACHE / name
        text = template.format(**values)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return {"CONTAINERS_CONF": str(CACHE / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(CACHE / "storage.conf")}


def install_podman(progress=print) -> None:
    missing = [p for p in PODMAN_PACKAGES if not _installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise EngineError("no Docker engine runs here and podman is not installed; as root run: "
                          f"apt-get install {' '.join(missing)}")
    apt_install(missing, progress)


def apt_install(missing: list[str], progress=print) -> None:
    """Debian packages the engine's tooling needs, installed with apt (as root only)."""
    if os.geteuid() != 0:
        raise EngineError(f"{' '.join(missing)} is needed; as root run: "
                          f"apt-get install {' '.join(missing)}")
    progress(f"installing {' '.join(missing)} with apt (once per machine)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # another install (a browser for the tests, a second tier) may hold dpkg's lock: wait for it
    wait = ["-o", "DPkg::Lock::Timeout=600"]
    for command in (["apt-get", *wait, "update", "-qq"],
                    ["apt-get", *wait, "install", "-y", "-qq", "--no-install-recommends", *missing]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EngineError(f"apt-get {command[3]} failed:\n{result.stderr[-2000:]}")


def _installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip().endswith("install ok installed")


def start_service(engine: Engine, progress=print, timeout: float = 60) -> subprocess.Popen:
    """podman's Docker-compatible API on SportHub's socket; fails with podman's own words."""
    if os.geteuid() != 0:
        raise EngineError("podman's API service for SportHub runs as root (bridge networks and "
                          "cgroup limits need it)")
    RUN_DIR.mkdir(mode=0o700, exist_ok=True)
    engine.socket.unlink(missing_ok=True)
    log = CACHE / "service.log"
    progress(f"starting podman's Docker-compatible API on {engine.socket} (log: {log})")
    with log.open("ab") as out:
        service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", engine.docker_host],
            env={**os.environ, **engine.env}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not answers(engine.socket):
        if service.poll() is not None or time.monotonic() > deadline:
            service.kill()
            raise EngineError(f"podman's API service did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return service
