"""The hub configuration every profile shares: accounts, the LLM scope, pages, services.

Each profile module (``sporthub.hub.profiles``) builds its configuration from these pieces and
adds its own spawner; the k8s profile adds them to the chart's configuration instead of the whole
of it. They are public so that a profile uses them without reaching into another module.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from prometheus_client import REGISTRY, Gauge

from sporthub import i18n
from sporthub.hub.logs import scrub_hub_log
from sporthub.pseudonym import KEY_SECRET as PSEUDONYM_KEY
from sporthub.service_auth import LLM_SCOPE, SQUAD_SCOPE
from sporthub.settings import Settings

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
# on /hub/metrics beside jupyterhub_running_servers, so a dashboard draws the line it meets; made
# once per process (a second configure, as in tests, would register the name twice)
ACTIVE_SERVER_LIMIT = Gauge("sporthub_active_server_limit",
                            "User servers allowed to run at once (0: no limit)", registry=REGISTRY)


def proxy(c, settings: Settings, data_dir: Path) -> None:
    c.ConfigurableHTTPProxy.command = [proxy_command()]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.auth_token = settings.secret("proxy-token")
    c.ConfigurableHTTPProxy.pid_file = str(data_dir / "jupyterhub-proxy.pid")


def proxy_command() -> str:
    local = PROJECT_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(local) if local.exists() else (shutil.which("configurable-http-proxy") or str(local))


def accounts(c, settings: Settings, *, fixed_callback: bool = True) -> None:
    """Sign-in, accounts, roles and groups; with OIDC and ``fixed_callback``, the provider calls
    back to ``SPORTHUB_PUBLIC_URL`` (else this hub's address), without it to each request's
    (the k8s profile without a public URL)."""
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    if settings.public_url:
        # the hub builds its own absolute URLs (redirects, cookies' secure flag, the invite links
        # of sporthub.hub.handlers) on it instead of guessing from each request's headers
        c.JupyterHub.public_url = settings.public_url
    # this file runs inside the hub's process: the filter goes on the hub's own logger
    scrub_hub_log()
    c.CappedAccountsMixin.max_accounts = settings.max_accounts
    c.CappedAccountsMixin.default_groups = group_defaults(settings)
    # /hub/my-data asks the squad service on the person's behalf, at its own socket
    c.CappedAccountsMixin.squad_url = f"http://127.0.0.1:{settings.squad_port}{settings.squad_prefix}"
    if settings.auth == "oidc":
        oidc(c, settings, fixed_callback)
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


def oidc(c, settings: Settings, fixed_callback: bool = True) -> None:
    """The club's provider signs people in; membership of its groups decides access and role."""
    c.JupyterHub.authenticator_class = "sporthub.hub.auth.SportHubOIDCAuthenticator"
    oidc = c.SportHubOIDCAuthenticator
    oidc.login_service = "the club's account"
    oidc.client_id = settings.oidc_client_id
    oidc.client_secret = settings.oidc_client_secret.get_secret_value()
    oidc.authorize_url = settings.oidc_authorize_url
    oidc.token_url = settings.oidc_token_url
    oidc.userdata_url = settings.oidc_userdata_url
    if fixed_callback:
        oidc.oauth_callback_url = f"{settings.people_url}hub/oauth_callback"
    # else the callback is built from each request, whose Host the proxy keeps, with the scheme
    # our trusted proxies forwarded (SportHubOIDCAuthenticator.get_callback_url)
    oidc.trusted_proxies = list(settings.trusted_proxies)
    oidc.forwarded_hops = settings.forwarded_hops
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


def llm_access(c, settings: Settings) -> None:
    """The beta groups and the admins reach the LLM with their own tokens, via a custom scope."""
    c.JupyterHub.custom_scopes = {
        LLM_SCOPE: {"description": "Use the shared language model through the SportHub gateway."},
        SQUAD_SCOPE: {"description": "Share your own training data with the club's staff, and "
                                     "(staff) read what athletes share."},
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
        # the squad: the same people; the service itself decides staff and athletes by groups
        {**llm_users, "name": "squad-users", "description": "Use the squad service",
         "scopes": [SQUAD_SCOPE]},
        # the squad service reads groups: members and properties (staff, squads, minors)
        {"name": "sporthub-squad", "scopes": ["list:groups", "read:groups"],
         "services": ["squad"]},
        # the gateway reads groups (priority, budgets); never admin:users, which exposes auth_state
        {"name": "sporthub-gateway", "scopes": ["read:users:name", "read:users:groups",
                                                "read:groups"], "services": ["llm"]},
    ]
    # JupyterLab's token gets the LLM scope too (the subset the user holds)
    c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", LLM_SCOPE,
                                     SQUAD_SCOPE]


def base(c, settings: Settings) -> Path:
    """What the hub itself is, for the profiles that run it (local, docker; the chart runs it in
    k8s): where it listens, its database and secrets. Returns the data directory."""
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
    proxy(c, settings, data_dir)
    return data_dir


def user_servers(c, settings: Settings) -> None:
    """What every person's server gets, whatever runs it: JupyterLab, and the gateway's address
    and model for Jupyter AI (a profile may replace the address with its own route)."""
    c.Spawner.default_url = "/lab"
    c.Spawner.environment = {
        "OPENAI_API_BASE": settings.gateway_api_base,
        "LLM_GATEWAY_MODEL": settings.backends()[0].models[0],
        **first_minutes_environment(settings),
        # sportlab.squad and the sync reach the squad service through the proxy, like the gateway
        "SQUAD_API_URL": settings.squad_api_base,
        "SQUAD_SYNC_INTERVAL_S": str(settings.squad_sync_interval_s),
    }
    # a stopping server gets 3 s after SIGINT, then SIGTERM and 3 s more before SIGKILL (the
    # defaults, 10 s and 5 s, made Ctrl-C on `make up` wait for a server that hung in teardown)
    c.Spawner.interrupt_timeout = STOP_GRACE_S
    c.Spawner.term_timeout = STOP_GRACE_S


def first_minutes_environment(settings: Settings) -> dict:
    """What a person's server needs for their first minutes, in every profile: whether the model
    is only a demo, their language and where JupyterLab opens."""
    return {
        # the Coach tells people once per chat when its model is only a demo
        "LLM_GATEWAY_DEMO": "1" if settings.backends()[0].demo else "0",
        # read at each start: the page language of the request that started the server, and
        # whether JupyterLab opens on the Coach (athletes) or the Launcher (everyone else)
        "COACH_LANG": spawn_language,
        "COACH_LANDING": landing,
    }


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


def capacity(c, settings: Settings, idle_timeout_s: int) -> None:
    # one GPU server: 3-5 people at once; the next one is asked to come back shortly (the
    # template error.html turns the hub's terse 429 into an explanation)
    c.JupyterHub.active_server_limit = settings.active_server_limit
    ACTIVE_SERVER_LIMIT.set(settings.active_server_limit)
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


def idle_culler(settings: Settings) -> tuple[dict, dict]:
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


def service_environments(settings: Settings) -> dict[str, dict[str, str]]:
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
        "squad": {**settings.as_environment({"db_url"}), **pgpass},
        # the embedded llama-server reads its key from <data>/secrets itself
        "llm-backend": settings.as_environment(),
    }


def services(c, settings: Settings, host: str = "127.0.0.1", *, cli: bool = True,
             own_culler: bool = True) -> None:
    """The gateway, the usage page and the squad service at ``host`` (where the proxy reaches
    them), the Prometheus token and the embedded backend; with ``cli`` the sporthub CLI's token
    service, with ``own_culler`` SportHub's idle culler (the k8s profile wants neither)."""
    env = service_environments(settings)
    # made now, before the gateway and the hub both want it (sporthub.pseudonym): never twice
    settings.secret(PSEUDONYM_KEY)
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
    c.JupyterHub.services.append({
        "name": "squad",
        "display": False,
        "url": f"http://{host}:{settings.squad_port}",
        "command": [sys.executable, "-m", "sporthub.squad"],
        "environment": env["squad"],
    })
    if cli:
        # the sporthub CLI: a token-only service; its token never leaves <data>/secrets/ (0600)
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
    if own_culler:
        culler, culler_role = idle_culler(settings)
        c.JupyterHub.services.append(culler)
        c.JupyterHub.load_roles.append(culler_role)
    if settings.uses_embedded_llm:
        # no url: the backend gets no route through the proxy; only the gateway reaches it
        c.JupyterHub.services.append(
            {"name": "llm-backend", "command": [sys.executable, "-m", "sporthub.llm"],
             "environment": env["llm-backend"]}
        )
