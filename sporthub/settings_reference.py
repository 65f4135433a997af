"""docs/settings.md, generated from the settings model: ``python -m sporthub.settings_reference``.

Each setting is declared once, in :mod:`sporthub.settings`, with its type, default and description
(the model's ``Field``). The reference the admin reads is printed from there, so it cannot drift
from what the start accepts: ``tests/hub/test_settings_reference.py`` fails when docs/settings.md
differs from this module's output (``make settings-reference`` writes it again).
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from pathlib import Path

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sporthub.settings import ENV_PREFIX, Backend, GroupPolicy, Settings

DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"

# the reference's sections, in the order an admin meets them; every setting is in exactly one
GROUPS: list[tuple[str, list[str]]] = [
    ("Where the hub runs", ["profile", "ip", "port", "base_url", "public_url", "data_dir", "admin_user",
                            "admin_password"]),
    ("Sign-in and accounts", ["auth", "max_accounts", "invite_ttl_hours", "login_max_failures",
                              "login_lockout_minutes", "trusted_proxies", "forwarded_hops"]),
    ("Signing in with OpenID Connect (`SPORTHUB_AUTH=oidc`)", [
        "oidc_authorize_url", "oidc_token_url", "oidc_userdata_url", "oidc_client_id",
        "oidc_client_secret", "oidc_username_claim", "oidc_scopes", "oidc_groups_claim",
        "oidc_group_map", "oidc_allowed_groups", "oidc_admin_groups"]),
    ("Capacity", ["active_server_limit", "idle_timeout_s"]),
    ("The language model and its gateway", [
        "llm_backends", "embedded_backend", "llm_max_concurrency", "llm_max_running_per_user",
        "llm_max_queued_per_user", "llm_queue_timeout_s", "llm_stall_timeout_s",
        "llm_request_timeout_s", "llm_client_write_timeout_s", "llm_max_tokens",
        "llm_max_prompt_chars", "llm_max_answer_bytes", "llm_initial_service_s",
        "llm_health_interval_s", "gateway_auth_cache_s", "gateway_audit_prompts",
        "audit_retention_days"]),
    ("Budgets and priority", ["llm_tokens_per_day", "llm_groups"]),
    ("Databases and metrics", ["db_url", "hub_db_url", "gateway_metrics_token",
                               "hub_metrics_token"]),
    ("People's servers: the `local` and `docker` profiles", [
        "local_user_prefix", "singleuser_image", "docker_network", "docker_hub_host",
        "docker_name_prefix", "user_mem_limit", "user_cpu_limit", "user_storage_limit"]),
    ("The squad: athletes sharing with the club's staff", [
        "squad_max_file_bytes", "squad_max_files", "squad_max_total_bytes",
        "squad_sync_interval_s"]),
    ("Internal ports (all on 127.0.0.1)", ["hub_port", "proxy_api_port", "gateway_port",
                                           "embedded_llm_port", "usage_port", "squad_port"]),
]

INTRO = """\
Every setting is an environment variable `SPORTHUB_<NAME>`, or a line in `sporthub.toml` in the
working directory (another file: `SPORTHUB_CONFIG=/path/to/file.toml`). A bad value stops the start
with a message that names the setting. `SPORTHUB_<NAME>_FILE=/path` reads a setting from a file
instead (how container secrets arrive), and a backend's key can be `"api_key_file": "/path"`.
Settings a profile would ignore are refused there, with a message naming what decides instead
(the `k8s` profile's list is in [Kubernetes](production.md#growing-beyond-one-server-kubernetes)).
"""

BACKENDS = """\
A production backend (vLLM on the GPU, started with `--api-key` and tool calling enabled):

```bash
export SPORTHUB_LLM_BACKENDS='[{"name": "gpu", "url": "http://127.0.0.1:8100",
  "api_key": "<the key vLLM was started with>", "models": ["Qwen/Qwen2.5-7B-Instruct"],
  "max_concurrency": 16, "supports_tools": true}]'
```

Only the gateway ever holds a backend's key; users authenticate with their own hub tokens.
Messages with image, audio or file parts are refused (400 `media_not_supported`) unless every
backend serving the model has `"accepts_media": true` (a vision or audio model), and even then
only inline data (`data:` URLs, base64 audio, file data): a link is never passed on, since the
model server would fetch it from inside the club's network.
"""


def type_name(annotation) -> str:
    """A field's type as an admin reads it: `integer`, `list of text`, `one of a, b`."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"map of {type_name(args[0])} to {type_name(args[1])}"
    names = {str: "text", int: "integer", float: "number", bool: "true/false", Path: "path",
             SecretStr: "secret text"}
    if annotation in names:
        return names[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {Backend: "backend", GroupPolicy: "group limits"}.get(annotation,
                                                                     annotation.__name__)
    raise TypeError(f"no wording for the type {annotation!r}: add it to type_name")


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        value = {k: v.model_dump(mode="json", exclude_none=True) if isinstance(v, BaseModel) else v
                 for k, v in value.items()}
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, (list, dict)) and value == []:
        return "empty"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{text}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(fields: dict[str, FieldInfo], names: list[str], variable) -> list[str]:
    rows = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    for name in names:
        field = fields[name]
        if not field.description:
            raise ValueError(f"{variable(name)} has no description: give its Field one")
        rows.append(f"| `{variable(name)}` | {cell(type_name(field.annotation))} | "
                    f"{cell(default_text(field))} | {cell(field.description)} |")
    return rows


def render() -> str:
    """The whole of docs/settings.md."""
    fields = Settings.model_fields
    grouped = [name for _, names in GROUPS for name in names]
    twice = sorted({n for n in grouped if grouped.count(n) > 1})
    missing = sorted(set(fields) - set(grouped))
    unknown = sorted(set(grouped) - set(fields))
    if twice or missing or unknown:
        raise ValueError(f"sporthub.settings_reference.GROUPS: put every setting in one group "
                         f"(not in one: {missing}, in two: {twice}, no such setting: {unknown})")
    lines = ["# Settings", "",
             ("<!-- generated by `make settings-reference` (python -m sporthub.settings_reference)"
              " from sporthub/settings.py: edit the descriptions there -->"), "", INTRO.rstrip()]
    for title, names in GROUPS:
        lines += ["", f"## {title}", ""]
        lines += table(fields, names, lambda n: f"{ENV_PREFIX}{n.upper()}")
    lines += ["", "## Backends", "", "Each entry of `SPORTHUB_LLM_BACKENDS`:", ""]
    lines += table(Backend.model_fields, list(Backend.model_fields), lambda n: n)
    lines += ["", BACKENDS.rstrip(), "", "## Group limits", "",
              "Each entry of `SPORTHUB_LLM_GROUPS`, and the hub group properties of the same names:",
              ""]
    lines += table(GroupPolicy.model_fields, list(GroupPolicy.model_fields), lambda n: n)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {DOCS_FILE} instead of printing")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOCS_FILE.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
