"""Issue 17, item 15: `make images BASE=debian`, the guide's first step for the docker profile,
typed as written (no SPORTHUB_PROFILE yet), builds that profile's images.

Which images and with which base is decided here, before any engine work: the engine and the
build are replaced by recorders (a real build takes minutes per image; the container tier builds
them for real).
"""

from __future__ import annotations

import os

import pytest

from sporthub.containers import __main__ as command
from sporthub.containers import engine as engines
from sporthub.containers import images


@pytest.fixture
def builds(monkeypatch, tmp_path) -> list[tuple]:
    done: list[tuple] = []
    monkeypatch.chdir(tmp_path)  # no sporthub.toml of the checkout's
    for name in [n for n in os.environ if n.startswith("SPORTHUB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(engines, "find", lambda say, serve=True: "the engine")
    monkeypatch.setattr(images, "build", lambda engine, name, tag=None, base=None, progress=None:
                        done.append((engine, name, tag, base)))
    return done


@pytest.mark.parametrize("profile", [None, "local", "docker"])
def test_make_images_builds_the_docker_profiles_images_whatever_the_profile_says(
        builds, monkeypatch, capsys, profile):
    if profile:
        monkeypatch.setenv("SPORTHUB_PROFILE", profile)
    assert command.main(["images", "--base", "debian"]) == 0
    assert builds == [("the engine", "singleuser", "sporthub-singleuser:latest", "debian"),
                      ("the engine", "hub", None, "debian")]
    if profile != "docker":
        assert "start with SPORTHUB_PROFILE=docker" in capsys.readouterr().out


def test_named_images_are_built_alone(builds):
    assert command.main(["images", "llm"]) == 0
    assert builds == [("the engine", "llm", None, None)]


def test_the_makefile_passes_base_and_images_through():
    from tests.support.stack import REPO

    makefile = (REPO / "Makefile").read_text()
    assert "-m sporthub.containers images --base $(or $(BASE),default) $(IMAGES)" in makefile


@pytest.mark.parametrize("name", sorted(images.IMAGES))
def test_what_a_dockerfile_imports_from_sporthub_exists(name):
    """A Dockerfile's `python -c "from sporthub... import X"` runs minutes into a build: a moved
    function (it happened) is caught here, in seconds, instead of by the container tier."""
    import importlib
    import re

    dockerfile = (images.PROJECT_ROOT / "images" / name / "Dockerfile").read_text()
    for module, names in re.findall(r"from (sporthub[\w.]*) import ([\w, ]+)", dockerfile):
        imported = importlib.import_module(module)
        for attribute in (n.strip() for n in names.split(",")):
            assert hasattr(imported, attribute), f"images/{name}/Dockerfile: {module}.{attribute}"


def test_the_llm_image_takes_the_llama_server_this_machine_compiled(monkeypatch, tmp_path):
    """A cold CI compiled llama.cpp twice: once for the embedded default, then again inside the
    llm image (about half an hour under load). On a bookworm host the image copies the first."""
    server = tmp_path / "llama-server"
    server.write_bytes(b"\x7fELF compiled here")
    monkeypatch.setattr(images.llama_build, "server_binary", lambda: server)
    monkeypatch.setattr(images, "host_debian_release", lambda: "bookworm")
    with images._context("llm", progress=lambda _: None) as context:
        assert context != images.PROJECT_ROOT
        assert (context / "images/llm/prebuilt/llama-server").read_bytes() == server.read_bytes()
        assert (context / "images/llm/Dockerfile").exists()
        assert (context / "sporthub/llm/build.py").exists()
    assert not context.exists()
    with images._context("hub", progress=lambda _: None) as context:
        assert context == images.PROJECT_ROOT


@pytest.mark.parametrize("release, compiled", [("trixie", True), ("bookworm", False)])
def test_the_llm_image_compiles_when_the_machine_has_no_server_for_its_release(
        monkeypatch, tmp_path, release, compiled):
    server = tmp_path / "llama-server"
    if compiled:
        server.write_bytes(b"\x7fELF for another release")
    monkeypatch.setattr(images.llama_build, "server_binary", lambda: server)
    monkeypatch.setattr(images, "host_debian_release", lambda: release)
    with images._context("llm", progress=lambda _: None) as context:
        assert context == images.PROJECT_ROOT
    assert list((images.PROJECT_ROOT / "images/llm/prebuilt").iterdir()) == [
        images.PROJECT_ROOT / "images/llm/prebuilt/README.md"]
