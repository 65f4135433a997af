"""The ``docker`` profile: each person's JupyterLab in a container of its own (DockerSpawner).

What a container gets: the SportHub user image (the only image allowed), UID 1000, no Linux
capabilities, ``no-new-privileges``, an init as PID 1, memory and CPU limits that follow the
person's groups, and a named volume ``sporthub-home-<name>`` as home (of the size their groups
give, ``SPORTHUB_USER_STORAGE_LIMIT`` otherwise, or unlimited; kept across stop, start and hub
restarts; the container itself is removed when it stops; ``sporthub`` is the default of
``SPORTHUB_DOCKER_NAME_PREFIX``, ``<name>`` the hub name as DockerSpawner escapes it). It sits on
an internal bridge network (``SPORTHUB_DOCKER_NETWORK``) whose only way to the hub is the hub's
public port: the hub API and the gateway are reached through the proxy, at the hub's address on
that network.
Everything else the hub's machine runs (the hub API port, the proxy API, the gateway's own port,
the LLM backend, PostgreSQL) listens on loopback, which a container's network cannot reach; and
no secret leaves the hub (DockerSpawner passes none of the hub's environment on).
"""

from __future__ import annotations

import ipaddress
import uuid

import docker
from dockerspawner import DockerSpawner
from traitlets import TraitError

from sporthub.hub import common
from sporthub.hub.limits import STORAGE_PROPERTY, Limits, LimitsHook, parse_bytes
from sporthub.settings import ENV_PREFIX, Settings, SettingsError

HOME = "/home/jovyan"
UID = 1000
CONTAINER = "{prefix}-{username}"
VOLUME = "{prefix}-home-{username}"

# what the rest of SportHub asks of a profile (sporthub.hub.profiles)
COMMANDS_ELSEWHERE: dict[str, str] = {}
RUNS_CONTAINERS = True
HOMES = "volumes"  # VOLUME, read and written through the engine's API (sporthub.backup)
# the Compose stack runs this profile and mounts <data>/secrets into Prometheus, Grafana and
# PostgreSQL, which read some of its files as users of their own
STACK_SECRETS = True


def home_volume(prefix: str, name: str) -> str:
    """The named volume of the person ``name``'s home, as DockerSpawner names it from VOLUME."""
    # DockerSpawner fills {username} with its escaped name (DNS-label safe, lower case)
    return VOLUME.format(prefix=prefix, username=DockerSpawner._escape(name))


def container_name(prefix: str, name: str) -> str:
    """The container of the person ``name``'s server, as DockerSpawner names it from CONTAINER."""
    return CONTAINER.format(prefix=prefix, username=DockerSpawner._escape(name))


def engine_client() -> docker.DockerClient:
    """The engine named by DOCKER_HOST (Docker Engine, or podman's Docker-compatible API)."""
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as e:
        raise SettingsError(
            "SPORTHUB_PROFILE=docker needs a running Docker-compatible engine (Docker Engine, or "
            "podman's API service: `python -m sporthub.containers serve`, then DOCKER_HOST="
            f"unix:///run/sporthub-podman/podman.sock): {e}") from None
    return client


def hub_host(settings: Settings, client: docker.DockerClient) -> str:
    """The hub's address as the containers see it; creates the internal network if missing."""
    try:
        network = client.networks.get(settings.docker_network)
    except docker.errors.NotFound:
        # internal: no route out of the machine, only to the host's address on the bridge
        network = client.networks.create(settings.docker_network, driver="bridge", internal=True)
    if settings.docker_hub_host:
        return settings.docker_hub_host
    configs = network.attrs.get("IPAM", {}).get("Config") or []
    gateways = [c["Gateway"] for c in configs if c.get("Gateway")]
    if not gateways:
        raise SettingsError(f"SPORTHUB_DOCKER_NETWORK={settings.docker_network} has no gateway "
                            "address for the hub: set SPORTHUB_DOCKER_HUB_HOST")
    ip = ipaddress.ip_address(settings.ip)
    if not (ip.is_unspecified or str(ip) in gateways):
        raise SettingsError(
            f"SPORTHUB_IP={settings.ip}: the containers of the docker profile reach the hub at "
            f"{gateways[0]} (the gateway of network {settings.docker_network}); set SPORTHUB_IP "
            f"to {gateways[0]}, or 0.0.0.0 behind your firewall")
    return gateways[0]


def check(settings: Settings) -> str | None:
    """Stop a start that would ignore a setting: system users are the local profile's."""
    if "local_user_prefix" in settings.model_fields_set:
        raise SettingsError(f"{ENV_PREFIX}LOCAL_USER_PREFIX applies to the local profile only")
    return None


def is_podman(version: dict) -> bool:
    """podman's Docker-compatible API (it names itself in its version's components)."""
    return any(c.get("Name") == "Podman Engine" for c in version.get("Components") or [])


def size_options(podman: bool, size_bytes: int) -> dict[str, str]:
    """The local volume driver's option that holds a volume to ``size_bytes``. Both engines
    honour it only where their volumes are on XFS mounted with project quotas, and refuse it
    elsewhere; each reads its own: Docker Engine ``size``, podman ``o=size=`` (podman 4.3 takes
    Docker's ``size`` too, and silently ignores it: measured)."""
    return {"o": f"size={size_bytes}"} if podman else {"size": str(size_bytes)}


def volume_size(volume: dict) -> int | str | None:
    """The size a volume was made with (an engine's inspect answer; as written if it is not a
    size SportHub reads), None: no limit."""
    options = volume.get("Options") or {}
    sizes = [o.removeprefix("size=") for o in (options.get("o") or "").split(",")
             if o.startswith("size=")]
    size = options.get("size") or (sizes[0] if sizes else None)
    try:
        return None if size is None else parse_bytes(size)
    except TraitError:
        return size


STORAGE_FIX = ("the engine holds a volume to a size only when its volume directory "
               "(/var/lib/docker/volumes for Docker Engine, podman's volume_path) is on XFS "
               "mounted with the prjquota option (docs/production.md, \"Home sizes\")")


def check_storage(settings: Settings, client: docker.DockerClient) -> None:
    """With SPORTHUB_USER_STORAGE_LIMIT, the engine must hold a home to a size: a volume of that
    size is made and removed again now, so that a start never runs with homes silently
    unlimited; an engine without project quotas refuses it, and the hub does not start."""
    if settings.user_storage_limit is None:
        return
    size = parse_bytes(settings.user_storage_limit)
    probe = f"{settings.docker_name_prefix}-storage-check-{uuid.uuid4().hex[:8]}"
    options = size_options(is_podman(client.version()), size)
    try:
        client.volumes.create(probe, driver="local", driver_opts=options).remove(force=True)
    except docker.errors.APIError as e:
        raise SettingsError(
            f"{ENV_PREFIX}USER_STORAGE_LIMIT={settings.user_storage_limit}: this engine cannot "
            f"hold a volume to a size ({e.explanation}): {STORAGE_FIX}; or unset it") from None


def prepare(settings: Settings) -> None:
    """Before the hub starts: the engine answers, the network exists, homes can be held to their
    size, the image is built."""
    client = engine_client()
    hub_host(settings, client)
    check_storage(settings, client)
    try:
        client.images.get(settings.singleuser_image)
    except docker.errors.ImageNotFound:
        raise SettingsError(f"SPORTHUB_SINGLEUSER_IMAGE={settings.singleuser_image} is not built "
                            "on this engine: run `make images`") from None


def configure(c, settings: Settings) -> None:
    """The hub configuration of the docker profile."""
    check(settings)
    common.base(c, settings)
    common.accounts(c, settings)
    common.llm_access(c, settings)
    common.user_servers(c, settings)
    spawner(c, settings)
    check_storage(settings, engine_client())  # also when the hub is started without `sporthub up`
    # the person's groups decide their container's size and their home's, read at each start
    c.Spawner.pre_spawn_hook = LimitsHook(apply_limits, settings.user_mem_limit,
                                          settings.user_cpu_limit, settings.user_storage_limit)
    common.capacity(c, settings, settings.idle_timeout_s)
    common.services(c, settings)


def spawner(c, settings: Settings) -> None:
    hub_url = f"http://{hub_host(settings, engine_client())}:{settings.port}"
    c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
    spawner = c.DockerSpawner
    spawner.image = settings.singleuser_image
    spawner.allowed_images = [settings.singleuser_image]
    spawner.pull_policy = "never"  # built here by `make images`, never fetched
    prefix = settings.docker_name_prefix
    # DockerSpawner fills {username} in, so only the prefix is filled here
    spawner.name_template = CONTAINER.format(prefix=prefix, username="{username}")
    spawner.remove = True
    spawner.volumes = {VOLUME.format(prefix=prefix, username="{username}"): HOME}
    spawner.notebook_dir = HOME
    spawner.network_name = settings.docker_network
    spawner.use_internal_ip = True
    # the hub API and the gateway, only through the proxy at the hub's address on the network
    spawner.hub_connect_url = hub_url
    c.Spawner.environment = {
        **c.Spawner.environment,
        "OPENAI_API_BASE": f"{hub_url}{settings.gateway_prefix}/v1",
        "SQUAD_API_URL": f"{hub_url}{settings.squad_prefix}/api",
    }
    spawner.extra_create_kwargs = {
        "user": f"{UID}:{UID}",
        # the engine's stop (DockerSpawner passes no timeout) sends SIGTERM and kills after this;
        # the same 6 s as a local server's SIGINT and SIGTERM. Unset, Docker Engine waits 10 s
        # and podman's compatible API does not wait at all: SIGKILL at once, so the server never
        # shut its kernels down nor saved what it held (measured: exit 137 in 0.7 s; with this,
        # exit 0 in 1.5 s)
        "stop_timeout": 2 * common.STOP_GRACE_S,
    }
    spawner.extra_host_config = {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "init": True,  # reaps the zombies of terminals and kernels
        "pids_limit": 1024,
    }
    c.Spawner.start_timeout = 180
    c.Spawner.http_timeout = 120


def apply_limits(spawner, limits: Limits):
    """One person's limits onto their container (called by the profiles' one pre_spawn_hook):
    DockerSpawner passes them to the engine when it creates the container. A home size is the
    home volume's, made here before the start (returns what JupyterHub awaits)."""
    spawner.mem_limit = limits.mem_bytes
    spawner.cpu_limit = limits.cpus
    if limits.storage_bytes is not None:
        return sized_home(spawner, limits.storage_bytes)
    return None


async def sized_home(spawner, size_bytes: int) -> None:
    """The person's home volume, made with their size if it does not exist yet.

    An engine sets a volume's size when it makes it and cannot change it: a home made before
    (before the setting, or before the person's groups changed) keeps its size, which the hub's
    log says at each start (docs/production.md tells how to resize one). An engine that cannot
    hold a volume to a size refuses, and the start stops with what to do."""
    [volume] = [name for name, bind in spawner.volume_binds.items() if bind["bind"] == HOME]
    try:
        made = await spawner.docker("inspect_volume", volume)
    except docker.errors.NotFound:
        made = None
    if made is None:
        options = size_options(is_podman(await spawner.docker("version")), size_bytes)
        try:
            await spawner.docker("create_volume", volume, driver="local", driver_opts=options)
        except docker.errors.APIError as e:
            raise ValueError(
                f"{spawner.user.name}'s home ({volume}) cannot be held to {size_bytes} bytes "
                f"(their groups' {STORAGE_PROPERTY}, or {ENV_PREFIX}USER_STORAGE_LIMIT): the "
                f"engine says {e.explanation}: {STORAGE_FIX}; or remove the group property") \
                from None
        spawner.log.info("%s's home %s made with %s bytes", spawner.user.name, volume, size_bytes)
        return
    if (current := volume_size(made)) != size_bytes:
        spawner.log.warning(
            "%s's home %s was made with %s and keeps it (an engine cannot resize a volume); "
            "their limit is now %s bytes: docs/production.md, \"Home sizes\", tells how to "
            "resize it", spawner.user.name, volume,
            "no size limit" if current is None else f"{current} bytes", size_bytes)
