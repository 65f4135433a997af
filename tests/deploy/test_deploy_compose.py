"""deploy/compose/ checked by the real tools (podman-compose, caddy, promtool) and by our own rules.

Tools come from ``make test-deploy``: Debian's caddy and prometheus, podman-compose in .venv-deploy.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.stack import REPO, SPORTHUB

pytestmark = pytest.mark.deploy

COMPOSE = REPO / "deploy" / "compose"
PODMAN_COMPOSE = REPO / ".venv-deploy" / "bin" / "podman-compose"
SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|SECRET|KEY)(_|$)")


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False,
                          timeout=120, **kwargs)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """deploy/compose/ as an admin prepares it: .env from the example, secrets generated."""
    directory = tmp_path_factory.mktemp("deploy") / "compose"
    shutil.copytree(COMPOSE, directory)
    shutil.copyfile(directory / ".env.example", directory / ".env")
    done = run(SPORTHUB, "secrets", directory / "secrets")
    assert done.returncode == 0, done.stderr
    return directory


@pytest.fixture(scope="module")
def config(project) -> dict:
    """The Compose file as podman-compose resolves it (variables from .env filled in)."""
    done = run(PODMAN_COMPOSE, "config", cwd=project)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def cpu_config(project) -> dict:
    """compose.yaml with compose.cpu.yaml on top (no GPU: llama-server instead of vLLM)."""
    done = run(PODMAN_COMPOSE, "-f", "compose.yaml", "-f", "compose.cpu.yaml", "config",
               cwd=project)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def networks_of(service: dict) -> set[str]:
    nets = service.get("networks", [])
    return set(nets if isinstance(nets, list) else nets.keys())


def members(config: dict, network: str) -> set[str]:
    return {name for name, s in config["services"].items() if network in networks_of(s)}


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def flags(service: dict) -> dict[str, str | None]:
    result = {}
    for arg in service["command"]:
        name, _, value = arg.partition("=")
        result[name] = value or None
    return result


def test_only_the_tls_front_publishes_ports_and_only_80_and_443(config):
    published = {name: s["ports"] for name, s in config["services"].items() if s.get("ports")}
    assert set(published) == {"caddy"}
    host_ports = {str(p).split(":")[-2] if ":" in str(p) else str(p) for p in published["caddy"]}
    assert host_ports == {"80", "443"}
    assert not any("network_mode" in s for s in config["services"].values())


def test_vllm_and_postgres_are_off_the_people_network(config):
    hub = config["services"]["hub"]
    user_net_name = environment(hub)["SPORTHUB_DOCKER_NETWORK"]
    [users] = [k for k, n in config["networks"].items() if (n or {}).get("name") == user_net_name]
    assert config["networks"][users]["internal"] is True
    assert members(config, users) == {"hub"}  # and the people's containers, started by the hub
    # the people's containers find the hub by its service name on their network
    assert environment(hub)["SPORTHUB_DOCKER_HUB_HOST"] == "hub"
    for backend in ("vllm", "postgres"):
        assert users not in networks_of(config["services"][backend])
    assert members(config, "llm") == {"hub", "vllm"}
    assert members(config, "db") == {"hub", "postgres"}
    for internal in ("llm", "db", "metrics"):
        assert config["networks"][internal]["internal"] is True
    # vLLM's other networks: Prometheus' (internal) and one of its own to fetch the model
    assert members(config, "egress") == {"vllm"}


def test_no_secret_is_inline(project, config):
    values = [p.read_text().strip() for p in (project / "secrets").iterdir()]
    rendered = yaml.safe_dump(config)
    for text in (rendered, (COMPOSE / "compose.yaml").read_text(),
                 (COMPOSE / ".env.example").read_text()):
        assert not any(v and v in text for v in values)
    for name, service in config["services"].items():
        for variable in environment(service):
            if SECRET_NAME.search(variable):
                assert variable.endswith("FILE"), f"{name}: {variable} holds a secret inline"
    backends = json.loads(environment(config["services"]["hub"])["SPORTHUB_LLM_BACKENDS"])
    assert all("api_key" not in b and b["api_key_file"] for b in backends)
    for secret in config["secrets"].values():
        assert Path(secret["file"]).parent.name == "secrets"
    # the hub reads the same directory as its <data>/secrets; nobody else gets all of it
    for name, service in config["services"].items():
        mounts = [str(v) for v in service.get("volumes", [])]
        whole = [m for m in mounts if re.search(r"(^|/)secrets:", m)]
        assert (name == "hub") == bool(whole), name


def test_vllm_runs_as_the_gateway_expects(config):
    vllm, hub = config["services"]["vllm"], config["services"]["hub"]
    image, _, tag = vllm["image"].rpartition(":")
    assert image.endswith("vllm/vllm-openai") and re.fullmatch(r"v\d+\.\d+\.\d+", tag)
    args = flags(vllm)
    concurrency = environment(hub)["SPORTHUB_LLM_MAX_CONCURRENCY"]
    [backend] = json.loads(environment(hub)["SPORTHUB_LLM_BACKENDS"])
    assert args["--max-num-seqs"] == concurrency == str(backend["max_concurrency"])
    assert backend["url"] == "http://vllm:8000" and args["--port"] == "8000"
    assert backend["models"] == [vllm["command"][0]] and backend["supports_tools"] is True
    assert "--enable-auto-tool-choice" in args and args["--tool-call-parser"]
    assert int(args["--max-model-len"]) >= 16384
    assert 0 < float(args["--gpu-memory-utilization"]) < 1
    assert "--api-key" not in args and "VLLM_API_KEY" not in environment(vllm)
    assert "/run/secrets/vllm-api-key" in " ".join(vllm["entrypoint"])
    assert vllm["secrets"] == ["vllm-api-key"]
    [gpu] = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "/health" in " ".join(vllm["healthcheck"]["test"])
    assert _seconds(vllm["healthcheck"]["start_period"]) >= 600
    assert any(str(v).endswith(":/root/.cache/huggingface") for v in vllm["volumes"])


def test_the_cpu_override_keeps_every_isolation_rule(project, cpu_config):
    """compose.cpu.yaml swaps the model server and nothing else: same ports, networks, secrets."""
    config = cpu_config
    services = config["services"]
    assert "vllm" not in services  # behind the `gpu` profile, never enabled with this file
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"caddy"}
    assert members(config, "llm") == {"hub", "llm"}
    assert members(config, "db") == {"hub", "postgres"}
    user_net_name = environment(services["hub"])["SPORTHUB_DOCKER_NETWORK"]
    [users] = [k for k, n in config["networks"].items() if (n or {}).get("name") == user_net_name]
    assert members(config, users) == {"hub"}
    llm = services["llm"]
    # no way out: the model is inside the image
    assert networks_of(llm) == {"llm", "metrics"}
    assert llm["image"].startswith("localhost/sporthub-llm:") and "build" in llm
    # llama-server's flags come as `--flag value` (it refuses `--flag=value`)
    command = [str(a) for a in llm["command"]]
    args = {a: (command[i + 1] if i + 1 < len(command) and not command[i + 1].startswith("--")
                else None) for i, a in enumerate(command) if a.startswith("--")}
    assert not any("=" in a for a in args)
    [backend] = json.loads(environment(services["hub"])["SPORTHUB_LLM_BACKENDS"])
    assert backend["url"] == f"http://llm:{args['--port']}"
    assert backend["models"] == [args["--alias"]] and backend["supports_tools"] is False
    assert args["--parallel"] == str(backend["max_concurrency"]) == \
        environment(services["hub"])["SPORTHUB_LLM_MAX_CONCURRENCY"]
    assert "--metrics" in args and "--api-key" not in args
    # keys from secret files only; Prometheus gets a key of its own, never the gateway's
    assert "LLAMA_API_KEY" not in environment(llm)
    assert set(llm["secrets"]) == {"vllm-api-key", "llm-metrics-key"}
    assert "vllm-api-key" not in services["prometheus"]["secrets"]
    assert "llm-metrics-key" in services["prometheus"]["secrets"]
    values = [p.read_text().strip() for p in (project / "secrets").iterdir()]
    rendered = yaml.safe_dump(config) + (COMPOSE / "compose.cpu.yaml").read_text()
    assert not any(v and v in rendered for v in values)
    for secret in config["secrets"].values():
        assert Path(secret["file"]).parent.name == "secrets"


def test_the_cpu_prometheus_config_scrapes_the_model_with_its_own_key(project, tmp_path):
    cpu = yaml.safe_load((project / "prometheus/prometheus.cpu.yml").read_text())
    gpu = yaml.safe_load((project / "prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cpu["scrape_configs"]}
    assert jobs["llm"]["static_configs"][0]["targets"] == ["llm:8080"]
    assert jobs["llm"]["authorization"]["credentials_file"] == "/run/secrets/llm-metrics-key"
    # the rest is prometheus.yml's, job for job
    others = [j for j in gpu["scrape_configs"] if j["job_name"] != "vllm"]
    assert [j for j in cpu["scrape_configs"] if j["job_name"] != "llm"] == others
    assert {k: v for k, v in cpu.items() if k != "scrape_configs"} == \
        {k: v for k, v in gpu.items() if k != "scrape_configs"}
    text = (project / "prometheus/prometheus.cpu.yml").read_text().replace(
        "/run/secrets/", f"{project}/secrets/").replace(
        "/etc/prometheus/rules/", f"{project}/prometheus/rules/")
    (tmp_path / "prometheus.yml").write_text(text)
    done = run("promtool", "check", "config", tmp_path / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    # the scrape-target alert covers the model's job too
    rules = (project / "prometheus/rules/sporthub.yml").read_text()
    assert re.search(r'up\{job=~"[^"]*\bllm\b[^"]*"\}', rules)


def test_postgres_is_the_hub_database_and_the_ledger(config):
    hub, pg = environment(config["services"]["hub"]), config["services"]["postgres"]
    assert hub["SPORTHUB_HUB_DB_URL"].startswith("postgresql+psycopg://sporthub@postgres:5432/")
    assert hub["SPORTHUB_DB_URL"].startswith("postgresql+psycopg://sporthub@postgres:5432/")
    assert hub["SPORTHUB_HUB_DB_URL"] != hub["SPORTHUB_DB_URL"]  # each has its alembic_version
    assert environment(pg)["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres-password"
    assert "pg_isready" in pg["healthcheck"]["test"]
    assert config["services"]["hub"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    ledger_db = hub["SPORTHUB_DB_URL"].rsplit("/", 1)[1]
    assert f"CREATE DATABASE {ledger_db} " in (COMPOSE / "postgres/initdb/10-ledger.sql").read_text()


def test_every_image_is_pinned(config):
    for name, service in config["services"].items():
        image = service["image"]
        tag = image.rpartition(":")[2]
        if image.startswith("localhost/"):
            assert "build" in service, name  # our own, built from images/
        else:
            assert tag not in ("latest", image) and re.search(r"\d", tag), f"{name}: {image}"


def test_env_example_explains_every_variable(project):
    compose = (COMPOSE / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", compose))
    lines = (COMPOSE / ".env.example").read_text().splitlines()
    documented = {}
    for i, line in enumerate(lines):
        if re.match(r"[A-Z0-9_]+=", line):
            documented[line.split("=", 1)[0]] = lines[i - 1].startswith("#")
    assert set(documented) == used
    assert [v for v, ok in documented.items() if not ok] == [], "each needs its own comment"


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub.club.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("mode", ["acme", "internal", "provided"])
def test_caddyfile_validates_in_each_tls_mode(project, tmp_path, mode):
    tls = {"acme": "admin@club.example", "internal": "internal",
           "provided": " ".join(str(p) for p in _certificate(tmp_path))}[mode]
    done = run("caddy", "validate", "--adapter", "caddyfile", "--config",
               project / "caddy" / "Caddyfile",
               env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                    "SPORTHUB_DOMAIN": "hub.club.example", "SPORTHUB_TLS": tls})
    assert done.returncode == 0 and "Valid configuration" in done.stdout + done.stderr, \
        done.stderr[-2000:]


def test_caddy_refuses_a_missing_certificate(project, tmp_path):
    """The check above can fail: a provided certificate that is not there is an error."""
    done = run("caddy", "validate", "--adapter", "caddyfile", "--config",
               project / "caddy" / "Caddyfile",
               env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                    "SPORTHUB_DOMAIN": "hub.club.example",
                    "SPORTHUB_TLS": f"{tmp_path}/none.pem {tmp_path}/none-key.pem"})
    assert done.returncode != 0


def test_caddyfile_sends_hsts_hides_metrics_and_serves_grafana_under_a_path(project, config):
    adapted = run("caddy", "adapt", "--adapter", "caddyfile", "--config",
                  project / "caddy" / "Caddyfile",
                  env={"PATH": "/usr/bin:/bin", "SPORTHUB_DOMAIN": "hub.club.example",
                       "SPORTHUB_TLS": "internal"})
    assert adapted.returncode == 0, adapted.stderr
    text = adapted.stdout
    assert "Strict-Transport-Security" in text and "max-age=31536000" in text
    assert '"/hub/metrics"' in text and '"/services/llm/metrics"' in text
    assert '"/grafana/*"' in text and "grafana:3000" in text and "hub:8000" in text
    assert '"flush_interval":-1' in text
    grafana = environment(config["services"]["grafana"])
    assert grafana["GF_SERVER_ROOT_URL"] == "https://hub.club.example/grafana/"
    assert grafana["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana-admin-password"


def test_prometheus_config_and_rules_pass_promtool(project, tmp_path):
    config = (project / "prometheus" / "prometheus.yml").read_text()
    # the container's paths, pointed at this copy: promtool checks that the files exist
    config = config.replace("/run/secrets/", f"{project}/secrets/").replace(
        "/etc/prometheus/rules/", f"{project}/prometheus/rules/")
    (tmp_path / "prometheus.yml").write_text(config)
    done = run("promtool", "check", "config", tmp_path / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "rule files found" in done.stdout
    rules = run("promtool", "check", "rules", *sorted((project / "prometheus/rules").iterdir()))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    alerts = {r["alert"] for g in yaml.safe_load(
        (project / "prometheus/rules/sporthub.yml").read_text())["groups"] for r in g["rules"]}
    assert {"LLMBackendDown", "QueueWaitP95OverTarget", "BudgetExhaustionSpike",
            "DiskFillingUp"} <= alerts


def test_prometheus_scrapes_hub_gateway_and_vllm_with_their_tokens(project):
    scrape = yaml.safe_load((project / "prometheus/prometheus.yml").read_text())["scrape_configs"]
    jobs = {j["job_name"]: j for j in scrape}
    assert jobs["hub"]["metrics_path"] == "/hub/metrics"
    assert jobs["hub"]["authorization"]["credentials_file"] == "/run/secrets/hub-metrics-token"
    assert jobs["gateway"]["metrics_path"] == "/services/llm/metrics"
    assert jobs["gateway"]["authorization"]["credentials_file"] == \
        "/run/secrets/gateway-metrics-token"
    assert jobs["vllm"]["static_configs"][0]["targets"] == ["vllm:8000"]


def test_grafana_datasource_matches_the_dashboard(project):
    sources = yaml.safe_load(
        (project / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    dashboard = json.loads((project / "grafana/dashboards/sporthub.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {sources[0]["uid"]}
    provider = yaml.safe_load(
        (project / "grafana/provisioning/dashboards/sporthub.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def _seconds(duration: str | int) -> float:
    if isinstance(duration, int | float):
        return duration
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


def test_the_database_and_the_hubs_data_can_leave_the_homes_disk(project, config):
    """People's home volumes are in the engine's volume directory: PostgreSQL's files and the
    hub's data may be folders elsewhere (.env), so that homes filling their disk stop neither;
    the default keeps the named volumes of earlier installations. A home size reaches the hub,
    empty (no limit) unless set."""
    def mounts(config: dict, service: str) -> list[str]:
        return [str(v) for v in config["services"][service]["volumes"]]

    assert "postgres-data:/var/lib/postgresql/data" in mounts(config, "postgres")
    assert "hub-data:/srv/sporthub/data" in mounts(config, "hub")
    assert environment(config["services"]["hub"])["SPORTHUB_USER_STORAGE_LIMIT"] == ""
    env = project / ".env"
    default = env.read_text()
    try:
        env.write_text(default + "SPORTHUB_POSTGRES_DATA=/srv/sporthub/postgres\n"
                       "SPORTHUB_HUB_DATA=/srv/sporthub/hub\nSPORTHUB_USER_STORAGE_LIMIT=20G\n")
        done = run(PODMAN_COMPOSE, "config", cwd=project)
        assert done.returncode == 0, done.stderr
        moved = yaml.safe_load(done.stdout)
    finally:
        env.write_text(default)
    assert "/srv/sporthub/postgres:/var/lib/postgresql/data" in mounts(moved, "postgres")
    assert "/srv/sporthub/hub:/srv/sporthub/data" in mounts(moved, "hub")
    assert environment(moved["services"]["hub"])["SPORTHUB_USER_STORAGE_LIMIT"] == "20G"
