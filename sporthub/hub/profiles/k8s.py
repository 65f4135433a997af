"""The ``k8s`` profile: SportHub on top of the Zero to JupyterHub chart's own configuration.

``deploy/k8s/values.yaml`` loads SportHub through ``hub.extraConfig``, which the chart's
``jupyterhub_config.py`` runs last. By then the chart has set the networking (the hub's bind and
connect URLs, the proxy in a pod of its own), the hub database, KubeSpawner (image, limits,
storage, ``singleuser.extraEnv``), the idle culler (``cull.*``) and its role. This module adds
what is SportHub's: accounts, roles and groups, the LLM scope, the gateway and the usage page as
hub-managed services, the pages. It replaces nothing the chart set: it adds to the chart's lists
of services and roles and to the user pods' environment. Where both would set the same value
they must agree, or the start stops with a message that names both (docs/production.md, Kubernetes).
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

from sporthub.hub import common
from sporthub.hub.limits import STORAGE_PROPERTY, Limits, LimitsHook
from sporthub.settings import ENV_PREFIX, Settings, SettingsError

# what the chart's own values set when nobody chose anything (z2jh values.yaml, hub.config)
CHART_DEFAULT_AUTHENTICATOR = "dummy"
CHART_SPAWNER = "kubespawner.KubeSpawner"
# jupyterhub-idle-culler's own default, when the chart passes no --timeout (cull.timeout: 0)
CULLER_DEFAULT_TIMEOUT_S = 600
# JupyterHub settings SportHub makes in every profile: a chart value for one of them would lose
CHART_VALUE_OF = {
    "template_paths": "hub.templatePaths",
    "template_vars": "hub.templateVars",
    "custom_scopes": "hub.config.JupyterHub.custom_scopes",
    "load_groups": "hub.config.JupyterHub.load_groups",
}

# settings the chart owns, and the chart value that does the same: refused here rather than
# accepted without effect (docs/production.md, Kubernetes)
CHART_OWNED = {
    "ip": "set proxy.service in values.yaml",
    "port": "set proxy.service in values.yaml",
    "hub_port": "the chart's hub listens on 8081",
    "proxy_api_port": "the chart's proxy-api Service listens on 8001",
    "hub_db_url": "set hub.db.type and hub.db.url in values.yaml",
    "embedded_backend": "no embedded model in this profile: SPORTHUB_LLM_BACKENDS",
    "embedded_llm_port": "no embedded model in this profile: SPORTHUB_LLM_BACKENDS",
    "local_user_prefix": "each person has a pod of their own, no system user",
    "singleuser_image": "set singleuser.image.name and singleuser.image.tag in values.yaml",
    "docker_network": "set singleuser.networkPolicy in values.yaml",
    "docker_hub_host": "set singleuser.networkPolicy in values.yaml",
    "user_mem_limit": "set singleuser.memory.limit in values.yaml",
    "user_cpu_limit": "set singleuser.cpu.limit in values.yaml",
    "user_storage_limit": "set singleuser.storage.capacity in values.yaml",
    "idle_timeout_s": "set cull.timeout in values.yaml",
}

# what the rest of SportHub asks of a profile (sporthub.hub.profiles); `sporthub` runs in the
# chart's hub pod, started by the chart (docs/production.md, Kubernetes)
COMMANDS_ELSEWHERE = {
    "up": "the chart's hub pod runs the hub (helm upgrade --install, deploy/k8s/values.yaml)",
    "prepare": "the images carry everything; nothing to prepare",
    "users": "from inside the hub pod the public address is out of reach; use the admin panel "
             "(Admin, /hub/invites for invite links, /hub/people/<name> to export or erase a "
             "person)",
    "backup": "back up the PostgreSQL databases, the hub's data volume and the home volumes",
    "restore": "restore the PostgreSQL databases and the volumes",
}
RUNS_CONTAINERS = True
HOMES = "cluster"  # persistent volumes of the cluster: a backup here cannot reach them
STACK_SECRETS = False


def check(settings: Settings) -> str | None:
    """Stop a start that would ignore a setting: the chart owns those of ``CHART_OWNED`` (the
    message names the chart value instead), and there is no embedded model to fall back on."""
    owned = [f"{ENV_PREFIX}{name.upper()} ({hint})"
             for name, hint in CHART_OWNED.items() if name in settings.model_fields_set]
    if owned:
        raise SettingsError("SPORTHUB_PROFILE=k8s leaves these to the Zero to JupyterHub chart: "
                            + "; ".join(owned))
    if not settings.llm_backends:
        raise SettingsError("SPORTHUB_PROFILE=k8s needs SPORTHUB_LLM_BACKENDS (the vLLM replicas "
                            "of deploy/k8s/vllm.yaml): the embedded model is for the local profile")
    return None


def prepare(settings: Settings) -> None:
    """Nothing: the chart prepares the hub pod (``sporthub prepare`` refuses this profile)."""


def configure(c, settings: Settings) -> None:
    """Add SportHub to the configuration the chart's ``jupyterhub_config.py`` has built in ``c``."""
    check(settings)
    host = _hub_host(c)
    _check_agreement(c, settings)
    chart_services = list(c.JupyterHub.get("services", []))
    chart_roles = list(c.JupyterHub.get("load_roles", []))
    idle_timeout_s = _chart_idle_timeout(chart_services)
    environment = _user_environment(c, settings)

    # accounts, the admin password if generated, the audit log: a volume (values.yaml)
    settings.data_dir.resolve().mkdir(parents=True, exist_ok=True)
    # without SPORTHUB_PUBLIC_URL the public name is the chart's (proxy.https.hosts): an OIDC
    # provider calls back to the address each request came to
    common.accounts(c, settings, fixed_callback=bool(settings.public_url))
    common.llm_access(c, settings)
    # the chart's KubeSpawner spawns; the person's groups decide their pod's limits, the chart's
    # singleuser.memory.limit / cpu.limit being the defaults (KubeSpawner's section wins over
    # Spawner's, so the hook goes there)
    c.KubeSpawner.pre_spawn_hook = limits_hook(c.KubeSpawner)
    # KubeSpawner's own section wins over Spawner's: the chart's singleuser.extraEnv is there
    c.KubeSpawner.environment = environment
    if "default_url" not in c.Spawner:  # singleuser.defaultUrl, when the chart sets one
        c.Spawner.default_url = "/lab"
    common.capacity(c, settings, idle_timeout_s)
    # the proxy pod reaches the gateway and the usage page through the hub's Service
    # (hub.service.extraPorts); they listen on all the pod's addresses (service_bind_ip). No CLI
    # service: from inside the hub pod the CLI cannot reach the public address it needs
    # (COMMANDS_ELSEWHERE); no culler of SportHub's: the chart's (cull.*) does it
    common.services(c, settings, host, cli=False, own_culler=False)
    c.JupyterHub.services = chart_services + c.JupyterHub.services
    c.JupyterHub.load_roles = chart_roles + c.JupyterHub.load_roles


def limits_hook(kube_spawner) -> LimitsHook:
    """The profiles' one pre_spawn_hook, with the chart's limits (``c.KubeSpawner``) as defaults."""
    return LimitsHook(apply_limits, kube_spawner.get("mem_limit"), kube_spawner.get("cpu_limit"))


def apply_limits(spawner, limits: Limits) -> None:
    """One person's limits onto their pod (called by the profiles' one pre_spawn_hook): KubeSpawner
    writes them into the pod manifest; None is the chart's "no limit".

    A group's ``user_storage_limit`` is the size of the person's volume claim (the chart's
    ``singleuser.storage.capacity`` otherwise). KubeSpawner makes the claim at the first start
    and never changes an existing one: a new size reaches new homes (docs/production.md). With
    the chart's ``singleuser.storage.type: none`` there is no claim to size: the start stops."""
    spawner.mem_limit = limits.mem_bytes
    spawner.cpu_limit = limits.cpus
    if limits.storage_bytes is not None:
        if not spawner.storage_pvc_ensure:
            raise ValueError(f"the group property {STORAGE_PROPERTY} sizes a person's volume "
                             "claim, and the chart makes none (singleuser.storage.type is not "
                             "dynamic): remove the property or set singleuser.storage.type: "
                             "dynamic in values.yaml")
        spawner.storage_capacity = str(limits.storage_bytes)  # a Kubernetes quantity in bytes


def _hub_host(c) -> str:
    """The hub's Service name, from the connect URL the chart sets (``http://hub:8081``)."""
    url = c.JupyterHub.get("hub_connect_url")
    host = urlparse(url).hostname if isinstance(url, str) else None
    if not host:
        raise SettingsError(
            "SPORTHUB_PROFILE=k8s runs inside the Zero to JupyterHub chart's hub configuration "
            "(hub.extraConfig in deploy/k8s/values.yaml); JupyterHub.hub_connect_url is not set, "
            "so this is not that configuration")
    return host


def _check_agreement(c, settings: Settings) -> None:
    spawner = c.JupyterHub.get("spawner_class", CHART_SPAWNER)
    if spawner != CHART_SPAWNER:
        raise SettingsError(f"hub.config.JupyterHub.spawner_class={spawner}: the k8s profile "
                            "spawns with the chart's KubeSpawner; remove that value")
    for section in ("Spawner", "KubeSpawner"):
        if c[section].get("pre_spawn_hook") is not None:
            raise SettingsError(f"{section}.pre_spawn_hook is set before SportHub's "
                                "configuration: SportHub's applies each person's group limits; "
                                "remove the other")
    authenticator = c.JupyterHub.get("authenticator_class", CHART_DEFAULT_AUTHENTICATOR)
    if authenticator != CHART_DEFAULT_AUTHENTICATOR:
        raise SettingsError(f"hub.config.JupyterHub.authenticator_class={authenticator}: "
                            "SPORTHUB_AUTH decides how people sign in; remove that value")
    chart_base = "/" + c.JupyterHub.get("base_url", "/").strip("/") + "/"
    chart_base = "/" if chart_base == "//" else chart_base
    if chart_base != settings.base_url:
        raise SettingsError(f"SPORTHUB_BASE_URL={settings.base_url} and the chart's hub.baseUrl="
                            f"{chart_base} differ: set both to the same path")
    limit = c.JupyterHub.get("active_server_limit")
    if limit is not None and limit != settings.active_server_limit:
        raise SettingsError(
            f"hub.activeServerLimit={limit} and SPORTHUB_ACTIVE_SERVER_LIMIT="
            f"{settings.active_server_limit} differ: SportHub's pages and metrics show its own "
            "limit; remove hub.activeServerLimit and set SPORTHUB_ACTIVE_SERVER_LIMIT")
    for trait, value_name in CHART_VALUE_OF.items():
        if c.JupyterHub.get(trait):  # the chart's defaults are empty
            raise SettingsError(f"{value_name}: SportHub sets JupyterHub.{trait} itself; remove "
                                "that value")


def _chart_idle_timeout(chart_services: list[dict]) -> int:
    """The chart's culler stops idle servers (``cull.*``); SportHub's pages show its timeout."""
    for service in chart_services:
        command = service.get("command") or []
        if "jupyterhub_idle_culler" in command:
            for arg in command:
                if match := re.fullmatch(r"--timeout=(\d+)", arg):
                    return int(match.group(1))
            return CULLER_DEFAULT_TIMEOUT_S
    # the active server limit frees places only when idle servers stop
    raise SettingsError("cull.enabled is false: the k8s profile needs the chart's idle culler "
                        "(set cull.enabled: true and cull.timeout in values.yaml)")


def _user_environment(c, settings: Settings) -> dict:
    """The chart's ``singleuser.extraEnv`` and the model Jupyter AI uses; ``OPENAI_API_BASE``
    must be there, reaching the gateway through the proxy (only the chart knows its Service)."""
    environment = dict(c.KubeSpawner.get("environment", {}))
    path = f"{settings.gateway_prefix}/v1"
    base = environment.get("OPENAI_API_BASE")
    parsed = urlparse(base) if isinstance(base, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or parsed.path != path:
        raise SettingsError(
            f"singleuser.extraEnv.OPENAI_API_BASE={base}: user servers reach the gateway through "
            f"the proxy's in-cluster address, with the path {path}: http://proxy-http:8000{path} "
            "with the chart's automatic HTTPS (proxy.https.type letsencrypt), else "
            f"http://proxy-public{path}")
    # the squad API at the same in-cluster proxy address (sportlab.squad, the athletes' sync)
    environment.setdefault("SQUAD_API_URL", base.removesuffix(path) + f"{settings.squad_prefix}/api")
    model = settings.backends()[0].models[0]
    if environment.setdefault("LLM_GATEWAY_MODEL", model) != model:
        raise SettingsError(f"singleuser.extraEnv.LLM_GATEWAY_MODEL={environment['LLM_GATEWAY_MODEL']}"
                            f" is not the first model of SPORTHUB_LLM_BACKENDS ({model}); remove it")
    environment.update(common.first_minutes_environment(settings))
    return environment
