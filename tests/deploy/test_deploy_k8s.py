"""deploy/k8s/ against Kubernetes' schemas (kubernetes-validate) and the JupyterHub chart's."""

from __future__ import annotations

import json
import subprocess
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from tests.support.stack import REPO, SPORTHUB

pytestmark = pytest.mark.deploy

K8S = REPO / "deploy" / "k8s"
Z2JH = REPO / "tests" / "data" / "z2jh"
KUBERNETES_VALIDATE = REPO / ".venv-deploy" / "bin" / "kubernetes-validate"
KUBERNETES_VERSION = "1.32.0"  # the oldest the chart (4.4) supports
HUB_PODS = {"app.kubernetes.io/name": "jupyterhub", "app.kubernetes.io/component": "hub"}


def manifests() -> list[dict]:
    return [d for name in ("vllm.yaml", "postgres.yaml", "hub-data.yaml")
            for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def values() -> dict:
    return yaml.safe_load((K8S / "values.yaml").read_text())


def helm_merge(defaults: dict, overrides: dict) -> dict:
    """Values as Helm sees them: ours deep-merged over the chart's defaults."""
    merged = dict(defaults)
    for key, value in overrides.items():
        both_maps = isinstance(value, dict) and isinstance(defaults.get(key), dict)
        merged[key] = helm_merge(defaults[key], value) if both_maps else value
    return merged


def kubernetes_validate(tmp_path, *resources: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "resources.yaml"
    path.write_text("---\n".join(yaml.safe_dump(r) for r in resources))
    return subprocess.run([str(KUBERNETES_VALIDATE), "-k", KUBERNETES_VERSION, "--strict",
                           str(path)], capture_output=True, text=True, check=False, timeout=120)


def test_manifests_validate_against_kubernetes_schemas(tmp_path):
    done = kubernetes_validate(tmp_path, *manifests())
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == len(manifests())


def test_kubernetes_validate_catches_a_wrong_field(tmp_path):
    """The check above can fail."""
    broken = manifests()[1]
    broken["spec"]["template"]["spec"]["containers"][0]["probe"] = {}
    assert kubernetes_validate(tmp_path, broken).returncode != 0


def test_values_validate_against_the_chart_schema():
    schema = json.loads((Z2JH / "values.schema.json").read_text())
    merged = helm_merge(yaml.safe_load((Z2JH / "values.yaml").read_text()), values())
    errors = [f"{list(e.path)}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(merged)]
    assert errors == []
    typo = helm_merge(merged, {"hub": {"extraPort": []}})
    assert list(jsonschema.Draft7Validator(schema).iter_errors(typo))


def test_kubernetes_objects_inside_the_values_validate(tmp_path):
    """What the chart renders from our values: the hub Service's ports, its network policy, and
    the hub pod's volumes and environment."""
    hub = values()["hub"]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hub"},
               "spec": {"selector": HUB_PODS, "ports": [
                   {"name": "hub", "port": 8081, "targetPort": 8081}, *hub["service"]["extraPorts"]]}}
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "hub"},
              "spec": {"podSelector": {"matchLabels": HUB_PODS}, "policyTypes": ["Ingress", "Egress"],
                       "ingress": hub["networkPolicy"]["ingress"],
                       "egress": hub["networkPolicy"]["egress"]}}
    env = [{"name": k, "value": v} if isinstance(v, str) else {"name": k, **v}
           for k, v in hub["extraEnv"].items()]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hub"},
           "spec": {"containers": [{"name": "hub", "image": f"{hub['image']['name']}:"
                                    f"{hub['image']['tag']}", "env": env,
                                    "volumeMounts": hub["extraVolumeMounts"]}],
                    "volumes": hub["extraVolumes"]}}
    proxy_policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": "proxy"},
                    "spec": {"podSelector": {"matchLabels": {**HUB_PODS,
                                                             "app.kubernetes.io/component": "proxy"}},
                             "policyTypes": ["Egress"],
                             "egress": values()["proxy"]["chp"]["networkPolicy"]["egress"]}}
    done = kubernetes_validate(tmp_path, service, policy, proxy_policy, pod)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == 4


def test_every_vllm_replica_is_a_backend_and_runs_as_the_gateway_expects():
    env = values()["hub"]["extraEnv"]
    backends = json.loads(env["SPORTHUB_LLM_BACKENDS"])
    deployments = [d for d in manifests() if d["kind"] == "Deployment"]
    services = {d["metadata"]["name"]: d for d in manifests() if d["kind"] == "Service"}
    assert len(backends) == len(deployments) >= 2
    for backend, deployment in zip(backends, deployments, strict=True):
        service = services[backend["url"].removeprefix("http://").split(":")[0]]
        pod = deployment["spec"]["template"]
        assert service["spec"]["selector"] == pod["metadata"]["labels"]
        [container] = pod["spec"]["containers"]
        args = dict(a.partition("=")[::2] for a in container["args"][1:])
        assert container["args"][0] in backend["models"]
        assert int(args["--max-num-seqs"]) == backend["max_concurrency"]
        assert int(env["SPORTHUB_LLM_MAX_CONCURRENCY"]) == backend["max_concurrency"]
        assert "--enable-auto-tool-choice" in args and args["--tool-call-parser"]
        assert "--api-key" not in args and "api_key" not in backend
        [key] = [e for e in container["env"] if e["name"] == "VLLM_API_KEY"]
        assert key["valueFrom"]["secretKeyRef"] == {"name": "sporthub-secrets",
                                                    "key": "vllm-api-key"}
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        shm = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"}
        [volume] = [v for v in pod["spec"]["volumes"] if v["name"] in shm]
        assert volume["emptyDir"]["medium"] == "Memory"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == "/health"
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_only_the_hub_may_connect_to_vllm_and_postgres():
    policies = {d["metadata"]["name"]: d for d in manifests() if d["kind"] == "NetworkPolicy"}
    for name in ("sporthub-vllm", "sporthub-postgres"):
        spec = policies[name]["spec"]
        assert spec["policyTypes"] == ["Ingress"]
        assert [p for rule in spec["ingress"] for p in rule["from"]] == [
            {"podSelector": {"matchLabels": HUB_PODS}}]
    labelled = {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
                for d in manifests() if d["kind"] in ("Deployment", "StatefulSet")}
    assert labelled == {"sporthub-vllm", "sporthub-postgres"}
    # the people's servers: no private addresses at all, so neither vLLM nor PostgreSQL
    assert values()["singleuser"]["networkPolicy"]["egressAllowRules"]["privateIPs"] is False


def test_the_values_hold_no_secret_and_the_secret_comes_from_sporthub_secrets(tmp_path):
    text = (K8S / "values.yaml").read_text()
    assert "password:" not in text.lower() and "secretToken" not in text
    assert "api_key\"" not in text
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    [generator] = kustomization["secretGenerator"]
    assert generator["name"] == "sporthub-secrets"
    done = subprocess.run([str(SPORTHUB), "secrets", str(tmp_path / "secrets")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    made = {p.name for p in (tmp_path / "secrets").iterdir()}
    listed = {f.removeprefix("secrets/") for f in generator["files"]}
    assert listed <= made
    mounted = values()["hub"]["extraEnv"]
    files = [v for k, v in mounted.items() if k.endswith("_FILE") or k == "PGPASSFILE"]
    files += [b["api_key_file"] for b in json.loads(mounted["SPORTHUB_LLM_BACKENDS"])]
    assert {f.rsplit("/", 1)[1] for f in files} <= listed
    # libpq finds the password only under the host name the URLs use
    hosts = {urlparse(url).hostname for url in (values()["hub"]["db"]["url"],
                                                mounted["SPORTHUB_DB_URL"])}
    pgpass = (tmp_path / "secrets" / "pgpass").read_text().splitlines()
    assert hosts <= {line.split(":")[0] for line in pgpass}


def test_the_hub_pods_data_directory_is_a_volume_of_its_own():
    """hub.db.type postgres gives the hub pod no volume: the password accounts and the audit log
    in SPORTHUB_DATA_DIR need the claim of hub-data.yaml."""
    hub = values()["hub"]
    [mount] = [m for m in hub["extraVolumeMounts"]
               if m["mountPath"] == hub["extraEnv"]["SPORTHUB_DATA_DIR"]]
    [volume] = [v for v in hub["extraVolumes"] if v["name"] == mount["name"]]
    [claim] = [d for d in manifests() if d["kind"] == "PersistentVolumeClaim"
               and d["metadata"]["name"] == volume["persistentVolumeClaim"]["claimName"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # one hub pod at a time holds it: the chart replaces the hub by Recreate
    assert yaml.safe_load((Z2JH / "values.yaml").read_text())["hub"]["deploymentStrategy"] == {
        "type": "Recreate"}


def test_idle_culling_and_the_user_image():
    v = values()
    assert v["cull"]["enabled"] is True and v["cull"]["timeout"] > 0
    assert v["singleuser"]["image"]["name"].endswith("sporthub-singleuser")
    assert v["hub"]["image"]["name"].endswith("sporthub-hub")
    assert v["hub"]["db"]["type"] == "postgres"
    assert v["hub"]["extraEnv"]["SPORTHUB_PROFILE"] == "k8s"


def test_the_gateway_and_usage_ports_agree_everywhere_the_proxy_needs_them():
    """The k8s profile's services listen on SPORTHUB_GATEWAY_PORT, SPORTHUB_USAGE_PORT and
    SPORTHUB_SQUAD_PORT (defaults 8091, 8093, 8094); the hub Service, the hub's ingress and the
    proxy's egress name them."""
    from sporthub.settings import Settings

    defaults = {Settings.model_fields["gateway_port"].default,
                Settings.model_fields["usage_port"].default,
                Settings.model_fields["squad_port"].default}
    v = values()
    assert not {"SPORTHUB_GATEWAY_PORT", "SPORTHUB_USAGE_PORT", "SPORTHUB_SQUAD_PORT"} & \
        v["hub"]["extraEnv"].keys()
    assert {p["port"] for p in v["hub"]["service"]["extraPorts"]} == defaults
    assert {p["targetPort"] for p in v["hub"]["service"]["extraPorts"]} == defaults
    [ingress] = v["hub"]["networkPolicy"]["ingress"]
    assert {p["port"] for p in ingress["ports"]} == defaults
    assert ingress["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == \
        "proxy"
    [egress] = v["proxy"]["chp"]["networkPolicy"]["egress"]
    assert {p["port"] for p in egress["ports"]} == defaults
    assert egress["to"] == [{"podSelector": {"matchLabels": HUB_PODS}}]
