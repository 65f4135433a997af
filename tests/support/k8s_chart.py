"""The Zero to JupyterHub chart's hub configuration, as far as SportHub's k8s profile meets it.

The chart's own ``jupyterhub_config.py`` (chart 4.4: zero-to-jupyterhub-k8s at commit 48ea50e,
``jupyterhub/files/hub/jupyterhub_config.py``) maps the Helm values onto ``c`` and then runs each
``hub.extraConfig`` entry, which is how ``deploy/k8s/values.yaml`` loads SportHub. That file is
not in this repository and reads the chart's mounted Secret and ConfigMap, so the tests use this
restatement of its mapping for every value SportHub reads, keeps or adds to: the spawner, the
proxy in its own pod, the hub database, the hub's bind and connect URLs, ``hub.*`` JupyterHub
settings, KubeSpawner's ``singleuser.*`` settings, the services and roles lists (reset, then the
idle culler from ``cull.*``), ``hub.config`` pass-through and, last, ``hub.extraConfig``.
Keep it in step with the chart when the chart version in values.yaml moves.

``names`` stands for the chart's ConfigMap of resource names (``hub``, ``proxy-api``) and the
ports of their Services; a test that runs a real hub points them at this machine.
"""

from __future__ import annotations

import os
import re
import sys

# c.JupyterHub.<trait> from hub.<key> (chart: the loop over concurrent_spawn_limit ...)
JUPYTERHUB_TRAITS = ("concurrent_spawn_limit", "active_server_limit", "base_url",
                     "allow_named_servers", "named_server_limit_per_user",
                     "authenticate_prometheus", "redirect_to_server", "shutdown_on_logout",
                     "template_paths", "template_vars")
# c.KubeSpawner.<trait> from singleuser.<key> (the subset whose defaults are not empty or that
# SportHub reads: limits, the environment, uid and the storage the profile relies on)
KUBESPAWNER_TRAITS = {"start_timeout": "startTimeout", "uid": "uid", "fs_gid": "fsGid",
                      "mem_limit": "memory.limit", "mem_guarantee": "memory.guarantee",
                      "cpu_limit": "cpu.limit", "cpu_guarantee": "cpu.guarantee",
                      "environment": "extraEnv", "image_pull_policy": "image.pullPolicy"}


def camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def dig(values: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


def apply_chart(c, values: dict, names: dict) -> None:
    hub, single, cull = values["hub"], values["singleuser"], values["cull"]
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.ConfigurableHTTPProxy.api_url = f"http://{names['proxy-api']}:{names['proxy-api-port']}"
    c.ConfigurableHTTPProxy.should_start = False
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.last_activity_interval = 60
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}

    db = hub["db"]
    if db["type"] == "sqlite-pvc":
        c.JupyterHub.db_url = "sqlite:///jupyterhub.sqlite"
    elif db["type"] == "sqlite-memory":
        c.JupyterHub.db_url = "sqlite://"
    elif db.get("url") is not None:
        c.JupyterHub.db_url = db["url"]

    for trait in JUPYTERHUB_TRAITS:
        if hub.get(camel(trait)) is not None:
            setattr(c.JupyterHub, trait, hub[camel(trait)])
    c.JupyterHub.hub_bind_url = f"http://:{names['hub-port']}"
    c.JupyterHub.hub_connect_url = f"http://{names['hub']}:{names['hub-port']}"
    c.KubeSpawner.namespace = os.environ.get("POD_NAMESPACE", "default")

    for trait, key in KUBESPAWNER_TRAITS.items():
        if dig(single, key) is not None:
            setattr(c.KubeSpawner, trait, dig(single, key))
    # the chart's storage.type dynamic: a volume claim per person, of singleuser.storage.capacity
    # (the size a group's user_storage_limit replaces)
    if dig(single, "storage.type") == "dynamic":
        c.KubeSpawner.storage_pvc_ensure = True
        if dig(single, "storage.capacity") is not None:
            c.KubeSpawner.storage_capacity = dig(single, "storage.capacity")
    if dig(single, "image.name"):
        tag = dig(single, "image.tag")
        c.KubeSpawner.image = single["image"]["name"] + (f":{tag}" if tag else "")

    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    if cull.get("enabled"):
        role = {"name": "jupyterhub-idle-culler",
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
                "services": ["jupyterhub-idle-culler"]}
        base_url = c.JupyterHub.get("base_url", "/")
        command = ["python3", "-m", "jupyterhub_idle_culler",
                   f"--url=http://localhost:{names['hub-port']}{base_url.rstrip('/')}/hub/api"]
        for key, flag in (("timeout", "timeout"), ("every", "cull-every"),
                          ("concurrency", "concurrency")):
            if cull.get(key):
                command.append(f"--{flag}={cull[key]}")
        if cull.get("users"):
            command.append("--cull-users")
            role["scopes"].append("admin:users")
        if not cull.get("adminUsers"):
            command.append("--cull-admin-users=false")
        if cull.get("removeNamedServers"):
            command.append("--remove-named-servers")
        if cull.get("maxAge"):
            command.append(f"--max-age={cull['maxAge']}")
        c.JupyterHub.services.append({"name": "jupyterhub-idle-culler", "command": command})
        c.JupyterHub.load_roles.append(role)
    for key, service in (hub.get("services") or {}).items():
        service.setdefault("name", key)
        # the chart reads the token from its Secret, where it puts hub.services.<key>.apiToken
        service["api_token"] = service.pop("apiToken", None)
        c.JupyterHub.services.append(service)
    for key, role in (hub.get("loadRoles") or {}).items():
        role.setdefault("name", key)
        c.JupyterHub.load_roles.append(role)

    if "cmd" in single:
        c.Spawner.cmd = single["cmd"]
    if single.get("defaultUrl") is not None:
        c.Spawner.default_url = single["defaultUrl"]
    c.JupyterHub.cookie_secret = names["cookie-secret"]

    for section, settings in (hub.get("config") or {}).items():
        if section == "JupyterHub":
            for secret in ("proxy_auth_token", "cookie_secret", "services"):
                settings.pop(secret, None)
        if not section[:1].isupper():
            print(f"FATAL: Invalid hub.config section name: {section}.", file=sys.stderr)
            sys.exit(1)
        c[section].update(settings)

    for key, code in sorted((hub.get("extraConfig") or {}).items()):
        print(f"Loading extra config: {key}")
        exec(code, {"c": c})  # noqa: S102 - the chart runs values.yaml's Python the same way
