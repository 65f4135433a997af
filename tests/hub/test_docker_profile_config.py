"""The docker profile's configuration without an engine: limits per group, settings checks."""

from __future__ import annotations

import asyncio
import types

import docker
import pytest

from sporthub.hub.limits import Limits, parse_bytes, resolve_limits, resolve_storage
from sporthub.hub.profiles.docker import (
    apply_limits,
    container_name,
    home_volume,
    is_podman,
    size_options,
    volume_size,
)
from sporthub.settings import SettingsError, load_settings

G = 1024**3


def test_the_default_applies_only_when_no_group_sets_a_limit():
    assert resolve_limits({}, "2G", 1.0) == (2 * G, 1.0)
    assert resolve_limits({"athletes": {"llm_priority": 0}}, "2G", 1.0) == (2 * G, 1.0)
    # a group may also give less than the default
    assert resolve_limits({"athletes": {"user_mem_limit": "1G"}}, "2G", 1.0) == (G, 1.0)


def test_the_most_generous_group_wins():
    groups = {"athletes": {"user_mem_limit": "1G", "user_cpu_limit": 0.5},
              "scientists": {"user_mem_limit": "4G", "user_cpu_limit": "2"},
              "priority": {}}
    assert resolve_limits(groups, "2G", 1.0) == (4 * G, 2.0)


@pytest.mark.parametrize("properties, named", [
    ({"user_mem_limit": "lots"}, "user_mem_limit='lots'"),
    ({"user_cpu_limit": "many"}, "user_cpu_limit='many'"),
    ({"user_cpu_limit": 0}, "user_cpu_limit=0"),
])
def test_a_bad_group_property_stops_the_start_naming_the_group(properties, named):
    with pytest.raises(ValueError) as e:
        resolve_limits({"scientists": properties}, "2G", 1.0)
    assert "group scientists" in str(e.value) and named in str(e.value)


def test_sizes_read_like_jupyterhubs_own_limits():
    assert parse_bytes("512M") == 512 * 1024**2
    assert parse_bytes(1234) == 1234


@pytest.mark.parametrize("name, value", [
    ("SPORTHUB_USER_MEM_LIMIT", "two gigabytes"),
    ("SPORTHUB_USER_CPU_LIMIT", "0"),
    ("SPORTHUB_DOCKER_NETWORK", "no spaces"),
    ("SPORTHUB_DOCKER_NAME_PREFIX", "-starts-with-a-dash"),
])
def test_bad_docker_settings_are_named(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert name in str(e.value)


def test_a_home_volume_is_named_as_dockerspawner_names_it():
    # {username} is DockerSpawner's escape: lower-case letters and digits, the rest as -<hex>
    assert home_volume("sporthub", "ath1b2c3d") == "sporthub-home-ath1b2c3d"
    assert home_volume("club", "Lena.M") == "club-home--4cena-2e-4d"


def test_a_persons_container_is_named_as_dockerspawner_names_it():
    # what erase removes (sporthub.privacy): the name the hub's spawner gave the container
    assert container_name("sporthub", "ath1b2c3d") == "sporthub-ath1b2c3d"
    assert container_name("club", "Lena.M") == "club--4cena-2e-4d"


def test_a_persons_container_gets_the_same_stop_grace_as_a_local_server(monkeypatch):
    # DockerSpawner stops without a timeout, so the container's own StopTimeout decides: unset,
    # podman kills at once (no kernel shut down) and Docker Engine waits 10 s
    from traitlets.config import Config

    from sporthub.hub import common
    from sporthub.hub.profiles import docker as profile

    monkeypatch.setattr(profile, "engine_client", lambda: None)
    monkeypatch.setattr(profile, "hub_host", lambda settings, client: "10.89.0.1")
    c = Config()
    c.Spawner.environment = {}  # common.user_servers' part, set before in a real configure
    profile.spawner(c, load_settings())
    created = c.DockerSpawner.extra_create_kwargs
    assert created["stop_timeout"] == 2 * common.STOP_GRACE_S == 6
    assert created["user"] == "1000:1000"


def test_a_home_size_is_the_most_generous_groups_or_the_default_or_none():
    assert resolve_storage({}, None) is None  # unset: no limit
    assert resolve_storage({"athletes": {}}, "5G") == 5 * G
    groups = {"athletes": {"user_storage_limit": "5G"}, "scientists": {"user_storage_limit": "20G"}}
    assert resolve_storage(groups, "10G") == 20 * G
    # a group gives a size even when the setting gives none
    assert resolve_storage({"scientists": {"user_storage_limit": "1G"}}, None) == G
    with pytest.raises(ValueError) as e:
        resolve_storage({"scientists": {"user_storage_limit": "big"}}, None)
    assert "group scientists: user_storage_limit='big'" in str(e.value)


def test_each_engine_gets_the_size_option_it_reads():
    # Docker Engine reads `size`; podman 4.3 reads `o=size=` and takes `size` without effect
    assert size_options(podman=False, size_bytes=G) == {"size": str(G)}
    assert size_options(podman=True, size_bytes=G) == {"o": f"size={G}"}
    assert is_podman({"Components": [{"Name": "Podman Engine", "Version": "4.3.1"}]})
    assert not is_podman({"Components": [{"Name": "Engine", "Version": "20.10.24"}]})


@pytest.mark.parametrize("options, size", [
    ({}, None), (None, None),
    ({"size": str(G)}, G),  # Docker Engine
    ({"o": f"uid=1000,size={G}"}, G),  # podman
    ({"size": "10GB"}, "10GB"),  # made by hand with a spelling SportHub does not read
])
def test_the_size_a_home_was_made_with_is_read_back(options, size):
    assert volume_size({"Name": "sporthub-home-ann", "Options": options}) == size


@pytest.mark.parametrize("value", ["big", "-1G", "10 G"])
def test_a_bad_storage_limit_is_named(monkeypatch, value):
    monkeypatch.setenv("SPORTHUB_USER_STORAGE_LIMIT", value)
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert "SPORTHUB_USER_STORAGE_LIMIT" in str(e.value)


def test_an_empty_storage_limit_is_no_limit(monkeypatch):
    # what Compose passes for an unset ${SPORTHUB_USER_STORAGE_LIMIT:-}
    monkeypatch.setenv("SPORTHUB_USER_STORAGE_LIMIT", "")
    settings = load_settings()
    assert settings.user_storage_limit is None
    # ... and the hub's child processes (jupyterhub itself, its services) get no limit either:
    # exported as "null", it stopped the Compose stack's hub at its start (compose tier)
    child = settings.as_environment()
    assert "SPORTHUB_USER_STORAGE_LIMIT" not in child
    monkeypatch.delenv("SPORTHUB_USER_STORAGE_LIMIT")
    for name, value in child.items():
        monkeypatch.setenv(name, value)
    assert load_settings().user_storage_limit is None


class FakeEngine:
    """What sized_home asks of DockerSpawner's engine calls, answered as an engine would."""

    def __init__(self, version: dict, volumes: dict[str, dict]):
        self.version, self.volumes, self.created = version, volumes, []

    async def docker(self, method, *args, **kwargs):
        if method == "version":
            return self.version
        if method == "inspect_volume":
            if args[0] not in self.volumes:
                raise docker.errors.NotFound("no such volume")
            return self.volumes[args[0]]
        assert method == "create_volume"
        self.created.append((args[0], kwargs))
        return {}


def fake_spawner(engine: FakeEngine, warnings: list):
    log = types.SimpleNamespace(info=lambda *a: None, warning=lambda *a: warnings.append(a[0] % a[1:]))
    return types.SimpleNamespace(
        user=types.SimpleNamespace(name="ann"), log=log, docker=engine.docker,
        volume_binds={"sporthub-home-ann": {"bind": "/home/jovyan", "mode": "rw"}})


@pytest.mark.parametrize("version, options", [
    ({"Components": [{"Name": "Engine"}]}, {"size": str(G)}),
    ({"Components": [{"Name": "Podman Engine"}]}, {"o": f"size={G}"}),
])
def test_a_new_home_is_made_with_the_size_in_the_engines_own_option(version, options):
    engine, warnings = FakeEngine(version, {}), []
    asyncio.run(apply_limits(fake_spawner(engine, warnings), Limits(G, 1.0, G)))
    assert engine.created == [("sporthub-home-ann", {"driver": "local", "driver_opts": options})]
    assert warnings == []


def test_a_home_made_before_keeps_its_size_and_the_log_says_so():
    made = {"sporthub-home-ann": {"Name": "sporthub-home-ann", "Options": {}}}
    engine, warnings = FakeEngine({"Components": [{"Name": "Engine"}]}, made), []
    spawner = fake_spawner(engine, warnings)
    asyncio.run(apply_limits(spawner, Limits(G, 1.0, G)))
    assert engine.created == []
    said = (f"ann's home sporthub-home-ann was made with no size limit and keeps it (an engine "
            f"cannot resize a volume); their limit is now {G} bytes: docs/production.md, "
            "\"Home sizes\", tells how to resize it")
    assert warnings == [said]
    # no size: nothing is asked of the engine, the engine makes the volume at the start
    assert apply_limits(spawner, Limits(G, 1.0, None)) is None
