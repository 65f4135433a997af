"""The container tier: a real Docker-compatible engine, SportHub's user image, the docker profile.

Run with ``make test-containers`` (``pytest -m containers``). The engine is found
or set up (podman from Debian, installed with apt if missing, its API service started and stopped
again here); the user image is built from a Debian base made here, unless its inputs are unchanged.
If the engine cannot start, every test here fails with the reason: nothing is skipped.
"""

from __future__ import annotations

import os
import time
import uuid

import docker
import pytest

from sporthub.containers import engine as engines
from sporthub.containers import images
from tests.containers import dockerd
from tests.support.stack import HubClient, create_account, make_stack, set_password, started

PASSWORD = "long-enough-pass-42"
TIMINGS: dict[str, float] = {}
RUNNING = {"engine": ""}  # the engine whose tests run now: pytest runs one engine's, then the next


def record(what: str, seconds: float) -> None:
    """A timing for the summary, named after the engine it was taken on."""
    TIMINGS[f"{RUNNING['engine']}: {what}"] = seconds


def pytest_configure(config):
    config.addinivalue_line("markers", "engines(*names): run this container test on these "
                                       "engines only (its engine-specific part runs on every "
                                       "engine in another test)")


def pytest_collection_modifyitems(config, items):
    # this hook sees every test of the session, not only this folder's
    kept, left_out = [], []
    for item in items:
        if item.get_closest_marker("containers"):
            item.add_marker(pytest.mark.timeout(1800))
        only = item.get_closest_marker("engines")
        engine = item.callspec.params.get("engine") if hasattr(item, "callspec") else None
        (left_out if only and engine and engine not in only.args else kept).append(item)
    if left_out:
        # deselected, as -m and -k do: counted apart, never as passed or skipped
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


# every test of the tier runs on each engine: podman (set up by SportHub when no Docker Engine
# runs) and Docker Engine (a dockerd of the tier's own, tests/containers/dockerd.py); pytest
# runs all of one engine's tests, then the other's, with their own stacks.
# CONTAINER_TIER_ENGINES=docker (or podman) runs one of them while working on it; CI runs both
ENGINES = tuple(os.environ.get("CONTAINER_TIER_ENGINES", "podman docker").split())
# the images' tag: checkouts share podman's storage (~/.cache/sporthub/podman), and one tier's
# build retags the image another checkout's running tier spawns from; CONTAINER_TIER_TAG=<name>
# gives a checkout images of its own (the dependency layer is still shared: only code is built)
TAG = os.environ.get("CONTAINER_TIER_TAG", "test")
IMAGES = {f"sporthub-singleuser:{TAG}": "singleuser", f"sporthub-hub:{TAG}": "hub"}


def progress(message: str) -> None:
    print(f"[engine] {message}", flush=True)


@pytest.fixture(scope="session", params=ENGINES)
def engine(request):
    started = time.monotonic()
    RUNNING["engine"] = request.param
    if request.param == "podman":
        engine = engines.find(progress=progress)
        if engine.kind != "podman":
            pytest.fail("a Docker Engine answers on /var/run/docker.sock: the podman run would "
                        "test it instead; stop it (the docker run starts a dockerd of its own)")
    else:
        engine = dockerd.start(progress=progress)
    record("engine start", time.monotonic() - started)
    yield engine
    engine.stop()
    # from the engine's start to its stop: every test of this engine, its builds included
    record("the tier on this engine", time.monotonic() - started)


@pytest.fixture(scope="session")
def client(engine) -> docker.DockerClient:
    return docker.DockerClient(base_url=engine.docker_host, timeout=120)


@pytest.fixture(scope="session")
def image(engine) -> str:
    tag = f"sporthub-singleuser:{TAG}"
    if engine.kind == "docker":
        # a new data root: what the podman run built, loaded rather than built again
        started = time.monotonic()
        carried = dockerd.carry_over(engine, IMAGES, progress)
        if carried:
            record(f"{', '.join(carried)} carried over from podman", time.monotonic() - started)
    started = time.monotonic()
    tag, built = images.build(engine, "singleuser", tag=tag, base="debian")
    record("singleuser image " + ("build" if built else "check (cached)"),
           time.monotonic() - started)
    return tag


@pytest.fixture(scope="session")
def network(client):
    """A network of this run's own, removed at the end (the hub creates it on first start)."""
    name = f"sporthub-test-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        client.networks.get(name).remove()
    except docker.errors.NotFound:
        pass


@pytest.fixture(scope="session")
def suffix() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture(scope="session")
def dstack(tmp_path_factory, engine, client, image, network, suffix):
    """SportHub with the docker profile, listening where the containers can reach it."""
    stack = make_stack(tmp_path_factory.mktemp("docker-stack"), profile="docker", ip="0.0.0.0",
                       singleuser_image=image, docker_network=network,
                       user_mem_limit="1G", user_cpu_limit="1.0",
                       # answers no longer than the Coach's own (300 tokens): the embedded
                       # model is slow on a busy 2-core machine, %%ai asks for no limit
                       llm_max_tokens="300")
    stack.env["DOCKER_HOST"] = engine.docker_host
    with started(stack):
        yield stack
    for name in (f"ath{suffix}", f"sci{suffix}"):
        for container in client.containers.list(all=True, filters={"name": f"sporthub-{name}"}):
            container.remove(force=True)
        try:
            client.volumes.get(f"sporthub-home-{name}").remove(force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture(scope="session")
def people(dstack, suffix) -> dict[str, HubClient]:
    """An athlete and a scientist, invited by the admin, signed in through the login form; the
    scientists' group gives more memory than the default. Their servers are running."""
    admin = HubClient.admin(dstack)
    response = admin.api("PUT", "/groups/scientists/properties",
                         json={"user_mem_limit": "2G", "user_cpu_limit": 1.5})
    assert response.status_code == 200, response.text
    clients = {}
    for role, group in (("athlete", "athletes"), ("scientist", "scientists")):
        name = f"{role[:3]}{suffix}"
        assert set_password(create_account(admin, name, group), PASSWORD).status_code == 302
        person = HubClient(dstack)
        assert person.login(name, PASSWORD).status_code == 302
        person.token_from_session(name)
        person.name = name
        started = time.monotonic()
        person.start_server(name, timeout=240)
        record(f"spawn ({role}, first)", time.monotonic() - started)
        clients[role] = person
    return clients


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("container tier timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what}: {seconds:.1f} s")
