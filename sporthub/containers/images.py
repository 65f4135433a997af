"""Build SportHub's images: ``singleuser`` (one person's JupyterLab) and ``hub`` (production).

An image is rebuilt only when its inputs changed: the files of its build context, its Dockerfile
and its base. Their digest is stored as a label on the image and compared before building, so an
unchanged tree costs one ``image inspect``. Layers that must be rebuilt still reuse pip's cache.

The base is the Dockerfile's default (a pinned public Python image) unless ``base="debian"``:
then a Debian bookworm base is made here from Debian packages (``debootstrap`` + ``import``),
for machines that pull nothing from container registries.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sporthub.containers import engine as engines
from sporthub.containers.engine import Engine, EngineError
from sporthub.llm import build as llama_build

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# what the docker profile runs; `llm` (llama-server on the CPU) only with compose.cpu.yaml
PROFILE_IMAGES = ("singleuser", "hub")
IMAGES = (*PROFILE_IMAGES, "llm")
INPUTS_LABEL = "org.sporthub.inputs"
DEBIAN_BASE = "localhost/sporthub-debian:bookworm"
# the base must bring Python 3.11+ with venv; the rest is installed by the Dockerfiles
DEBIAN_BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# what goes into the build context: the packages, their metadata, the notebooks, the proxy's pin
CONTEXT = ("pyproject.toml", "jupyterhub_config.py", "package.json",
           "package-lock.json", "sporthub", "sportlab", "extensions", "notebooks")
# an image that reads less than that: its digest, and so its rebuilds, follow only what it reads
# (llm compiles llama-server for minutes; a change in the hub's code must not trigger that)
CONTEXT_OF = {"llm": ("sporthub/llm/build.py",)}
# (as .dockerignore: the status bar's node_modules and TypeScript output are not the image's)
SKIP = re.compile(r"(__pycache__|\.egg-info|\.ipynb_checkpoints|\.pytest_cache|/build/|\.pyc$"
                  r"|/node_modules/|sporthub-statusbar/lib/)")
# the Debian release of every base (the default's python:3.11-slim-bookworm, and DEBIAN_BASE): a
# llama-server compiled on a host of the same release runs in the llm image as it is
IMAGE_DEBIAN_RELEASE = "bookworm"
# pip and npm inside the build trust what this machine trusts (a build secret: not in any layer)
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# how much of a failed build's output its error message carries
LOG_TAIL_LINES = 30


def tag_for(name: str) -> str:
    return f"sporthub-{name}:latest"


def inputs_digest(name: str, base: str) -> str:
    digest = hashlib.sha256(f"{name}\0{base}\0".encode())
    for top in (*CONTEXT_OF.get(name, CONTEXT), f"images/{name}"):
        path = PROJECT_ROOT / top
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            relative = file.relative_to(PROJECT_ROOT).as_posix()
            if SKIP.search(relative):
                continue
            digest.update(relative.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def image_label(engine: Engine, image: str) -> str | None:
    result = engine.run("image", "inspect", "--format",
                        f'{{{{ index .Config.Labels "{INPUTS_LABEL}" }}}}', image,
                        check=False, capture_output=True)
    return result.stdout.strip() if result.returncode == 0 else None


def image_id(engine: Engine, image: str) -> str | None:
    result = engine.run("image", "inspect", "--format", "{{.Id}}", image,
                        check=False, capture_output=True)
    return result.stdout.strip() if result.returncode == 0 else None


def base_id(engine: Engine, base: str) -> str | None:
    """The base's ID as both engines would name it: Docker prefixes it with ``sha256:``, podman
    does not; the same base (carried from one engine to the other) gives the same digest."""
    found = image_id(engine, base)
    return found.removeprefix("sha256:") if found else None


def expected_digest(engine: Engine, name: str, base: str | None = None) -> str | None:
    """The inputs label an up-to-date ``name`` image would have on this engine (None: the Debian
    base is not made yet)."""
    if base != "debian":
        return inputs_digest(name, base or "default")
    found = base_id(engine, DEBIAN_BASE)
    return inputs_digest(name, found) if found else None


def debian_base(engine: Engine, progress=print) -> str:
    """A bookworm base with Python 3.11 made from Debian packages, once per machine."""
    if image_id(engine, DEBIAN_BASE):
        return DEBIAN_BASE
    mirror = apt_mirror()
    if shutil.which("debootstrap") is None:
        # podman's set-up installs it; with Docker Engine nothing had (found by the tier's
        # Docker Engine run: FileNotFoundError)
        engines.apt_install(["debootstrap"], progress)
    progress(f"making the base image {DEBIAN_BASE} with debootstrap from {mirror} (a few minutes)")
    with tempfile.TemporaryDirectory(prefix="sporthub-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase",
                        "--include=" + ",".join(DEBIAN_BASE_PACKAGES), "bookworm", str(rootfs),
                        mirror], check=True, stdout=subprocess.DEVNULL)
        (rootfs / "var/lib/apt/lists").mkdir(parents=True, exist_ok=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        engine.run("import", "--change", 'CMD ["/bin/bash"]', "-", DEBIAN_BASE,
                   stdin=tar.stdout, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise EngineError("could not pack the debootstrap tree")
    return DEBIAN_BASE


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for path in sources:
        if not path.exists():
            continue
        text = path.read_text()
        match = (re.search(r"^URIs:\s*(\S+)", text, re.MULTILINE)
                 or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.MULTILINE))
        if match:
            return match.group(1)
    raise EngineError("no Debian mirror found in /etc/apt/sources.list(.d): debootstrap needs one")


def build(engine: Engine, name: str, tag: str | None = None, base: str | None = None,
          progress=print) -> tuple[str, bool]:
    """Build one image unless its inputs are unchanged; returns (tag, whether it was built)."""
    tag = tag or tag_for(name)
    base_image = debian_base(engine, progress) if base == "debian" else base
    digest = expected_digest(engine, name, base)
    if image_label(engine, tag) == digest:
        progress(f"{tag} is up to date (inputs {digest})")
        return tag, False
    progress(f"building {tag} (inputs {digest}); pip's progress follows")
    command = ["build", "--network", "host", "--label", f"{INPUTS_LABEL}={digest}",
               "-t", tag]
    if base_image:
        command += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if HOST_CA_BUNDLE.exists():
        command += ["--secret", f"id=build-ca,src={HOST_CA_BUNDLE}"]
    started = time.monotonic()
    with _context(name, progress) as context:
        returncode, tail = _run_build(engine, [*command, "-f", f"{context}/images/{name}/Dockerfile",
                                               str(context)])
    if returncode != 0:
        raise EngineError(f"building {tag} failed (exit {returncode}); the build's last lines:\n"
                          + "".join(tail))
    progress(f"built {tag} in {time.monotonic() - started:.0f} s")
    return tag, True


@contextlib.contextmanager
def _context(name: str, progress=print):
    """The build context: the checkout, except for ``llm`` on a machine that already compiled
    llama-server for the embedded default and runs the images' Debian release. Then a copy of what
    the llm image reads, with that binary in ``images/llm/prebuilt/``, so the image copies it
    instead of compiling llama.cpp a second time (half an hour on 2 cores, in a cold CI)."""
    server = llama_build.server_binary()
    if name != "llm" or not server.exists() or host_debian_release() != IMAGE_DEBIAN_RELEASE:
        yield PROJECT_ROOT
        return
    progress(f"the llm image takes this machine's llama-server ({server}) instead of compiling it")
    with tempfile.TemporaryDirectory(prefix="sporthub-llm-context-") as tmp:
        context = Path(tmp)
        shutil.copytree(PROJECT_ROOT / "images" / name, context / "images" / name)
        for top in CONTEXT_OF[name]:
            (context / top).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / top, context / top)
        shutil.copy2(server, context / "images" / name / "prebuilt" / "llama-server")
        yield context


def host_debian_release() -> str | None:
    """This machine's Debian codename (``bookworm``), or None on another system."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return None
    if not re.search(r"^ID=\"?debian\"?$", text, re.MULTILINE):
        return None
    match = re.search(r"^VERSION_CODENAME=\"?(\w+)\"?$", text, re.MULTILINE)
    return match.group(1) if match else None


def _run_build(engine: Engine, args: list[str]) -> tuple[int, collections.deque]:
    """Run the build, its output passed through as it comes; returns (exit code, last lines).

    The last lines go into the error: run by pytest or a CI log, "failed, see above" pointed at
    output that was captured elsewhere or scrolled away."""
    # Docker's BuildKit prints its progress as plain lines (not a redrawn screen) when piped
    env = {**os.environ, "BUILDKIT_PROGRESS": "plain", **engine.env}
    tail: collections.deque = collections.deque(maxlen=LOG_TAIL_LINES)
    with subprocess.Popen(engine.cli(*args), env=env, cwd=PROJECT_ROOT, text=True,
                          errors="replace", stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as build:
        for line in build.stdout:
            print(line, end="", flush=True)
            tail.append(line)
    return build.returncode, tail
