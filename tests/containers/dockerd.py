"""Docker Engine for the container tier: Debian's ``dockerd`` (package ``docker.io``, 20.10), with a
socket, data root and exec root of its own in a temporary folder, started and stopped here.

The guide names Docker Engine first, so the tier runs on it as well as on podman. Nothing of the
machine's own Docker (if any) is touched: no /var/run/docker.sock, no /var/lib/docker, its own
config file. Images built by the podman run of the same session are carried over
(``podman save | docker load``) instead of being built a second time: an image's ID is the digest
of its configuration, the same on both engines, so the inputs label still matches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sporthub.containers import engine as engines
from sporthub.containers.engine import Engine, EngineError

PACKAGES = ("docker.io", "runc", "containerd", "iptables")
# Debian's 20.10 client, which builds with BuildKit itself; a newer static `docker` earlier on
# PATH would need the buildx plugin
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Dockerd(Engine):
    root: Path | None = None

    def stop(self) -> None:
        if self.service is not None and self.service.poll() is None:
            # the bridges of its networks would outlive the daemon (and its data root)
            self.run("network", "prune", "--force", check=False, capture_output=True)
        super().stop()  # SIGTERM: dockerd stops its containers and its containerd, then exits
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def install(progress=print) -> None:
    missing = [p for p in PACKAGES if not engines._installed(p)]
    if missing:
        engines.apt_install(missing, progress)


def start(progress=print, timeout: float = 90) -> Dockerd:
    """A dockerd of the tests' own; fails with dockerd's own words."""
    if os.geteuid() != 0:
        raise EngineError("dockerd runs as root here (bridge networks, cgroup limits)")
    install(progress)
    # short: containerd's sockets live under the exec root (a socket path has 108 bytes at most)
    root = Path(tempfile.mkdtemp(prefix="shd-", dir="/tmp"))
    socket = root / "docker.sock"
    (root / "daemon.json").write_text("{}\n")
    log = root / "dockerd.log"
    command = [
        "dockerd", "--host", f"unix://{socket}", "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
        "--config-file", str(root / "daemon.json"),
        # no default bridge (docker0 may be another daemon's): DockerSpawner makes its own network
        "--bridge", "none",
        # what works on these machines without systemd (as for podman): cgroupfs, runc,
        # ulimits at or below the machine's
        "--exec-opt", "native.cgroupdriver=cgroupfs", "--default-runtime", "runc",
        "--default-ulimit", "nofile=20000:20000", "--default-ulimit", "nproc=4096:4096",
    ]
    progress(f"starting dockerd on {socket} (log: {log})")
    started = time.monotonic()
    with log.open("ab") as out:
        service = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, "PATH": PATH})
    engine = Dockerd("docker", socket, env={"DOCKER_HOST": f"unix://{socket}",
                                            "DOCKER_BUILDKIT": "1", "PATH": PATH},
                     service=service, root=root)
    while not engines.answers(socket):
        if service.poll() is not None or time.monotonic() - started > timeout:
            text = log.read_text(errors="replace")[-3000:]
            engine.stop()
            raise EngineError(f"dockerd did not start:\n{text}")
        time.sleep(0.2)
    progress(f"dockerd answers after {time.monotonic() - started:.1f} s")
    return engine


def carry_over(engine: Engine, images: list[str], progress=print) -> list[str]:
    """Load into ``engine`` each image podman has and it has not; returns those carried."""
    podman = Engine("podman", engines.PODMAN_SOCKET, env=engines.podman_environment())
    carried = []
    for image in images:
        if engine.run("image", "inspect", image, check=False, capture_output=True).returncode == 0:
            continue
        if podman.run("image", "exists", image, check=False).returncode != 0:
            continue
        progress(f"carrying {image} over from podman")
        save = subprocess.Popen(podman.cli("save", "--format", "docker-archive", image),
                                env={**os.environ, **podman.env}, stdout=subprocess.PIPE)
        engine.run("load", stdin=save.stdout, stdout=subprocess.DEVNULL)
        if save.wait() != 0:
            raise EngineError(f"podman save {image} failed")
        carried.append(image)
    return carried
