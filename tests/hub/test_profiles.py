"""One module per profile, one function choosing it, one pre_spawn_hook applying group limits.

The hook is checked with JupyterHub's own spawners (no engine, cluster or system user needed: the
limits are traits the spawner hands on at start); what a profile refuses is checked where the
admin meets it, the start's message.
"""

from __future__ import annotations

import types

import pytest
from jupyterhub.spawner import LocalProcessSpawner
from traitlets.config import Config

from sporthub.hub import config, limits
from sporthub.hub.profiles import docker, k8s, local, profile_of
from sporthub.settings import SettingsError, load_settings

G = 1024**3


@pytest.fixture
def settings_env(monkeypatch, tmp_path):
    for name in list(__import__("os").environ):
        if name.startswith("SPORTHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPORTHUB_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no sporthub.toml of the checkout
    return monkeypatch


def person(**groups):
    return types.SimpleNamespace(
        name="ann", groups=[types.SimpleNamespace(name=n, properties=p) for n, p in groups.items()])


@pytest.mark.parametrize("profile, module", [("local", local), ("docker", docker), ("k8s", k8s)])
def test_one_function_chooses_the_profile(profile, module):
    settings = types.SimpleNamespace(profile=profile)
    assert profile_of(settings) is module
    for part in ("check", "prepare", "configure", "apply_limits"):
        assert callable(getattr(module, part)), f"{profile} has no {part}"
    # what cli, backup and `make images` ask of a profile instead of comparing its name
    assert isinstance(module.COMMANDS_ELSEWHERE, dict)
    assert isinstance(module.RUNS_CONTAINERS, bool)
    assert module.HOMES in ("here", "volumes", "cluster")
    assert isinstance(module.STACK_SECRETS, bool)


def test_only_the_k8s_profile_sends_commands_elsewhere_and_only_docker_shares_the_stacks_secrets():
    assert set(k8s.COMMANDS_ELSEWHERE) == {"up", "prepare", "users", "backup", "restore"}
    assert local.COMMANDS_ELSEWHERE == docker.COMMANDS_ELSEWHERE == {}
    assert [m.STACK_SECRETS for m in (local, docker, k8s)] == [False, True, False]
    assert [m.RUNS_CONTAINERS for m in (local, docker, k8s)] == [False, True, True]


def test_the_hook_gives_the_most_generous_group_and_the_default_otherwise():
    applied = []
    hook = limits.LimitsHook(lambda spawner, got: applied.append(got), "2G", 1.0)
    spawner = types.SimpleNamespace(user=person(athletes={"user_mem_limit": "1G"},
                                                scientists={"user_mem_limit": "4G"}),
                                    log=types.SimpleNamespace(info=lambda *a: None))
    hook(spawner)
    spawner.user = person(athletes={})
    hook(spawner)
    assert applied == [limits.Limits(4 * G, 1.0), limits.Limits(2 * G, 1.0)]


def test_no_default_is_no_limit_as_the_chart_writes_it():
    hook = limits.LimitsHook(lambda *a: None, None, None)
    assert hook.limits_for(person()) == limits.Limits(None, None)
    assert hook.limits_for(person(a={"user_cpu_limit": 2})) == limits.Limits(None, 2.0)


def test_a_bad_group_property_stops_that_start_naming_the_group():
    hook = limits.LimitsHook(local.apply_limits, "2G", 1.0)
    spawner = LocalProcessSpawner(user=person(scientists={"user_mem_limit": "lots"}))
    with pytest.raises(ValueError, match="group scientists: user_mem_limit='lots'"):
        hook(spawner)


def test_the_local_profile_installs_the_hook_and_its_limits_reach_the_server(settings_env,
                                                                            tmp_path):
    c = Config()
    config.configure(c, load_settings())
    hook = c.Spawner.pre_spawn_hook
    assert isinstance(hook, limits.LimitsHook) and hook.apply is local.apply_limits
    spawner = LocalProcessSpawner(user=person(scientists={"user_mem_limit": "3G",
                                                                       "user_cpu_limit": 2}))
    hook(spawner)
    # JupyterHub hands these to the server as MEM_LIMIT / CPU_LIMIT
    assert (spawner.mem_limit, spawner.cpu_limit) == (3 * G, 2.0)


@pytest.mark.parametrize("name", ["SPORTHUB_USER_MEM_LIMIT", "SPORTHUB_USER_CPU_LIMIT"])
def test_a_hub_not_run_as_root_refuses_limits_it_cannot_hold(settings_env, name):
    settings_env.setenv(name, "3")
    settings_env.setattr(local, "is_root", lambda: False)
    with pytest.raises(SettingsError) as e:
        local.check(load_settings())
    assert name in str(e.value) and "root" in str(e.value)


def test_a_hub_run_as_root_takes_the_limits(settings_env):
    settings_env.setenv("SPORTHUB_USER_MEM_LIMIT", "3G")
    settings_env.setattr(local, "is_root", lambda: True)
    assert local.check(load_settings()) is None


@pytest.mark.parametrize("root", [True, False])
def test_the_local_profile_refuses_a_home_size(settings_env, root):
    settings_env.setenv("SPORTHUB_USER_STORAGE_LIMIT", "10G")
    settings_env.setattr(local, "is_root", lambda: root)
    with pytest.raises(SettingsError) as e:
        local.check(load_settings())
    assert "SPORTHUB_USER_STORAGE_LIMIT" in str(e.value) and "XFS" in str(e.value)


def test_a_group_home_size_stops_a_local_start_naming_the_group():
    hook = limits.LimitsHook(local.apply_limits, "2G", 1.0)
    spawner = LocalProcessSpawner(user=person(athletes={}, scientists={"user_storage_limit": "5G"}))
    with pytest.raises(ValueError) as e:
        hook(spawner)
    assert "user_storage_limit (of scientists)" in str(e.value)
    assert "does not limit the size of people's homes" in str(e.value)


@pytest.mark.parametrize("name", sorted(local.IGNORED))
def test_the_local_profile_refuses_the_docker_profiles_settings(settings_env, name):
    settings_env.setenv(f"SPORTHUB_{name.upper()}", "club")
    with pytest.raises(SettingsError) as e:
        local.check(load_settings())
    assert f"SPORTHUB_{name.upper()}" in str(e.value) and "docker" in str(e.value)


def test_the_docker_profile_refuses_the_system_users_prefix(settings_env):
    settings_env.setenv("SPORTHUB_PROFILE", "docker")
    settings_env.setenv("SPORTHUB_LOCAL_USER_PREFIX", "club-")
    with pytest.raises(SettingsError, match="SPORTHUB_LOCAL_USER_PREFIX applies to the local"):
        profile_of(load_settings()).check(load_settings())


def test_docker_limits_land_where_dockerspawner_reads_them():
    from dockerspawner import DockerSpawner

    spawner = DockerSpawner(_mock=True, user=person())
    docker.apply_limits(spawner, limits.Limits(4 * G, 2.0))
    assert (spawner.mem_limit, spawner.cpu_limit) == (4 * G, 2.0)
