"""Secrets as files: `sporthub secrets`, SPORTHUB_<NAME>_FILE and a backend's api_key_file."""

from __future__ import annotations

import json
import subprocess

import pytest

from sporthub.cli import STACK_SECRETS
from sporthub.hub.localusers import harden_data_dir
from sporthub.settings import SettingsError, load_settings
from tests.support.stack import SPORTHUB


def make_secrets(directory) -> subprocess.CompletedProcess:
    return subprocess.run([str(SPORTHUB), "secrets", str(directory)], capture_output=True,
                          text=True, check=False)


def test_secrets_are_made_once_with_their_modes_and_never_printed(tmp_path):
    done = make_secrets(tmp_path / "secrets")
    assert done.returncode == 0, done.stderr
    directory = tmp_path / "secrets"
    assert directory.stat().st_mode & 0o777 == 0o700
    values = {}
    for name, mode in STACK_SECRETS.items():
        path = directory / name
        assert path.stat().st_mode & 0o777 == mode, name
        values[name] = path.read_text()
        assert len(values[name]) >= 40 and "\n" not in values[name]
        assert values[name] not in done.stdout + done.stderr
    assert len(set(values.values())) == len(values)
    pgpass = (directory / "pgpass").read_text()
    # the PostgreSQL of Compose (service postgres) and of deploy/k8s (Service sporthub-postgres)
    assert pgpass.splitlines() == [f"{host}:5432:*:sporthub:{values['postgres-password']}"
                                   for host in ("postgres", "sporthub-postgres")]
    assert (directory / "pgpass").stat().st_mode & 0o777 == 0o600
    # a second run keeps every file as it is (a running stack depends on them)
    assert make_secrets(directory).returncode == 0
    assert {n: (directory / n).read_text() for n in STACK_SECRETS} == values


def test_the_docker_hub_keeps_the_stack_secrets_readable_where_they_must_be(tmp_path):
    """The hub mounts the stack's secrets as <data>/secrets and hardens its data directory at
    every start: Prometheus (nobody), Grafana and PostgreSQL must still read theirs after it."""
    data = tmp_path / "data"
    assert make_secrets(data / "secrets").returncode == 0
    own = data / "secrets" / "jupyterhub_cookie_secret"  # one the hub writes for itself
    own.write_text("x")
    own.chmod(0o644)
    harden_data_dir(data, stack_secrets=True)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (data / "secrets").iterdir()}
    assert modes == {**STACK_SECRETS, "pgpass": 0o600, own.name: 0o600}
    assert (data / "secrets").stat().st_mode & 0o777 == 0o700
    # the local profile keeps nothing readable by others
    harden_data_dir(data)
    assert {p.stat().st_mode & 0o077 for p in (data / "secrets").iterdir()} == {0}


def test_a_setting_is_read_from_the_file_its_FILE_variable_names(tmp_path, monkeypatch):
    (tmp_path / "token").write_text("metrics-token-from-a-file\n")
    monkeypatch.setenv("SPORTHUB_GATEWAY_METRICS_TOKEN_FILE", str(tmp_path / "token"))
    (tmp_path / "groups.json").write_text('{"coaches": {"llm_tokens_per_day": 7}}')
    monkeypatch.setenv("SPORTHUB_LLM_GROUPS_FILE", str(tmp_path / "groups.json"))
    settings = load_settings(data_dir=tmp_path)
    assert settings.gateway_metrics_token.get_secret_value() == "metrics-token-from-a-file"
    assert settings.llm_groups["coaches"].llm_tokens_per_day == 7
    # handed on as a plain value to the process that asks for it (the gateway), to no other
    env = settings.as_environment({"gateway_metrics_token"})
    assert env["SPORTHUB_GATEWAY_METRICS_TOKEN"] == "metrics-token-from-a-file"
    assert "SPORTHUB_GATEWAY_METRICS_TOKEN" not in settings.as_environment()


def test_an_unreadable_FILE_stops_the_start_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SPORTHUB_HUB_METRICS_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="SPORTHUB_HUB_METRICS_TOKEN_FILE"):
        load_settings(data_dir=tmp_path)


def test_a_backend_key_is_read_from_its_file(tmp_path, monkeypatch):
    (tmp_path / "vllm-api-key").write_text("the-backend-key")
    backend = {"name": "gpu", "url": "http://vllm:8000", "models": ["m"],
               "api_key_file": str(tmp_path / "vllm-api-key")}
    monkeypatch.setenv("SPORTHUB_LLM_BACKENDS", json.dumps([backend]))
    settings = load_settings(data_dir=tmp_path)
    [gpu] = settings.backends()
    assert gpu.api_key.get_secret_value() == "the-backend-key"
    # the gateway, a child process, gets the key itself and reads it back the same
    child = json.loads(settings.as_environment({"backend_keys"})["SPORTHUB_LLM_BACKENDS"])
    assert child[0]["api_key"] == "the-backend-key" and child[0]["api_key_file"] is None
    monkeypatch.setenv("SPORTHUB_LLM_BACKENDS", json.dumps(child))
    assert load_settings(data_dir=tmp_path).backends()[0].api_key.get_secret_value() == \
        "the-backend-key"


@pytest.mark.parametrize("change, message", [
    ({"api_key_file": "/nonexistent/key"}, "api_key_file /nonexistent/key"),
    ({"api_key_file": "KEYFILE", "api_key": "inline"}, "not both"),
])
def test_a_bad_backend_key_file_names_the_setting(tmp_path, monkeypatch, change, message):
    (tmp_path / "key").write_text("k")
    backend = {"name": "gpu", "url": "http://vllm:8000", "models": ["m"],
               **{k: (str(tmp_path / "key") if v == "KEYFILE" else v) for k, v in change.items()}}
    monkeypatch.setenv("SPORTHUB_LLM_BACKENDS", json.dumps([backend]))
    with pytest.raises(SettingsError, match="SPORTHUB_LLM_BACKENDS") as raised:
        load_settings(data_dir=tmp_path)
    assert message in str(raised.value)
