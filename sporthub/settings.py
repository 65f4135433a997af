"""The one settings object of SportHub.

Values come from environment variables ``SPORTHUB_<NAME>`` and, below them, from an optional TOML
file (``SPORTHUB_CONFIG``, default ``sporthub.toml`` in the working directory). Everything in SportHub
reads configuration through :func:`load_settings`; nothing else reads ``SPORTHUB_*`` directly.

Secrets that SportHub can make itself (the admin password, the embedded backend's key) are generated
once and kept 0600 in ``<data_dir>/secrets/`` so that a restart keeps them.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from collections.abc import Collection
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sporthub.passwords import WeakPassword, check_password_strength

ENV_PREFIX = "SPORTHUB_"
Port = Annotated[int, Field(ge=1, le=65535)]

EMBEDDED_BACKEND = "embedded"
EMBEDDED_MODEL = "smollm2-135m-instruct"


class SettingsError(Exception):
    """A setting is missing or invalid; the message names it the way the admin wrote it."""


class Backend(BaseModel):
    """One OpenAI-compatible upstream (vLLM in production, llama-server in the embedded default)."""

    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$",
                      description="the backend's name in the ledger, metrics and `/health`")
    url: str = Field(description="base URL, without /v1, e.g. http://vllm:8000")
    api_key: SecretStr | None = Field(
        default=None, description="the key the backend was started with (vLLM's `--api-key`)")
    # a container secret: the key is read from this file, so it is never in the environment
    api_key_file: Path | None = Field(
        default=None, description="read the key from this file instead (a container secret)")
    models: list[str] = Field(min_length=1, description="model names this backend serves")
    max_concurrency: int | None = Field(
        default=None, ge=1,
        description="requests it serves at once; unset: `SPORTHUB_LLM_MAX_CONCURRENCY`")
    supports_tools: bool = Field(
        default=False,
        description="the backend parses tool calls; otherwise the gateway drops tool definitions "
                    "for it (so Jupyternaut always gets an answer)")
    # image, audio and file content parts reach this backend (a vision or audio model), and then
    # only inline (data: URLs): a link would be fetched by the model server
    accepts_media: bool = Field(
        default=False,
        description="a vision or audio model: image, audio and file parts reach it, inline only")
    # a model for trying SportHub, not for advice (the embedded SmolLM2-135M is one): the Coach
    # says so once per chat and the status bar shows "AI (demo model)"
    demo: bool = Field(default=False, description="a demo model: people are told its answers "
                       "are not advice")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url.rstrip("/").removesuffix("/v1")

    @model_validator(mode="after")
    def _key_from_file(self) -> Backend:
        if self.api_key_file is not None:
            if self.api_key is not None:
                raise ValueError("give api_key or api_key_file, not both")
            try:
                self.api_key = SecretStr(self.api_key_file.read_text().strip())
            except OSError as e:
                raise ValueError(f"api_key_file {self.api_key_file}: {e.strerror}") from None
            self.api_key_file = None  # read once: the child processes get the key itself
        return self


class GroupPolicy(BaseModel):
    """LLM limits of a group; the hub's group properties of the same names override them."""

    model_config = {"extra": "forbid"}

    llm_tokens_per_day: int | None = Field(default=None, ge=0,
                                           description="the group's daily token budget")
    llm_priority: int | None = Field(default=None,
                                     description="the group's priority class; higher goes first")


DEFAULT_GROUP_POLICIES = {
    "athletes": GroupPolicy(llm_tokens_per_day=50_000, llm_priority=0),
    "scientists": GroupPolicy(llm_tokens_per_day=200_000, llm_priority=0),
    "priority": GroupPolicy(llm_priority=10),
}


class FileValuesSource(PydanticBaseSettingsSource):
    """``SPORTHUB_<NAME>_FILE=/path``: the setting's value is that file's content.

    This is how container secrets arrive (Compose, Kubernetes): a file, never the value itself in
    the environment or in a Compose file."""

    def get_field_value(self, field, field_name):  # required by the base class; unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name, field in self.settings_cls.model_fields.items():
            variable = f"{ENV_PREFIX}{name.upper()}_FILE"
            if not os.environ.get(variable):
                continue
            try:
                raw = Path(os.environ[variable]).read_text().strip()
            except OSError as e:
                raise SettingsError(f"invalid setting {variable}: {e.strerror}: "
                                    f"{os.environ[variable]}") from None
            try:
                values[name] = json.loads(raw) if self.field_is_complex(field) else raw
            except json.JSONDecodeError as e:
                raise SettingsError(f"invalid setting {variable}: not JSON ({e.msg})") from None
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    profile: Literal["local", "docker", "k8s"] = Field(
        default="local",
        description="`local` (this machine, local processes, SQLite), `docker` (a container per "
                    "person), `k8s` (inside the Zero to JupyterHub chart, see "
                    "[Kubernetes](production.md#growing-beyond-one-server-kubernetes))")
    ip: str = Field(default="127.0.0.1", description="where people reach the hub: its address")
    port: Port = Field(default=8000, description="where people reach the hub: its port")
    base_url: str = Field(default="/", description="URL prefix, when the hub shares a domain")
    # the address people type, behind a TLS front (Caddy, an ingress): every absolute URL the hub
    # prints (invite links, the OAuth callback, the start banner) is built on it, never guessed
    # from a request's headers; unset, on the hub's own address (ip, port: a local trial)
    public_url: str | None = Field(
        default=None,
        description="the address people type, e.g. `https://hub.club.example/` (behind a TLS "
                    "front): invite links, the OAuth callback and every other absolute URL the "
                    "hub prints use it; its path, if any, is `SPORTHUB_BASE_URL`. Unset: "
                    "`http://<ip>:<port>/`, with `https` only from a trusted proxy's "
                    "`X-Forwarded-Proto` for links made through it")
    data_dir: Path = Field(
        default=Path("data"),
        description="hub database, gateway ledger, secrets (0700, the hub's account only)")
    admin_user: str = Field(default="admin", pattern=r"^[a-z0-9][a-z0-9._-]*$",
                            description="the first admin account")
    admin_password: SecretStr | None = Field(
        default=None,
        description="if unset: generated once, stored 0600 in `<data>/secrets/` and printed by "
                    "`sporthub up`; if set: the invite rules apply (10+ characters, not common, "
                    "not containing the admin's name)")

    # internal ports: hub API, proxy API, gateway, embedded LLM
    hub_port: Port = Field(default=8081, description="internal port of the hub's API, on 127.0.0.1")
    proxy_api_port: Port = Field(default=8001,
                                 description="internal port of the proxy's API, on 127.0.0.1")
    gateway_port: Port = Field(default=8091, description="internal port of the LLM gateway")
    embedded_llm_port: Port = Field(default=8092,
                                    description="internal port of the embedded model, on 127.0.0.1")
    # which engine serves the embedded model: llama-server (small, starts in seconds) or vLLM on the
    # CPU (what production runs on its GPU; ~3.5 GB of memory, about a minute to start)
    embedded_backend: Literal["llama-server", "vllm"] = Field(
        default="llama-server",
        description="what serves the embedded model: `llama-server` or `vllm` (CPU, see "
                    "[vLLM](production.md#vllm-the-production-engine-on-this-machine)); not with "
                    "`SPORTHUB_LLM_BACKENDS`")

    llm_backends: list[Backend] = Field(
        default_factory=list,
        description="JSON list of OpenAI-compatible upstreams (see [backends](#backends) below); "
                    "empty: the embedded model")
    llm_max_concurrency: int = Field(
        default=4, ge=1,
        description="requests a backend serves at once (size it to vLLM's `--max-num-seqs`)")
    # budgets and priority: defaults per group; the most generous of a user's groups wins
    llm_tokens_per_day: int = Field(default=20_000, ge=0,
                                    description="daily token budget of someone in no group")
    llm_groups: dict[str, GroupPolicy] = Field(
        default_factory=lambda: dict(DEFAULT_GROUP_POLICIES),
        description="JSON: per-group `llm_tokens_per_day`, `llm_priority` defaults (athletes 50k, "
                    "scientists 200k, priority first); the admin panel's group properties of the "
                    "same names override them")
    # the longest a request may hold a slot, streamed or not: then it is cut and the slot freed
    llm_request_timeout_s: float = Field(
        default=300.0, gt=0, le=3600,
        description="the longest one request may hold a slot, streamed or not")
    # a stream that sends nothing for this long is cut and its slot freed
    llm_stall_timeout_s: float = Field(
        default=60.0, gt=0, le=3600,
        description="a stream silent this long is cut and its slot freed")
    # a caller that reads nothing of its answer for this long is cut off and its slot freed
    llm_client_write_timeout_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="a caller who reads nothing of its answer this long is cut off")
    llm_queue_timeout_s: float = Field(
        default=300.0, gt=0, le=3600,
        description="a request waiting longer gets 503 with `Retry-After`")
    llm_max_running_per_user: int = Field(
        default=2, ge=1, description="requests of one person served at once; more gets 429")
    llm_max_queued_per_user: int = Field(
        default=4, ge=0, description="requests of one person waiting at once; more gets 429")
    llm_max_tokens: int = Field(default=2048, ge=1,
                                description="cap on `max_tokens` per request (400 beyond)")
    llm_max_prompt_chars: int = Field(
        default=48_000, ge=1,
        description="cap on a request's prompt size in characters, every forwarded field counted "
                    "(413 beyond)")
    llm_max_answer_bytes: int = Field(
        default=8 * 2**20, ge=2**16,
        description="the largest answer (not streamed) or stream event the gateway takes from a "
                    "backend: a larger one is cut with a 502 `answer_too_large`, its slot freed, "
                    "and charged its whole `max_tokens`. The default (8 MiB) is about twice the "
                    "largest answer within the caps (2048 tokens, 20 top log probabilities each); "
                    "`top_logprobs` is bounded at 20 and completions' `logprobs` at 5, as OpenAI "
                    "and vLLM do")
    # the ETA before any request has been measured: a typical answer (200 tokens) alone takes this
    # long, which sets the decode rate the estimator starts from until it has measured one
    llm_initial_service_s: float = Field(
        default=10.0, gt=0,
        description="the queue's ETA before anything was measured: the seconds a typical answer "
                    "(200 tokens) is assumed to take, until the gateway has measured one")
    llm_health_interval_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="seconds between the gateway's health checks of each backend")
    # who the client is, for the hub's sign-in throttling and the gateway's audit log alike
    # (sporthub.forwarded): X-Forwarded-For is read only from these proxies (addresses or
    # networks), and only its last forwarded_hops entries: 1 = the hub's proxy alone, 2 = a TLS
    # proxy in front of it (whose address or network must be listed too)
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="whose `X-Forwarded-For` the hub (sign-in throttling) and the gateway (audit "
                    "log) read: addresses or networks of the hub's proxy and the TLS proxy in "
                    "front of it. Formerly `SPORTHUB_GATEWAY_TRUSTED_PROXIES`: the old name is "
                    "refused with the new one")
    forwarded_hops: int = Field(
        default=1, ge=1, le=5,
        description="how many of `X-Forwarded-For`'s last entries our own proxies wrote (`2` with "
                    "a TLS proxy in front of the hub's, whose address must be listed in "
                    "`SPORTHUB_TRUSTED_PROXIES` too). Formerly `SPORTHUB_GATEWAY_FORWARDED_HOPS`: "
                    "the old name is refused with the new one")
    gateway_metrics_token: SecretStr | None = Field(
        default=None,
        description="a bearer token Prometheus may use for `/services/llm/metrics`")
    # a hub token with only read:metrics, for Prometheus to scrape /hub/metrics
    hub_metrics_token: SecretStr | None = Field(
        default=None,
        description="a hub token holding only `read:metrics`, for Prometheus to scrape "
                    "`/hub/metrics`")
    gateway_audit_prompts: bool = Field(
        default=False,
        description="also write prompt text to the audit log (off: privacy)")
    audit_retention_days: int = Field(
        default=90, ge=1, le=3650,
        description="after this many days the gateway's ledger rows and audit lines keep their "
                    "counts but lose the client address, the prompt texts and the name (replaced "
                    "by a pseudonym); applied daily by the gateway (docs/privacy.md). The usage "
                    "page shows the last 14 days: below 14 it shows pseudonyms for older days")
    # how long a checked token is believed (the revocation lag); 0 asks the hub every time
    gateway_auth_cache_s: int = Field(
        default=30, ge=0, le=30,
        description="how long a checked token is believed (revocation lag, at most 30; `0`: ask "
                    "the hub every time)")
    db_url: str | None = Field(
        default=None,
        description="the gateway's usage ledger (`postgresql+psycopg://...`); unset: SQLite in "
                    "the data dir")
    # the hub's own database (accounts' servers, tokens, groups); None: SQLite in the data dir
    hub_db_url: str | None = Field(
        default=None,
        description="the hub's own database (accounts, groups, tokens, servers); "
                    "`postgresql+psycopg://...` keeps all state in one PostgreSQL; unset: SQLite "
                    "in the data dir")
    # local profile, hub running as root: person <name>'s server runs as system user <prefix><name>
    local_user_prefix: str = Field(
        default="jupyter-", pattern=r"^[a-z][a-z0-9_-]{0,15}$",
        description="`local` profile as root: person `<name>`'s server runs as system user "
                    "`<prefix><name>` (two hubs on one machine need different ones)")

    # sign-in: invite-only passwords (the embedded default) or the club's OpenID Connect provider
    auth: Literal["password", "oidc"] = Field(
        default="password",
        description="`password` (invite-only accounts) or `oidc` (the club's OpenID Connect "
                    "provider), see [Accounts](admin-guide.md#accounts-and-administration)")
    oidc_authorize_url: str | None = Field(
        default=None,
        description="the provider's authorization endpoint (from its "
                    "`/.well-known/openid-configuration`)")
    oidc_token_url: str | None = Field(default=None,
                                       description="the provider's token endpoint")
    oidc_userdata_url: str | None = Field(default=None,
                                          description="the provider's userinfo endpoint")
    oidc_client_id: str | None = Field(
        default=None,
        description="the client registered at the provider for `<public URL>/hub/oauth_callback`")
    oidc_client_secret: SecretStr | None = Field(default=None,
                                                 description="that client's secret")
    oidc_username_claim: str = Field(default="preferred_username",
                                     description="the claim that becomes the hub user name")
    oidc_scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        description="scopes asked for (add the provider's groups scope if it has one)")
    oidc_groups_claim: str = Field(default="groups",
                                   description="the claim that lists a person's provider groups")
    # provider group -> hub group; provider groups not named here are ignored
    oidc_group_map: dict[str, str] = Field(
        default_factory=lambda: {g: g for g in ("athletes", "scientists", "priority")},
        description="JSON `{\"provider group\": \"hub group\"}`; the default maps `athletes`, "
                    "`scientists`, `priority` to themselves; other provider groups are ignored")
    oidc_allowed_groups: list[str] = Field(
        default_factory=lambda: ["athletes", "scientists", "priority"],
        description="hub groups (after the map) whose members may sign in")
    oidc_admin_groups: list[str] = Field(
        default_factory=list,
        description="hub groups (after the map) whose members are hub admins; e.g. map "
                    "`club-admins` to `hub-admins` and list `hub-admins`")

    # accounts: invite-only passwords (the embedded default)
    max_accounts: int = Field(default=100, ge=1,
                              description="accounts the hub accepts, the admin included")
    invite_ttl_hours: float = Field(default=72.0, gt=0, le=24 * 30,
                                    description="how long an invite link works, in hours")
    # failed sign-ins at one account from one address before that address must wait (1 s, 2 s,
    # 4 s ... up to login_lockout_minutes); an address as a whole gets 4 times as many
    login_max_failures: int = Field(
        default=5, ge=1,
        description="failed sign-ins at an account from one address before that address must "
                    "wait (an address as a whole gets four times as many)")
    login_lockout_minutes: float = Field(
        default=15.0, gt=0,
        description="the longest wait (minutes) before a further try after failed sign-ins")
    # capacity: user servers running at once, and when an idle one is stopped
    active_server_limit: int = Field(default=5, ge=0,
                                     description="user servers running at once (`0`: no limit)")
    idle_timeout_s: int = Field(default=3600, ge=10,
                                description="an idle user server is stopped after this")
    usage_port: Port = Field(default=8093, description="internal port of the admin's usage page")

    # the squad service (sporthub/squad): athletes' shared recordings, stored under
    # <data_dir>/squad and in its database (SPORTHUB_DB_URL's server, else SQLite)
    squad_port: Port = Field(default=8094, description="internal port of the squad service")
    squad_max_file_bytes: int = Field(
        default=64 * 2**20, ge=1024,
        description="the largest recording (or log.csv) the squad service stores; larger: 413")
    squad_max_files: int = Field(default=5000, ge=1,
                                 description="files the squad service keeps per athlete; more: 429")
    squad_max_total_bytes: int = Field(
        default=2 * 2**30, ge=1024,
        description="bytes the squad service keeps per athlete, all files together; more: 429")
    squad_sync_interval_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="how often a sharing athlete's server looks for new, changed or removed "
                    "files in ~/activities")

    # the docker profile: one container per person (DockerSpawner); the limits are defaults that
    # the hub's group properties user_mem_limit / user_cpu_limit override (most generous wins),
    # applied by one pre_spawn_hook in every profile (sporthub.hub.limits)
    singleuser_image: str = Field(default="sporthub-singleuser:latest", min_length=1,
                                  description="the user image (the only one allowed)")
    docker_network: str = Field(
        default="sporthub", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
        description="the containers' network; created internal if missing")
    # the people's containers and home volumes are <prefix>-<name> and <prefix>-home-<name>:
    # another prefix keeps a second installation on the same engine apart (a restored copy)
    docker_name_prefix: str = Field(
        default="sporthub", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
        description="containers `<prefix>-<name>`, home volumes `<prefix>-home-<name>`; another "
                    "prefix keeps a second installation on the same engine apart")
    # the hub's address as the containers see it; default: the network's gateway (hub on the host)
    docker_hub_host: str | None = Field(
        default=None,
        description="the hub's address as containers see it; unset: the network's gateway")
    user_mem_limit: str = Field(
        default="2G", pattern=r"^[0-9]+(\.[0-9]+)?[KMGT]?$",
        description="memory per person, when none of their groups sets `user_mem_limit` (docker; "
                    "local only with the hub run as root: refused otherwise)")
    user_cpu_limit: float = Field(
        default=1.0, gt=0,
        description="CPUs per person, when none of their groups sets `user_cpu_limit` (docker; "
                    "local only with the hub run as root: refused otherwise)")
    # the size of a person's home: their named volume, made with the engine's size option, which
    # Docker Engine and podman honour only on XFS with project quotas (docs/production.md); the
    # hub checks at start that its engine does, and refuses the setting otherwise
    user_storage_limit: str | None = Field(
        default=None, pattern=r"^[0-9]+(\.[0-9]+)?[KMGT]?$",
        description="the size of a person's home, when none of their groups sets "
                    "`user_storage_limit`; unset: no limit (docker, on an engine whose volumes "
                    "are on XFS with project quotas: refused otherwise and in the local profile)")

    @field_validator("user_storage_limit", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        # Compose passes an unset variable as "" (deploy/compose: ${SPORTHUB_USER_STORAGE_LIMIT:-})
        return None if value == "" else value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or network") from None
        return proxies

    @field_validator("oidc_authorize_url", "oidc_token_url", "oidc_userdata_url")
    @classmethod
    def _oidc_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a local test provider)")
        return url

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.auth == "oidc":
            missing = [n for n in ("oidc_authorize_url", "oidc_token_url", "oidc_userdata_url",
                                   "oidc_client_id", "oidc_client_secret")
                       if getattr(self, n) is None]
            if missing:
                raise ValueError("SPORTHUB_AUTH=oidc also needs " + ", ".join(
                    f"{ENV_PREFIX}{n.upper()}" for n in missing))
        return self

    @model_validator(mode="after")
    def _embedded_backend_used(self) -> Settings:
        if self.llm_backends and "embedded_backend" in self.model_fields_set:
            raise ValueError(f"{ENV_PREFIX}EMBEDDED_BACKEND has no effect when "
                             f"{ENV_PREFIX}LLM_BACKENDS is set: unset one of them")
        return self

    @model_validator(mode="after")
    def _admin_password_strong(self) -> Settings:
        # the same rules as a password chosen through an invite link
        if self.auth == "password" and self.admin_password is not None:
            try:
                check_password_strength(self.admin_user, self.admin_password.get_secret_value())
            except WeakPassword as e:
                raise ValueError(f"{ENV_PREFIX}ADMIN_PASSWORD is refused: {e}") from None
        return self

    @field_validator("base_url")
    @classmethod
    def _slashes(cls, base_url: str) -> str:
        return "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"

    @model_validator(mode="after")
    def _public_url_whole(self) -> Settings:
        # scheme://host[:port] and the hub's prefix, nothing else: a link built on it must lead
        # to the hub, so a path other than base_url (or a query) is refused, not guessed at
        if self.public_url is None:
            return self
        parts = urlsplit(self.public_url.strip())
        problem = None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "must be http(s)://<name>[:port]/, e.g. https://hub.club.example/"
        elif parts.query or parts.fragment or parts.username or parts.password:
            problem = "must have no query, fragment or credentials"
        elif parts.path.strip("/") and "/" + parts.path.strip("/") + "/" != self.base_url:
            problem = f"its path must be SPORTHUB_BASE_URL ({self.base_url}) or nothing"
        if problem:
            raise ValueError(f"{ENV_PREFIX}PUBLIC_URL {self.public_url!r} {problem}")
        self.public_url = f"{parts.scheme}://{parts.netloc}{self.base_url}"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get(f"{ENV_PREFIX}CONFIG", "sporthub.toml"))
        return (init_settings, env_settings, FileValuesSource(settings_cls),
                TomlConfigSettingsSource(settings_cls, toml_file))

    # -- derived values --------------------------------------------------------------------

    @property
    def uses_embedded_llm(self) -> bool:
        return not self.llm_backends

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def local_url(self) -> str:
        """Where the hub answers on this machine (health checks, the admin CLI's API calls)."""
        return f"http://{self.ip}:{self.port}{self.base_url}"

    @property
    def people_url(self) -> str:
        """The address people use: SPORTHUB_PUBLIC_URL, else the hub's own."""
        return self.public_url or self.local_url

    @property
    def gateway_prefix(self) -> str:
        return f"{self.base_url}services/llm"

    @property
    def service_bind_ip(self) -> str:
        """Where the gateway and the usage page listen: loopback, except in the k8s profile,
        where the proxy is another pod and reaches them through the hub's Service. The one
        profile question answered here and not by its module (sporthub.hub.profiles): the
        services are processes of their own that never import the hub."""
        return "0.0.0.0" if self.profile == "k8s" else "127.0.0.1"

    @property
    def gateway_url(self) -> str:
        """Where the hub's proxy reaches the gateway (its own socket)."""
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def gateway_api_base(self) -> str:
        """Where user servers reach the gateway: through the hub's proxy, like browsers.

        So every caller arrives with the proxy's X-Forwarded-For, and a user server cannot pass
        a made-up address of its own for the audit log (the proxy appends the real one).
        """
        host = "127.0.0.1" if self.ip in ("", "0.0.0.0", "::") else self.ip
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{self.gateway_prefix}/v1"

    @property
    def audit_log_path(self) -> Path:
        return self.data_dir / "gateway-audit.jsonl"

    @property
    def accounts_url(self) -> str:
        return f"sqlite:///{(self.data_dir / 'accounts.sqlite').resolve()}"

    @property
    def ledger_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'gateway.sqlite').resolve()}"

    @property
    def squad_db_url(self) -> str:
        """The squad's tables: beside the ledger's on SPORTHUB_DB_URL's server, else SQLite."""
        return self.db_url or f"sqlite:///{(self.data_dir / 'squad.sqlite').resolve()}"

    @property
    def squad_store_dir(self) -> Path:
        return self.data_dir.resolve() / "squad"

    @property
    def squad_prefix(self) -> str:
        return f"{self.base_url}services/squad"

    @property
    def squad_api_base(self) -> str:
        """Where user servers reach the squad API: through the hub's proxy, like the gateway."""
        return self.gateway_api_base.removesuffix(f"{self.gateway_prefix}/v1") + \
            f"{self.squad_prefix}/api"

    @property
    def hub_database_url(self) -> str:
        return self.hub_db_url or f"sqlite:///{(self.data_dir / 'jupyterhub.sqlite').resolve()}"

    def backends(self) -> list[Backend]:
        """The configured upstreams, or the embedded backend when none are configured."""
        if self.llm_backends:
            return self.llm_backends
        return [
            Backend(
                name=EMBEDDED_BACKEND,
                url=f"http://127.0.0.1:{self.embedded_llm_port}",
                api_key=SecretStr(self.secret("embedded-llm-key")),
                models=[EMBEDDED_MODEL],
                demo=True,  # 135M parameters: for trying SportHub, not for coaching
                # vLLM parses tool calls (hermes); llama-server's model is too small, so the
                # gateway drops tools for it
                supports_tools=self.embedded_backend == "vllm",
            )
        ]

    def secret(self, name: str) -> str:
        """A secret SportHub owns: generated once, then read back from a 0600 file."""
        path = self.secrets_dir / name
        if not path.exists():
            self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def admin_password_value(self) -> str:
        if self.admin_password is not None:
            return self.admin_password.get_secret_value()
        return self.secret("admin-password")

    def as_environment(self, secrets: Collection[str] = ()) -> dict[str, str]:
        """The explicitly set settings as ``SPORTHUB_*`` variables, to hand to a child process.

        Secrets are left out unless named in ``secrets`` (names from :data:`SECRET_SETTINGS`), so
        that each process holds only the ones it uses; without ``backend_keys`` the backends are
        listed without their keys, without ``oidc_client_secret`` sign-in settings are left out."""
        unknown = set(secrets) - SECRET_SETTINGS
        if unknown:
            raise ValueError(f"not secret settings: {sorted(unknown)}")
        env = {}
        for name, value in self.model_dump(exclude_unset=True, mode="json").items():
            if name in SECRET_SETTINGS and name not in secrets:
                continue
            if value is None and type(self).model_fields[name].default is None:
                # set, but to "unset" (Compose's "" for an unset variable): exported, it would be
                # "null", which the child cannot read back
                continue
            # sign-in is the hub's alone: without its secret, a process gets none of it (the
            # OIDC settings are only valid together)
            if (name == "auth" or name.startswith("oidc_")) and "oidc_client_secret" not in secrets:
                continue
            raw = getattr(self, name)
            if isinstance(raw, SecretStr):
                value = raw.get_secret_value()
            elif name == "llm_backends":
                keys = "backend_keys" in secrets
                value = [{**b.model_dump(mode="json"), "api_key": _reveal(b.api_key) if keys else None}
                         for b in raw]
            if name == "data_dir":
                value = str(Path(value).resolve())
            env[f"{ENV_PREFIX}{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        env.setdefault(f"{ENV_PREFIX}DATA_DIR", str(self.data_dir.resolve()))
        return env


# settings a child process gets only when it asks for them by name (database URLs may carry a
# password); "backend_keys" stands for the api_key of each of SPORTHUB_LLM_BACKENDS
SECRET_SETTINGS = frozenset({"admin_password", "oidc_client_secret", "gateway_metrics_token",
                             "hub_metrics_token", "db_url", "hub_db_url", "backend_keys"})


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret else None


# settings that were renamed: the old name is refused with the new one, never silently ignored
RENAMED = {"gateway_trusted_proxies": "trusted_proxies",
           "gateway_forwarded_hops": "forwarded_hops"}


def _refuse_renamed() -> None:
    toml_file = Path(os.environ.get(f"{ENV_PREFIX}CONFIG", "sporthub.toml"))
    try:
        in_toml = tomllib.loads(toml_file.read_text()) if toml_file.is_file() else {}
    except (OSError, tomllib.TOMLDecodeError):
        in_toml = {}  # the settings' own TOML source reports it
    for old, new in RENAMED.items():
        variable = f"{ENV_PREFIX}{old.upper()}"
        if variable in os.environ or f"{variable}_FILE" in os.environ or old in in_toml:
            raise SettingsError(f"{variable} is now {ENV_PREFIX}{new.upper()} (it applies to the "
                                "hub's sign-in as well as the gateway): rename it")


def load_settings(**overrides) -> Settings:
    """Read and validate the settings; a bad value raises :class:`SettingsError` naming it."""
    _refuse_renamed()
    try:
        return Settings(**overrides)
    except ValidationError as e:
        problems = []
        for error in e.errors():
            field = ".".join(str(part) for part in error["loc"])
            head, _, rest = field.partition(".")
            name = f"{ENV_PREFIX}{head.upper()}" + (f" ({rest})" if rest else "")
            # a check across settings has no single field; its message names them itself
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if head else message)
        raise SettingsError("invalid setting " + "; ".join(problems)) from None
