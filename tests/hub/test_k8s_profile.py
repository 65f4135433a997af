"""The k8s profile: SportHub's hub configuration loaded the way the Zero to JupyterHub chart loads
it (tests/support/k8s_chart.py: the chart's mapping of deploy/k8s/values.yaml, then hub.extraConfig).

No Kubernetes cluster here: nothing is spawned in a pod, the Services are names, and the network
policies and volumes are checked only as files (test_deploy_k8s.py). What runs for real: the
chart's values merged as Helm merges them, JupyterHub's own config loader with KubeSpawner 7.1.0
(the chart's), and the gateway started with the environment the hub hands it, on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
import yaml

from sporthub.cli import make_secrets
from sporthub.hub.profiles import k8s
from sporthub.settings import SettingsError, load_settings
from tests.deploy.test_deploy_k8s import Z2JH, helm_merge, values
from tests.support.stack import REPO, SPORTHUB, free_port

SECRETS_MOUNT = "/etc/sporthub/secrets/"
DATA_MOUNT = "/srv/sporthub/data"
CHART_NAMES = {"hub": "hub", "hub-port": 8081, "proxy-api": "proxy-api", "proxy-api-port": 8001}
# hub.extraConfig's code reaches the hub through these: the chart's own config file
CONFIG_FILE = """import json, sys
sys.path.insert(0, {repo!r})
from tests.support.k8s_chart import apply_chart
c = get_config()
apply_chart(c, json.load(open({values!r})), json.load(open({names!r})))
"""
DUMP = """import json, sys
from traitlets.config.loader import PyFileConfigLoader
c = PyFileConfigLoader("jupyterhub_config.py", path=sys.argv[1]).load_config()

def plain(value):
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if callable(value):
        return "<callable>"
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)

print("CONFIG=" + json.dumps(plain(c)))
"""
# DUMP's loading for several hub pods in turn, each in its own folder and environment: the
# refusal's line (the last line of the traceback a hub pod's log would end with), or null
LOAD_EACH = """import json, os, sys, traceback
from traitlets.config.loader import PyFileConfigLoader
for pod in json.load(open(sys.argv[1])):
    os.environ.clear()
    os.environ.update(pod["env"])
    os.chdir(pod["folder"])
    try:
        PyFileConfigLoader("jupyterhub_config.py", path=pod["folder"]).load_config()
        refusal = None
    except Exception as e:
        refusal = traceback.format_exception_only(e)[-1].strip()
    print("REFUSAL=" + json.dumps(refusal), flush=True)
"""


def chart_values(**overrides) -> dict:
    """deploy/k8s/values.yaml over the chart's defaults, then the test's own changes."""
    merged = helm_merge(yaml.safe_load((Z2JH / "values.yaml").read_text()), values())
    return helm_merge(merged, overrides)


def hub_pod(tmp_path: Path, chart: dict, names: dict | None = None,
            env: dict | None = None) -> dict[str, str]:
    """The hub pod's files and environment in ``tmp_path``: the chart's values and names, the
    secrets `sporthub secrets` makes (mounted where values.yaml mounts them) and hub.extraEnv."""
    secrets = tmp_path / "secrets"
    if not secrets.exists():
        with contextlib.redirect_stdout(io.StringIO()):
            make_secrets(secrets)
    (tmp_path / "values.json").write_text(json.dumps(chart))
    names = {**CHART_NAMES, "cookie-secret": os.urandom(32).hex(), **(names or {})}
    (tmp_path / "names.json").write_text(json.dumps(names))
    (tmp_path / "jupyterhub_config.py").write_text(CONFIG_FILE.format(
        repo=str(REPO), values=str(tmp_path / "values.json"), names=str(tmp_path / "names.json")))
    pod_env = {k: v for k, v in os.environ.items() if not k.startswith("SPORTHUB_")}
    pod_env.update(PYTHONUNBUFFERED="1", HELM_RELEASE_NAME="sporthub", POD_NAMESPACE="sporthub")
    for name, value in chart["hub"]["extraEnv"].items():
        pod_env[name] = (value.replace(SECRETS_MOUNT, f"{secrets}/")
                         .replace(DATA_MOUNT, str(tmp_path / "data")))
    for name, value in (env or {}).items():
        if value is None:
            pod_env.pop(name, None)
        else:
            pod_env[name] = value
    return pod_env


def load_hub_config(tmp_path: Path, chart: dict | None = None,
                    **env: str | None) -> subprocess.CompletedProcess:
    pod_env = hub_pod(tmp_path, chart or chart_values(), env=env)
    return subprocess.run([sys.executable, "-c", DUMP, str(tmp_path)], env=pod_env, cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=120)


def hub_config(tmp_path: Path, chart: dict | None = None, **env: str) -> dict:
    done = load_hub_config(tmp_path, chart, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("CONFIG=")]
    return json.loads(line.removeprefix("CONFIG="))


def refusal(done: subprocess.CompletedProcess) -> str:
    """The hub's configuration stopped: the last line of the traceback is the message."""
    assert done.returncode != 0
    return done.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    return hub_config(tmp_path_factory.mktemp("k8s"))


def by_name(items: list[dict]) -> dict[str, dict]:
    return {item["name"]: item for item in items}


def test_the_gateway_and_the_usage_page_are_reached_through_the_hub_service(config):
    services = by_name(config["JupyterHub"]["services"])
    ports = {p["name"]: p["port"] for p in values()["hub"]["service"]["extraPorts"]}
    assert services["llm"]["url"] == f"http://hub:{ports['llm-gateway']}" == "http://hub:8091"
    assert services["usage"]["url"] == f"http://hub:{ports['usage']}" == "http://hub:8093"
    assert services["llm"]["command"] == [sys.executable, "-m", "sporthub.gateway"]
    assert services["usage"]["command"] == [sys.executable, "-m", "sporthub.usage"]
    for name in ("llm", "usage"):
        # what makes them listen on all of the pod's addresses (service_bind_ip), on those ports
        environment = services[name]["environment"]
        assert environment["SPORTHUB_PROFILE"] == "k8s"
        assert "SPORTHUB_GATEWAY_PORT" not in environment and "SPORTHUB_USAGE_PORT" not in environment
        assert environment["SPORTHUB_DB_URL"] == values()["hub"]["extraEnv"]["SPORTHUB_DB_URL"]
        assert environment["PGPASSFILE"].endswith("/secrets/pgpass")


def test_each_service_holds_only_its_own_secrets(config, tmp_path_factory):
    services = by_name(config["JupyterHub"]["services"])
    gateway, usage = services["llm"]["environment"], services["usage"]["environment"]
    key = (Path(gateway["SPORTHUB_DATA_DIR"]).parent / "secrets" / "vllm-api-key").read_text()
    backends = json.loads(gateway["SPORTHUB_LLM_BACKENDS"])
    assert [b["api_key"] for b in backends] == [key, key]
    assert gateway["SPORTHUB_GATEWAY_METRICS_TOKEN"]
    # the usage page: the backends without their keys, no metrics token, nobody's password
    assert [b["api_key"] for b in json.loads(usage["SPORTHUB_LLM_BACKENDS"])] == [None, None]
    assert key not in json.dumps(usage)
    for environment in (gateway, usage):
        assert not {"SPORTHUB_ADMIN_PASSWORD", "SPORTHUB_HUB_METRICS_TOKEN",
                    "SPORTHUB_OIDC_CLIENT_SECRET"} & environment.keys()
    assert "SPORTHUB_GATEWAY_METRICS_TOKEN" not in usage
    # Prometheus' hub token: a service of its own with read:metrics only
    assert services["prometheus"]["api_token"]
    [role] = [r for r in config["JupyterHub"]["load_roles"] if r["name"] == "prometheus"]
    assert role["scopes"] == ["read:metrics"]


def test_the_chart_culls_idle_servers_and_sporthub_adds_no_culler_of_its_own(config):
    services = by_name(config["JupyterHub"]["services"])
    assert set(services) == {"jupyterhub-idle-culler", "llm", "usage", "squad", "prometheus"}
    assert "--timeout=3600" in services["jupyterhub-idle-culler"]["command"]
    roles = by_name(config["JupyterHub"]["load_roles"])
    # the chart's culler keeps its role; SportHub's are added beside it
    assert set(roles) == {"jupyterhub-idle-culler", "llm-users", "sporthub-gateway",
                          "sporthub-usage", "squad-users", "sporthub-squad", "prometheus"}
    assert roles["jupyterhub-idle-culler"]["services"] == ["jupyterhub-idle-culler"]
    assert roles["llm-users"]["scopes"] == ["custom:llm:use"]
    assert roles["sporthub-gateway"]["services"] == ["llm"]
    assert "admin:users" not in roles["sporthub-gateway"]["scopes"]
    # the pages say when an idle server stops: the chart's cull.timeout
    assert config["JupyterHub"]["template_vars"]["sporthub_idle_seconds"] == 3600


def test_user_servers_reach_the_gateway_through_the_proxy_with_their_own_token(config):
    spawner = config["KubeSpawner"]
    # the chart's own KubeSpawner: no subclass; the profiles' one hook applies the group limits
    assert config["JupyterHub"]["spawner_class"] == "kubespawner.KubeSpawner"
    assert spawner["pre_spawn_hook"] == "<callable>"
    assert spawner["environment"] == {
        "OPENAI_API_BASE": "http://proxy-http:8000/services/llm/v1",
        "SQUAD_API_URL": "http://proxy-http:8000/services/squad/api",
        "LLM_GATEWAY_MODEL": "Qwen/Qwen3-32B-AWQ",
        # the athlete's first minutes, as in every profile: decided at each spawn
        "LLM_GATEWAY_DEMO": "0", "COACH_LANG": "<callable>", "COACH_LANDING": "<callable>"}
    assert "custom:llm:use" in config["Spawner"]["server_token_scopes"]
    assert "custom:squad:use" in config["Spawner"]["server_token_scopes"]
    # the chart's limits stay, as the defaults a group's user_mem_limit / user_cpu_limit overrides
    assert (spawner["mem_limit"], spawner["cpu_limit"]) == ("4G", 2)
    assert spawner["image"] == "registry.club.example/sporthub-singleuser:0.1.0"


def test_what_the_chart_owns_stays_the_charts(config):
    hub = config["JupyterHub"]
    assert hub["db_url"] == values()["hub"]["db"]["url"]
    assert hub["hub_connect_url"] == "http://hub:8081" and hub["hub_bind_url"] == "http://:8081"
    assert config["ConfigurableHTTPProxy"] == {"api_url": "http://proxy-api:8001",
                                               "should_start": False}
    for mine in ("ip", "port", "hub_ip", "hub_port", "pid_file", "cookie_secret_file"):
        assert mine not in hub
    assert hub["active_server_limit"] == 20 and hub["admin_access"] is False
    assert hub["authenticator_class"] == "sporthub.hub.auth.SportHubAuthenticator"


@pytest.mark.parametrize("name", sorted(k8s.CHART_OWNED))
def test_a_setting_the_chart_owns_is_refused_naming_the_chart_value(monkeypatch, tmp_path, name):
    for variable in [v for v in os.environ if v.startswith("SPORTHUB_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("SPORTHUB_PROFILE", "k8s")
    (tmp_path / "vllm-api-key").write_text("k")
    if name != "embedded_backend":  # beside SPORTHUB_LLM_BACKENDS the settings refuse it already
        monkeypatch.setenv("SPORTHUB_LLM_BACKENDS", values()["hub"]["extraEnv"]
                           ["SPORTHUB_LLM_BACKENDS"].replace(SECRETS_MOUNT, f"{tmp_path}/"))
    good = {"ip": "0.0.0.0", "port": "80", "hub_port": "8081", "proxy_api_port": "8001",
            "hub_db_url": "postgresql+psycopg://sporthub@sporthub-postgres/jupyterhub",
            "embedded_backend": "vllm", "embedded_llm_port": "8092",
            "local_user_prefix": "jupyter-", "singleuser_image": "x:1", "docker_network": "n",
            "docker_hub_host": "hub", "user_mem_limit": "2G", "user_cpu_limit": "1",
            "user_storage_limit": "10G", "idle_timeout_s": "3600"}
    monkeypatch.setenv(f"SPORTHUB_{name.upper()}", good[name])
    with pytest.raises(SettingsError) as e:
        k8s.check(load_settings())
    assert f"SPORTHUB_{name.upper()} ({k8s.CHART_OWNED[name]})" in str(e.value)
    assert "leaves these to the Zero to JupyterHub chart" in str(e.value)


def test_the_hub_pod_stops_at_a_refused_setting_with_its_message(tmp_path):
    done = load_hub_config(tmp_path, SPORTHUB_USER_MEM_LIMIT="8G", SPORTHUB_IP="0.0.0.0")
    message = refusal(done)
    assert message.startswith("sporthub.settings.SettingsError: SPORTHUB_PROFILE=k8s leaves "
                              "these to the Zero to JupyterHub chart")
    assert "SPORTHUB_IP (set proxy.service in values.yaml)" in message
    assert "SPORTHUB_USER_MEM_LIMIT (set singleuser.memory.limit in values.yaml)" in message


# chart values and settings that disagree, and what the refusal says
DISAGREEMENTS = [
    ({"singleuser": {"extraEnv": {"OPENAI_API_BASE": "http://proxy-public/llm/v1"}}}, {},
     ("singleuser.extraEnv.OPENAI_API_BASE=http://proxy-public/llm/v1: user servers reach the "
      "gateway through the proxy's in-cluster address, with the path /services/llm/v1")),
    ({"singleuser": {"extraEnv": {"OPENAI_API_BASE": "http://proxy-http:8000/services/llm/v1"}},
      "hub": {"baseUrl": "/club/"}}, {"SPORTHUB_BASE_URL": "/club/"},
     "with the path /club/services/llm/v1"),
    ({"hub": {"baseUrl": "/club/"}}, {},
     "SPORTHUB_BASE_URL=/ and the chart's hub.baseUrl=/club/ differ"),
    ({"cull": {"enabled": False}}, {}, "cull.enabled is false"),
    ({"hub": {"activeServerLimit": 5}}, {},
     "hub.activeServerLimit=5 and SPORTHUB_ACTIVE_SERVER_LIMIT=20 differ"),
    ({"hub": {"config": {"JupyterHub": {"authenticator_class": "github"}}}}, {},
     "hub.config.JupyterHub.authenticator_class=github: SPORTHUB_AUTH decides"),
    ({"hub": {"templatePaths": ["/srv/templates"]}}, {},
     "hub.templatePaths: SportHub sets JupyterHub.template_paths itself"),
    ({"singleuser": {"extraEnv": {"LLM_GATEWAY_MODEL": "other"}}}, {},
     "singleuser.extraEnv.LLM_GATEWAY_MODEL=other is not the first model"),
    ({}, {"SPORTHUB_LLM_BACKENDS": None}, "SPORTHUB_PROFILE=k8s needs SPORTHUB_LLM_BACKENDS"),
]


@pytest.fixture(scope="module")
def disagreements(tmp_path_factory) -> list[str]:
    """The refusal of each of DISAGREEMENTS: each hub pod's configuration loaded as the chart
    loads it, one after another in one process (a process each cost about a second of CPU)."""
    pods = []
    for chart, env, _ in DISAGREEMENTS:
        folder = tmp_path_factory.mktemp("disagree")
        pods.append({"folder": str(folder), "env": hub_pod(folder, chart_values(**chart), env=env)})
    (batch := tmp_path_factory.mktemp("batch") / "pods.json").write_text(json.dumps(pods))
    # started as the first pod (its environment and folder), so nothing of this one leaks in
    done = subprocess.run([sys.executable, "-c", LOAD_EACH, str(batch)], env=pods[0]["env"],
                          cwd=pods[0]["folder"], capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    refusals = [json.loads(line.removeprefix("REFUSAL=")) for line in done.stdout.splitlines()
                if line.startswith("REFUSAL=")]
    assert len(refusals) == len(DISAGREEMENTS), done.stdout[-3000:]
    return refusals


@pytest.mark.parametrize("case", range(len(DISAGREEMENTS)),
                         ids=[says[:40] for _, _, says in DISAGREEMENTS])
def test_a_chart_value_that_disagrees_with_sporthub_stops_the_start(disagreements, case):
    message = disagreements[case]
    says = DISAGREEMENTS[case][2]
    assert message and "SettingsError" in message and says in message, message


def test_the_base_url_moves_the_gateway_with_it(tmp_path):
    chart = chart_values(hub={"baseUrl": "/club/"}, singleuser={"extraEnv": {
        "OPENAI_API_BASE": "http://proxy-http:8000/club/services/llm/v1"}})
    config = hub_config(tmp_path, chart, SPORTHUB_BASE_URL="/club")
    gateway = by_name(config["JupyterHub"]["services"])["llm"]
    assert gateway["environment"]["SPORTHUB_BASE_URL"] == "/club/"
    assert config["JupyterHub"]["base_url"] == "/club/"


def test_a_later_hub_config_cannot_reach_the_profile_outside_the_chart(tmp_path):
    """jupyterhub_config.py of this repository (sporthub up's) with SPORTHUB_PROFILE=k8s: the
    chart's connect URL is missing, so the hub stops instead of running half configured."""
    env = hub_pod(tmp_path, chart_values())
    done = subprocess.run([sys.executable, "-c", DUMP, str(REPO)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=120)
    assert "this is not that configuration" in refusal(done)


@pytest.fixture
def ledger_database():
    """A fresh database on the test PostgreSQL, for the gateway's ledger."""
    name = f"sporthub_k8s_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def this_machines_address() -> str:
    """An address of this machine other than loopback, as the proxy pod's packets would come."""
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family.name == "AF_INET" and not a.address.startswith("127."):
                return a.address
    pytest.fail("this machine has no IPv4 address besides loopback")


@pytest.mark.stack
def test_the_gateway_starts_as_the_hub_starts_it_listening_on_all_addresses(tmp_path,
                                                                           ledger_database):
    """`python -m sporthub.gateway` with exactly the environment the k8s hub gives its service
    (plus what JupyterHub itself adds), its ledger on PostgreSQL: it listens on 0.0.0.0, answers
    from another address than loopback, and watches the vLLM replicas of values.yaml."""
    port = free_port()  # 8091 may be taken here by a local-profile hub of another test
    ledger = f"postgresql+psycopg://postgres@127.0.0.1:5432/{ledger_database}"
    config = hub_config(tmp_path, SPORTHUB_DB_URL=ledger, SPORTHUB_GATEWAY_PORT=str(port))
    service = by_name(config["JupyterHub"]["services"])["llm"]
    assert service["url"] == f"http://hub:{port}"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "VIRTUAL_ENV")}
    env.update(service["environment"])
    env.update(JUPYTERHUB_SERVICE_NAME="llm", JUPYTERHUB_SERVICE_URL=service["url"],
               JUPYTERHUB_SERVICE_PREFIX="/services/llm/",
               JUPYTERHUB_API_URL="http://127.0.0.1:8081/hub/api", JUPYTERHUB_API_TOKEN="x" * 32)
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        gateway = subprocess.Popen(service["command"], env=env, stdout=out, stderr=out,
                                   cwd=tmp_path, start_new_session=True)
    try:
        listening = []
        while not listening:
            assert gateway.poll() is None, log.read_text()[-3000:]
            listening = [c.laddr for c in psutil.Process(gateway.pid).net_connections("inet")
                         if c.status == psutil.CONN_LISTEN]
            time.sleep(0.2)  # a poll interval: the loop waits for the condition itself
        assert [(a.ip, a.port) for a in listening] == [("0.0.0.0", port)]
        base = f"http://{this_machines_address()}:{port}/services/llm"
        token = env["SPORTHUB_GATEWAY_METRICS_TOKEN"]
        metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert metrics.status_code == 200 and "sporthub" in metrics.text
        health = httpx.get(f"{base}/health").json()
        assert set(health["backends"]) == {"vllm-0", "vllm-1"}
        with psycopg.connect(f"host=127.0.0.1 dbname={ledger_database} user=postgres") as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert "llm_requests" in tables
    finally:
        gateway.terminate()
        gateway.wait(30)
    assert token not in log.read_text()


@pytest.mark.parametrize("command", ["up", "prepare", "users list", "backup x.tar.gz"])
def test_sporthub_commands_that_do_not_belong_in_the_hub_pod_say_so(tmp_path, command):
    env = hub_pod(tmp_path, chart_values())
    done = subprocess.run([str(SPORTHUB), *command.split()], env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith(f"sporthub: `sporthub {command.split()[0]}` with "
                                  "SPORTHUB_PROFILE=k8s: "), done.stderr
    assert not (tmp_path / "x.tar.gz").exists()


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: sporthub}}]
current-context: none
"""


def kube_spawner(config, tmp_path, monkeypatch, properties: dict, **chart_values):
    """KubeSpawner as the chart configures it, for a person in groups with these properties,
    after the hook as configure builds it from the chart's section, run as JupyterHub runs it.
    Its client needs a configuration to exist (nothing is sent: there is no cluster here)."""
    from kubespawner import KubeSpawner
    from traitlets.config import Config

    from sporthub.hub.profiles import k8s

    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    # read where the client looks for it (the variable KUBECONFIG is read once, at import)
    monkeypatch.setattr("kubernetes_asyncio.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION",
                        str(tmp_path / "kubeconfig"))
    groups = [types.SimpleNamespace(name=n, properties=p) for n, p in properties.items()]
    user = types.SimpleNamespace(name="ann", id=1, url="/user/ann/", groups=groups)
    chart = {k: v for k, v in config["KubeSpawner"].items() if k != "pre_spawn_hook"}
    chart.update(chart_values)
    spawner = KubeSpawner(_mock=True, user=user, config=Config(KubeSpawner=chart))
    k8s.limits_hook(chart)(spawner)
    return spawner


@pytest.mark.parametrize("properties, memory, cpu", [
    ({}, 4 * 1024**3, 2.0),  # the chart's singleuser.memory.limit and cpu.limit
    ({"scientists": {"user_mem_limit": "8G"}, "athletes": {"user_cpu_limit": 1}},
     8 * 1024**3, 1.0),
])
async def test_a_persons_pod_gets_the_limits_of_their_groups(config, tmp_path, monkeypatch,
                                                            properties, memory, cpu):
    """KubeSpawner's own pod manifest, from the chart's settings as loaded above. Its client
    needs a configuration to exist (nothing is sent: there is no cluster here)."""
    spawner = kube_spawner(config, tmp_path, monkeypatch, properties)
    [container] = (await spawner.get_pod_manifest()).spec.containers
    assert container.resources.limits == {"memory": memory, "cpu": cpu}
    assert container.resources.requests == {"memory": 1024**3, "cpu": 0.5}
    assert {e.name: e.value for e in container.env}["OPENAI_API_BASE"] == \
        "http://proxy-http:8000/services/llm/v1"
    assert container.image == "registry.club.example/sporthub-singleuser:0.1.0"


@pytest.mark.parametrize("properties, claim", [
    ({}, "10Gi"),  # the chart's singleuser.storage.capacity
    ({"athletes": {"user_storage_limit": "5G"}, "scientists": {"user_storage_limit": "20G"}},
     str(20 * 1024**3)),
])
async def test_a_persons_volume_claim_gets_the_size_of_their_groups(config, tmp_path, monkeypatch,
                                                                    properties, claim):
    """KubeSpawner's own claim manifest: the most generous group's size, else the chart's."""
    spawner = kube_spawner(config, tmp_path, monkeypatch, properties)
    assert spawner.storage_pvc_ensure  # singleuser.storage.type: dynamic
    assert spawner.get_pvc_manifest().spec.resources.requests == {"storage": claim}


async def test_a_group_size_without_a_volume_claim_stops_that_start(config, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="singleuser.storage.type: dynamic"):
        # storage_pvc_ensure False: what singleuser.storage.type: none sets
        kube_spawner(config, tmp_path, monkeypatch,
                     {"scientists": {"user_storage_limit": "20G"}}, storage_pvc_ensure=False)


@pytest.fixture
def databases():
    """Fresh databases on the test PostgreSQL: the hub's and the ledger's, as in values.yaml."""
    names = [f"sporthub_k8s_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    yield [f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}" for name in names]
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for(check, what: str, process: subprocess.Popen, log: Path, timeout: float = 300):
    """Poll until ``check()`` is true; the process dying or the deadline ends the wait."""
    deadline = time.monotonic() + timeout
    while not check():
        assert process.poll() is None, f"{what}: the process ended\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s\n{log.read_text()[-4000:]}"
        time.sleep(0.3)


def answers(url: str, *expected: int) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code in expected
    except httpx.HTTPError:
        return False


@pytest.mark.stack
def test_a_real_hub_on_the_charts_configuration_serves_the_gateway_through_the_proxy(
        tmp_path, databases):
    """JupyterHub itself on the chart's configuration and SportHub's hub.extraConfig, its
    database and the ledger on PostgreSQL, a real configurable-http-proxy standing for the proxy
    pod. The hub's Service name is this machine's non-loopback address, so the proxy's route to
    the gateway crosses more than loopback. Nobody's server is spawned (no cluster)."""
    hub_db, ledger = databases
    address = this_machines_address()
    ports = {name: free_port() for name in ("hub", "proxy", "proxy-api", "gateway", "usage",
                                            "squad")}
    tester = os.urandom(16).hex()
    chart = chart_values(hub={
        "db": {"url": hub_db},
        # one more service from the chart's values: SportHub's services join the chart's list
        "services": {"tester": {"apiToken": tester}},
        "loadRoles": {"tester": {"services": ["tester"],
                                 "scopes": ["admin:users", "groups", "tokens"]}}})
    names = {"hub": address, "hub-port": ports["hub"], "proxy-api": "127.0.0.1",
             "proxy-api-port": ports["proxy-api"]}
    proxy_token = os.urandom(16).hex()
    env = hub_pod(tmp_path, chart, names, env={
        "SPORTHUB_DB_URL": ledger, "SPORTHUB_GATEWAY_PORT": str(ports["gateway"]),
        "SPORTHUB_USAGE_PORT": str(ports["usage"]), "SPORTHUB_SQUAD_PORT": str(ports["squad"]),
        "CONFIGPROXY_AUTH_TOKEN": proxy_token,
        # the chart's culler runs `python3 -m jupyterhub_idle_culler`: this venv's
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    log, proxy_log = tmp_path / "hub.log", tmp_path / "proxy.log"
    hub_url = f"http://{address}:{ports['hub']}"
    with open(proxy_log, "wb") as out:
        proxy = subprocess.Popen(
            [str(REPO / "node_modules" / ".bin" / "configurable-http-proxy"),
             "--ip", "127.0.0.1", "--port", str(ports["proxy"]), "--api-ip", "127.0.0.1",
             "--api-port", str(ports["proxy-api"]), "--default-target", hub_url,
             "--error-target", f"{hub_url}/hub/error", "--log-level", "warn"],
            env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": proxy_token}, stdout=out, stderr=out,
            start_new_session=True)
    with open(log, "wb") as out:
        hub = subprocess.Popen([sys.executable, "-m", "jupyterhub", "--config",
                                str(tmp_path / "jupyterhub_config.py")], env=env, cwd=tmp_path,
                               stdout=out, stderr=out, start_new_session=True)
    public = f"http://127.0.0.1:{ports['proxy']}"
    try:
        wait_for(lambda: answers(f"{public}/hub/health", 200), "the hub", hub, log)
        # the route the hub added for the gateway leads to it (degraded: no vLLM here)
        wait_for(lambda: answers(f"{public}/services/llm/health", 200, 503), "the gateway",
                 hub, log)
        children = {" ".join(p.cmdline()): p for p in psutil.Process(hub.pid).children()}
        for module, port in (("sporthub.gateway", ports["gateway"]),
                             ("sporthub.usage", ports["usage"])):
            [process] = [p for cmd, p in children.items() if cmd.endswith(f"-m {module}")]
            wait_for(lambda p=process: any(c.status == psutil.CONN_LISTEN
                                           for c in p.net_connections("inet")), module, hub, log)
            assert [(c.laddr.ip, c.laddr.port) for c in process.net_connections("inet")
                    if c.status == psutil.CONN_LISTEN] == [("0.0.0.0", port)]
        assert [cmd for cmd in children if "jupyterhub_idle_culler" in cmd and
                "--timeout=3600" in cmd], children
        assert not [cmd for cmd in children if "sporthub.llm" in cmd.split()]

        api = httpx.Client(base_url=f"{public}/hub/api/",
                           headers={"Authorization": f"token {tester}"}, timeout=30)
        for name in ("ann", "bob"):
            assert api.post(f"users/{name}").status_code == 201
        assert api.post("groups/athletes/users", json={"users": ["ann"]}).status_code == 200
        tokens = {name: api.post(f"users/{name}/tokens", json={}).json()["token"]
                  for name in ("ann", "bob")}
        models = httpx.get(f"{public}/services/llm/v1/models",
                           headers={"Authorization": f"Bearer {tokens['ann']}"}, timeout=30)
        assert models.status_code == 200, models.text
        assert [m["id"] for m in models.json()["data"]] == ["Qwen/Qwen3-32B-AWQ"]
        # someone in no beta group has no custom:llm:use
        refused = httpx.get(f"{public}/services/llm/v1/models",
                            headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=30)
        assert refused.status_code == 403
        usage = httpx.get(f"{public}/services/usage/", timeout=30)
        assert usage.status_code == 302 and "/hub/api/oauth2/authorize" in usage.headers["location"]
    finally:
        hub.terminate()
        hub.wait(60)
        proxy.terminate()
        proxy.wait(30)
    with psycopg.connect(hub_db.replace("postgresql+psycopg", "postgresql")) as conn:
        assert conn.execute("SELECT name FROM services ORDER BY name").fetchall() == [
            ("jupyterhub-idle-culler",), ("llm",), ("prometheus",), ("squad",), ("tester",),
            ("usage",)]
    hub_log = log.read_text()
    backend_key = (tmp_path / "secrets" / "vllm-api-key").read_text()
    for secret in (tokens["ann"], tester, proxy_token, backend_key):
        assert secret not in hub_log


def test_oidc_sign_in_calls_back_to_the_public_url(tmp_path):
    """values.yaml names the public address (SPORTHUB_PUBLIC_URL, the chart's proxy.https.hosts):
    the callback is built on it, never on a request's headers (without it, the scheme comes from
    trusted proxies only: tests/accounts/test_public_url.py); the client secret stays in the hub."""
    config = hub_config(tmp_path, SPORTHUB_AUTH="oidc",
                        SPORTHUB_OIDC_AUTHORIZE_URL="https://id.club.example/authorize",
                        SPORTHUB_OIDC_TOKEN_URL="https://id.club.example/token",
                        SPORTHUB_OIDC_USERDATA_URL="https://id.club.example/userinfo",
                        SPORTHUB_OIDC_CLIENT_ID="sporthub",
                        SPORTHUB_OIDC_CLIENT_SECRET="client-secret-of-the-club")
    oidc = config["SportHubOIDCAuthenticator"]
    assert oidc["client_id"] == "sporthub"
    assert oidc["oauth_callback_url"] == "https://hub.club.example/hub/oauth_callback"
    assert config["JupyterHub"]["authenticator_class"] == \
        "sporthub.hub.auth.SportHubOIDCAuthenticator"
    for service in config["JupyterHub"]["services"]:
        assert "client-secret-of-the-club" not in json.dumps(service)
