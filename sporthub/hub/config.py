"""Build the whole JupyterHub configuration from the settings object.

``jupyterhub_config.py`` calls :func:`configure`; a profile changes configuration only, never code.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from prometheus_client import REGISTRY, Gauge

from sporthub import i18n, quickexit
from sporthub.hub import localusers
from sporthub.hub.logs import scrub_hub_log
from sporthub.settings import Settings

LLM_SCOPE = "custom:llm:use"
# the sporthub CLI's hub service: the hub grants exactly what its commands need (accounts, groups,
# invite links); sporthub.admin reads the name from here
CLI_SERVICE = "sporthub-cli"
CLI_SCOPES = ["admin:users", "groups"]
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).with_name("templates")
# roles are groups: membership decides who uses the assistant and with which budget and priority
ROLE_GROUPS = ("athletes", "scientists", "priority")
# seconds a user's server gets after SIGINT, and again after SIGTERM, when it is stopped
STOP_GRACE_S = 3


def configure(c, settings: Settings) -> None:
    # this runs inside the hub's process: its exit (after a Ctrl-C) skips the full collection
    quickexit.enable()
    if settings.profile == "k8s":
        # imported here: KubeSpawner and the chart's configuration belong to this profile only
        from sporthub.hub import kube

        kube.configure(c, settings)
        return
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)

    c.JupyterHub.ip = settings.ip
    c.JupyterHub.port = settings.port
    c.JupyterHub.base_url = settings.base_url
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = settings.hub_port
    c.JupyterHub.db_url = settings.hub_database_url
    c.JupyterHub.cookie_secret_file = str(settings.secrets_dir.resolve() / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(data_dir / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True

    _proxy(c, settings, data_dir)
    _accounts(c, settings)
    _llm_access(c, settings)
    _spawner(c, settings, data_dir)
    _capacity(c, settings, settings.idle_timeout_s)
    _services(c, settings)


def _proxy(c, settings: Settings, data_dir: Path) -> None:
    c.ConfigurableHTTPProxy.command = [_proxy_command()]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = settings.secret("proxy-token")
    c.ConfigurableHTTPProxy.pid_file = str(data_dir / "jupyterhub-proxy.pid")


def _proxy_command() -> str:
    local = PROJECT_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(local) if local.exists() else (shutil.which("configurable-http-proxy") or str(local))


def _accounts(c, settings: Settings) -> None:
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    # this file runs inside the hub's process: the filter goes on the hub's own logger
    scrub_hub_log()
    c.CappedAccountsMixin.max_accounts = settings.max_accounts
    c.CappedAccountsMixin.default_groups = group_defaults(settings)
    if settings.auth == "oidc":
        _oidc(c, settings)
        return
    # an account the admin made (admin panel, CLI) may sign in once it has a password
    c.Authenticator.allow_existing_users = True
    c.JupyterHub.authenticator_class = "sporthub.hub.auth.SportHubAuthenticator"
    c.Authenticator.admin_users = {settings.admin_user}
    c.SportHubAuthenticator.admin_password = settings.admin_password_value()
    c.SportHubAuthenticator.accounts_url = settings.accounts_url
    c.SportHubAuthenticator.invite_ttl_hours = settings.invite_ttl_hours
    c.SportHubAuthenticator.max_failures = settings.login_max_failures
    c.SportHubAuthenticator.longest_delay_minutes = settings.login_lockout_minutes
    # the same proxies and hops the gateway reads: one rule for who the client is
    c.SportHubAuthenticator.trusted_proxies = list(settings.trusted_proxies)
    c.SportHubAuthenticator.forwarded_hops = settings.forwarded_hops
    # no "properties" key: load_groups would replace the admin's edits on every start; the
    # authenticator fills in defaults only for a group without any
    c.JupyterHub.load_groups = {name: {} for name in ROLE_GROUPS}


def _oidc(c, settings: Settings) -> None:
    """The club's provider signs people in; membership of its groups decides access and role."""
    c.JupyterHub.authenticator_class = "sporthub.hub.auth.SportHubOIDCAuthenticator"
    oidc = c.SportHubOIDCAuthenticator
    oidc.login_service = "the club's account"
    oidc.client_id = settings.oidc_client_id
    oidc.client_secret = settings.oidc_client_secret.get_secret_value()
    oidc.authorize_url = settings.oidc_authorize_url
    oidc.token_url = settings.oidc_token_url
    oidc.userdata_url = settings.oidc_userdata_url
    if settings.profile != "k8s":
        oidc.oauth_callback_url = f"{settings.public_url}hub/oauth_callback"
    # k8s: the public name is the chart's (proxy.https.hosts); OAuthenticator derives the callback
    # from each request, whose Host the proxy keeps and whose scheme X-Forwarded-Proto gives
    oidc.scope = list(settings.oidc_scopes)
    oidc.username_claim = settings.oidc_username_claim
    # groups follow the provider at every sign-in; the roles of load_roles create the hub's
    # groups at start (load_groups cannot be combined with manage_groups)
    oidc.manage_groups = True
    oidc.groups_claim = settings.oidc_groups_claim
    oidc.group_map = dict(settings.oidc_group_map)
    oidc.allowed_groups = set(settings.oidc_allowed_groups)
    oidc.admin_groups = set(settings.oidc_admin_groups)
    # the provider's groups decide at every sign-in: with existing users allowed, anybody who had
    # signed in once would pass before the group check, even after leaving the club
    oidc.allow_existing_users = False


def group_defaults(settings: Settings) -> dict[str, dict]:
    defaults = {}
    for name in ROLE_GROUPS:
        policy = settings.llm_groups.get(name)
        defaults[name] = policy.model_dump(exclude_none=True) if policy else {}
    return defaults


def _llm_access(c, settings: Settings) -> None:
    """The beta groups and the admins reach the LLM with their own tokens, via a custom scope."""
    c.JupyterHub.custom_scopes = {
        LLM_SCOPE: {"description": "Use the shared language model through the SportHub gateway."},
    }
    # membership of a beta group is what grants the assistant; a plain account gets nothing.
    # JupyterHub refuses to extend the built-in admin role, so the admins are named here: the
    # admin from the settings (passwords), or the provider's admin groups (OIDC). An admin
    # promoted in the admin panel joins a group like everyone else.
    llm_users = {"name": "llm-users", "description": "Use the shared language model",
                 "scopes": [LLM_SCOPE], "groups": list(ROLE_GROUPS)}
    if settings.auth == "oidc":
        llm_users["groups"] += [g for g in settings.oidc_admin_groups if g not in ROLE_GROUPS]
    else:
        llm_users["users"] = [settings.admin_user]
    c.JupyterHub.load_roles = [
        llm_users,
        # the gateway reads groups (priority, budgets); never admin:users, which exposes auth_state
        {"name": "sporthub-gateway", "scopes": ["read:users:name", "read:users:groups",
                                                "read:groups"], "services": ["llm"]},
    ]
    # JupyterLab's token gets the LLM scope too (the subset the user holds)
    c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", LLM_SCOPE]


def _spawner(c, settings: Settings, data_dir: Path) -> None:
    c.Spawner.default_url = "/lab"
    first = settings.backends()[0]
    c.Spawner.environment = {
        "OPENAI_API_BASE": settings.gateway_api_base,
        "LLM_GATEWAY_MODEL": first.models[0],
        # the Coach tells people once per chat when its model is only a demo
        "SPORTHUB_LLM_DEMO": "1" if first.demo else "0",
        # read at each start: the page language of the request that started the server, and
        # whether JupyterLab opens on the Coach (athletes) or the Launcher (everyone else)
        "SPORTHUB_LANG": spawn_language,
        "SPORTHUB_LANDING": landing,
    }
    # a stopping server gets 3 s after SIGINT, then SIGTERM and 3 s more before SIGKILL (the
    # defaults, 10 s and 5 s, made Ctrl-C on `make up` wait for a server that hung in teardown)
    c.Spawner.interrupt_timeout = STOP_GRACE_S
    c.Spawner.term_timeout = STOP_GRACE_S
    if settings.profile == "local":
        _local_spawner(c, settings, data_dir)
    elif settings.profile == "docker":
        # imported here: the docker SDK and an engine are needed by this profile only
        from sporthub.hub import spawners

        spawners.configure(c, settings)


def spawn_language(spawner) -> str:
    """The hub page's language (``sporthub_lang`` cookie, else Accept-Language) of the browser
    request that started this server; English for a start through the API."""
    handler = getattr(spawner, "handler", None)
    request = getattr(handler, "request", None)
    return i18n.language_of_request(request) if request is not None else "en"


def landing(spawner) -> str:
    """``coach`` for an athlete (in ``athletes``, not in ``scientists``), else ``launcher``."""
    groups = {g.name for g in spawner.user.groups}
    return "coach" if "athletes" in groups and "scientists" not in groups else "launcher"


def _local_spawner(c, settings: Settings, data_dir: Path) -> None:
    """Local processes: under a system user per person (hub as root), else the hub's own."""
    localusers.check_start(settings)  # also when the hub is started without `sporthub up`
    c.Spawner.start_timeout = 120
    # a first JupyterLab start imports Jupyter AI (12-20 s on a busy 2-core server); the
    # default 30 s for it to answer made the hub give up on servers that were nearly up
    c.Spawner.http_timeout = 120
    if os.geteuid() == 0:
        c.JupyterHub.spawner_class = "sporthub.hub.localusers.SystemUserSpawner"
        c.SystemUserSpawner.user_prefix = settings.local_user_prefix
        # the environment `sporthub prepare` made for them under /opt
        c.Spawner.cmd = [str(localusers.user_environment() / "bin" / "jupyterhub-singleuser")]
    else:
        c.Spawner.cmd = [str(Path(sys.prefix) / "bin" / "jupyterhub-singleuser")]
        # a single-person trial (check_start keeps it on loopback): homes in the data dir
        c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
        c.SimpleLocalProcessSpawner.home_dir_template = str(data_dir / "users" / "{username}")


def _capacity(c, settings: Settings, idle_timeout_s: int) -> None:
    # one GPU server: 3-5 people at once; the next one is asked to come back shortly (the
    # template error.html turns the hub's terse 429 into an explanation)
    c.JupyterHub.active_server_limit = settings.active_server_limit
    # on /hub/metrics beside jupyterhub_running_servers, so a dashboard draws the line it meets
    limit = Gauge("sporthub_active_server_limit", "User servers allowed to run at once (0: no "
                  "limit)", registry=REGISTRY)
    limit.set(settings.active_server_limit)
    c.JupyterHub.template_vars = {
        "sporthub_active_server_limit": settings.active_server_limit,
        # in the page's language, hence seconds and a function (sporthub/i18n.py); in k8s the
        # chart's culler decides the idle time, so it comes in as an argument
        "sporthub_idle_seconds": idle_timeout_s,
        "sporthub_duration": lambda user: i18n.jinja_duration,
        "sporthub_invites": settings.auth == "password",
        "sporthub_max_accounts": settings.max_accounts,
        # English or Russian pages (sporthub/i18n.py); a callable here is called with the user,
        # so each is wrapped to hand the template the function itself
        "_": lambda user: i18n.jinja_gettext,
        "_n": lambda user: i18n.jinja_ngettext,
        "sporthub_language": lambda user: i18n.jinja_language,
        "sporthub_error_titles": i18n.ERROR_TITLES,
    }


def _idle_culler(settings: Settings) -> tuple[dict, dict]:
    """Stops servers idle for ``idle_timeout_s``, which frees places under the server limit."""
    service = {
        "name": "idle-culler",
        # a module of ours around jupyterhub_idle_culler: it stops at once when the hub stops
        "command": [sys.executable, "-m", "sporthub.hub.culler",
                    f"--timeout={settings.idle_timeout_s}"],
    }
    # exactly what culling servers needs; not admin:users (no culling of accounts here)
    role = {"name": "idle-culler", "services": ["idle-culler"],
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}
    return service, role


def _service_environments(settings: Settings) -> dict[str, dict[str, str]]:
    """Each service's settings, with only the secrets it uses: the backends' keys and the metrics
    token to the gateway, the ledger's URL to the gateway and the usage page. The admin password
    and the OIDC secret stay in the hub (the authenticator); the idle culler needs no setting."""
    # the ledger's password, when its URL has none: libpq's password file (a hub-managed service
    # inherits almost nothing of the hub's environment, so it is handed on by name)
    pgpass = {"PGPASSFILE": os.environ["PGPASSFILE"]} if os.environ.get("PGPASSFILE") else {}
    return {
        "llm": {**settings.as_environment({"backend_keys", "gateway_metrics_token", "db_url"}),
                **pgpass},
        "usage": {**settings.as_environment({"db_url"}), **pgpass},
        # the embedded llama-server reads its key from <data>/secrets itself
        "llm-backend": settings.as_environment(),
    }


def _services(c, settings: Settings, host: str = "127.0.0.1") -> None:
    """The gateway and the usage page at ``host`` (where the proxy reaches them), the CLI, the
    Prometheus token, the idle culler and the embedded backend."""
    k8s = settings.profile == "k8s"
    env = _service_environments(settings)
    c.JupyterHub.services = [
        {
            "name": "llm",
            "display": False,
            "url": f"http://{host}:{settings.gateway_port}",
            "command": [sys.executable, "-m", "sporthub.gateway"],
            "environment": env["llm"],
        },
    ]
    c.JupyterHub.services.append({
        "name": "usage",
        "display": True,
        "oauth_no_confirm": True,
        "url": f"http://{host}:{settings.usage_port}",
        "command": [sys.executable, "-m", "sporthub.usage"],
        "environment": env["usage"],
    })
    # names, groups and group properties (budgets); the page itself checks that the viewer is an
    # admin. Never admin:users, which exposes auth_state.
    c.JupyterHub.load_roles.append({
        "name": "sporthub-usage", "services": ["usage"],
        "scopes": ["list:users", "read:users", "list:groups", "read:groups"]})
    if not k8s:
        # the sporthub CLI: a token-only service; its token never leaves <data>/secrets/ (0600).
        # Not in k8s: from inside the hub pod the CLI cannot reach the public address it needs
        c.JupyterHub.services.append({"name": CLI_SERVICE,
                                      "api_token": settings.secret("cli-api-token")})
        c.JupyterHub.load_roles.append({"name": CLI_SERVICE, "services": [CLI_SERVICE],
                                        "scopes": CLI_SCOPES})
    if settings.hub_metrics_token is not None:
        # Prometheus: a token-only service that may read /hub/metrics and nothing else
        c.JupyterHub.services.append({"name": "prometheus",
                                      "api_token": settings.hub_metrics_token.get_secret_value()})
        c.JupyterHub.load_roles.append({"name": "prometheus", "services": ["prometheus"],
                                        "scopes": ["read:metrics"]})
    if not k8s:  # k8s: the chart's own culler (cull.*) does it
        culler, culler_role = _idle_culler(settings)
        c.JupyterHub.services.append(culler)
        c.JupyterHub.load_roles.append(culler_role)
    if settings.uses_embedded_llm:
        # no url: the backend gets no route through the proxy; only the gateway reaches it
        c.JupyterHub.services.append(
            {"name": "llm-backend", "command": [sys.executable, "-m", "sporthub.llm"],
             "environment": env["llm-backend"]}
        )
