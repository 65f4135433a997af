"""The docker profile for real: each person's JupyterLab in a container of its own, isolated.

Everything "from inside" runs in the athlete's own kernel, driven through Jupyter's REST and
websocket API over the hub's proxy, as a person's notebook would.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.containers import kernel
from tests.containers.conftest import record
from tests.e2e.test_walking_skeleton import COACH, chat

pytestmark = [pytest.mark.containers, pytest.mark.stack]

HOME = "/home/jovyan"
PODMAN_DEFAULT_CAPS = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE",
                       "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def inside(stack, person, code: str, timeout: float = 120) -> str:
    return asyncio.run(kernel.run(stack.url, person.name, person.token, code, timeout))


def container(client, person):
    return client.containers.get(f"sporthub-{person.name}")


def hub_address(client, network: str) -> str:
    return client.networks.get(network).attrs["IPAM"]["Config"][0]["Gateway"]


def test_each_person_runs_in_a_container_of_their_own_as_uid_1000_without_privileges(
        dstack, people, client, image):
    athlete, scientist = container(client, people["athlete"]), container(client, people["scientist"])
    assert athlete.id != scientist.id
    for person, box in ((people["athlete"], athlete), (people["scientist"], scientist)):
        config, host = box.attrs["Config"], box.attrs["HostConfig"]
        assert box.status == "running"
        assert config["Image"].endswith(image)
        assert config["User"] == "1000:1000"
        assert host["Privileged"] is False
        assert "no-new-privileges" in " ".join(host["SecurityOpt"] or [])
        # Docker reports "ALL"; podman lists what it dropped of its default set, one by one
        dropped = {c.removeprefix("CAP_") for c in host["CapDrop"] or []}
        assert "ALL" in dropped or PODMAN_DEFAULT_CAPS <= dropped, dropped
        assert not host.get("CapAdd")
        # the home is the person's own named volume; nothing of the host is mounted
        mounts = [(m["Type"], m.get("Name"), m["Destination"]) for m in box.attrs["Mounts"]]
        assert mounts == [("volume", f"sporthub-home-{person.name}", HOME)], mounts
    seen = json.loads(inside(dstack, people["athlete"], """
import json, os
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\\t" in line)
home = os.stat(os.path.expanduser("~"))
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(),
                  "caps": [status[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")],
                  "no_new_privs": status["NoNewPrivs"].strip(), "home": os.path.expanduser("~"),
                  "home_owner": home.st_uid, "notebooks": sorted(os.listdir("notebooks"))}))
"""))
    assert (seen["uid"], seen["gid"]) == (1000, 1000)
    # no capability at all, not even in the bounding set: nothing can be regained
    assert [int(c, 16) for c in seen["caps"]] == [0, 0, 0, 0] and seen["no_new_privs"] == "1"
    # the classic "permission denied on the volume" cannot happen: the home belongs to UID 1000
    assert seen["home"] == HOME and seen["home_owner"] == 1000
    assert "05-ask-the-ai-coach.ipynb" in seen["notebooks"]


def test_from_inside_the_athletes_server_the_hub_and_the_others_are_out_of_reach(
        dstack, people, client, network):
    env = dstack.env
    backend_key = (dstack.data_dir / "secrets" / "embedded-llm-key").read_text().strip()
    hub_secrets = [p.read_text().strip() for p in (dstack.data_dir / "secrets").iterdir()]
    hub = hub_address(client, network)
    # B writes a marker into B's home; A must find it nowhere
    inside(dstack, people["scientist"], "open('scientist-private.txt', 'w').write('mine')")
    ports = {name: int(env[f"SPORTHUB_{name.upper()}"]) for name in
             ("embedded_llm_port", "gateway_port", "hub_port", "proxy_api_port", "usage_port")}
    ports["postgresql"] = 5432
    probe = f"""
import json, os, socket

def reach(host, port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "open"
    except OSError as e:
        return type(e).__name__
    finally:
        s.close()

found = []
for top, dirs, files in os.walk("/"):
    if top.startswith(("/proc", "/sys", "/dev")):
        dirs[:] = []
        continue
    found += [os.path.join(top, f) for f in files
              if f in ("scientist-private.txt", "jupyterhub_cookie_secret", "admin-password",
                       "proxy-token", "cli-api-token", "embedded-llm-key", "pseudonym-key",
                       "jupyterhub.sqlite",
                       "gateway.sqlite", "accounts.sqlite")]
environs = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            environs.append(open(f"/proc/{{pid}}/environ", "rb").read().decode(errors="replace"))
        except OSError:
            pass
ports = {ports!r}
print(json.dumps({{
    "hub_port": reach({hub!r}, {int(env["SPORTHUB_PORT"])}),
    "via_hub_address": {{n: reach({hub!r}, p) for n, p in ports.items()}},
    "via_loopback": {{n: reach("127.0.0.1", p) for n, p in ports.items()}},
    "found": found,
    "environ": dict(os.environ),
    "process_environs": environs,
    "mounts": open("/proc/mounts").read(),
    "data_dir_exists": os.path.exists({str(dstack.data_dir)!r}),
}}))
"""
    seen = json.loads(inside(dstack, people["athlete"], probe))
    # the one way out: the hub's public port at its address on the container network ...
    assert seen["hub_port"] == "open"
    # ... and nothing else of the hub's machine: no backend, gateway socket, hub API, proxy API,
    # usage page or PostgreSQL, neither at the hub's address nor on loopback
    assert all(v != "open" for v in seen["via_hub_address"].values()), seen["via_hub_address"]
    assert all(v != "open" for v in seen["via_loopback"].values()), seen["via_loopback"]
    # neither B's home nor the hub's data directory nor any of its secrets is visible
    assert seen["found"] == [] and not seen["data_dir_exists"]
    assert str(dstack.data_dir) not in seen["mounts"]
    environ = seen["environ"]
    keys = {k: v for k, v in environ.items() if k.endswith(("_API_KEY", "_KEY", "_SECRET"))}
    # the only key is the person's own hub token, which Jupyter AI sends to the gateway
    assert keys == {"OPENAI_API_KEY": environ["JUPYTERHUB_API_TOKEN"]}, sorted(keys)
    assert not any(k.startswith("SPORTHUB_") for k in environ)
    for secret in [backend_key, *hub_secrets]:
        assert all(secret not in text for text in seen["process_environs"])
    # Jupyter AI and the hub API are reached through the hub's address, not the host's loopback
    public = f"http://{hub}:{env['SPORTHUB_PORT']}"
    assert environ["OPENAI_API_BASE"] == f"{public}/services/llm/v1"
    assert environ["JUPYTERHUB_API_URL"].startswith(f"{public}/hub/api")


def test_memory_and_cpu_limits_are_applied_and_follow_the_groups(dstack, people, client):
    limits = {}
    for role, person in people.items():
        host = container(client, person).attrs["HostConfig"]
        cpus = host.get("NanoCpus") / 1e9 if host.get("NanoCpus") else (
            host["CpuQuota"] / host["CpuPeriod"])
        limits[role] = (host["Memory"], cpus)
    # the athlete gets the defaults (SPORTHUB_USER_MEM_LIMIT / _CPU_LIMIT); the scientists'
    # group properties give more
    assert limits == {"athlete": (1024**3, 1.0), "scientist": (2 * 1024**3, 1.5)}
    # and the kernel itself is held to it (cgroup v1 or v2)
    enforced = int(inside(dstack, people["athlete"], """
import os
for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    if os.path.exists(path):
        print(open(path).read().strip())
        break
"""))
    assert enforced == 1024**3


def test_the_coach_answers_from_inside_the_container_and_the_ledger_charges_the_athlete(
        dstack, people, client, network):
    athlete = people["athlete"]
    before = len(dstack.ledger_rows())
    replies = asyncio.run(chat(dstack, athlete.name, athlete.token,
                               "How should I pace a 10 km race?", persona=COACH,
                               chat_file="coach.chat"))
    assert len(replies) >= 2 and replies[-1]["body"].strip()
    rows = dstack.ledger_rows()[before:]
    assert [(r["user"], r["outcome"]) for r in rows] == [(athlete.name, "ok")]
    assert rows[0]["completion_tokens"] > 0
    # the request came from the athlete's container, over the container network
    ip = container(client, athlete).attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    assert rows[0]["client_ip"] == ip


# the heaviest test of the tier (a notebook's answers from the embedded model, minutes on a busy
# machine) and nothing of it is the engine's: the way from a container to the gateway is the
# chat's above, which runs on every engine
@pytest.mark.engines("podman")
def test_the_ai_coach_notebook_runs_inside_the_container_with_ai_magic(dstack, people):
    """The notebook people start from: sportlab, `%%ai coach` and a plain call, all through the
    gateway with the athlete's own token."""
    athlete = people["athlete"]
    before = len(dstack.ledger_rows())
    result = json.loads(inside(dstack, athlete, """
import json, subprocess
import nbformat
subprocess.run(["jupyter", "nbconvert", "--to", "notebook", "--execute", "--output",
                "/tmp/05-run.ipynb", "notebooks/05-ask-the-ai-coach.ipynb"],
               check=True, capture_output=True, timeout=600)
book = nbformat.read("/tmp/05-run.ipynb", as_version=4)
magic = next(c for c in book.cells if c.source.startswith("%%ai coach"))
shown = [o["data"].get("text/markdown", "") for o in magic.outputs
         if o["output_type"] in ("display_data", "execute_result")]
print(json.dumps({"magic": shown, "last": book.cells[-1].outputs[-1]["text"]}))
""", timeout=660))
    assert result["magic"] and result["magic"][0].strip()
    summary = json.loads(result["last"].strip().splitlines()[-1])
    assert summary["answer_chars"] > 0
    rows = dstack.ledger_rows()[before:]
    assert [(r["user"], r["outcome"]) for r in rows] == [(athlete.name, "ok")] * 2


def test_from_inside_the_hub_port_gives_no_more_than_the_persons_own_rights(
        dstack, people, client, network):
    """Reaching the hub's port is not reaching B's JupyterLab, nor the hub's admin API."""
    scientist = people["scientist"]
    public = f"http://{hub_address(client, network)}:{dstack.env['SPORTHUB_PORT']}"
    seen = json.loads(inside(dstack, people["athlete"], f"""
import json, os, urllib.request, urllib.error

def status(url):
    request = urllib.request.Request(url, headers={{
        "Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}})
    try:
        return urllib.request.urlopen(request, timeout=30).status
    except urllib.error.HTTPError as e:
        return e.code

print(json.dumps({{
    "others_server": status("{public}/user/{scientist.name}/api/contents"),
    "all_users": status("{public}/hub/api/users"),
    "proxy_routes": status("{public}/api/routes"),
}}))
"""))
    assert seen["others_server"] in (403, 404), seen
    assert seen["all_users"] == 403, seen
    assert seen["proxy_routes"] == 404, seen  # the proxy's API is not on its public port


def test_the_home_survives_stop_start_and_a_hub_restart_and_edits_are_never_overwritten(
        dstack, people, client):
    athlete, admin_name = people["athlete"], dstack.admin_user
    inside(dstack, athlete, """
open("training-log.txt", "w").write("5 km easy")
open("notebooks/05-ask-the-ai-coach.ipynb", "w").write("my own notes")
""")
    check = """
print(open("training-log.txt").read(), open("notebooks/05-ask-the-ai-coach.ipynb").read(), sep="|")
"""
    first_id = container(client, athlete).id
    response = athlete.api("DELETE", f"/users/{athlete.name}/server")
    assert response.status_code in (202, 204), response.text
    _wait_until_gone(client, athlete)
    assert client.volumes.get(f"sporthub-home-{athlete.name}")
    started = time.monotonic()
    athlete.start_server(athlete.name, timeout=240)
    record("spawn (athlete, restart)", time.monotonic() - started)
    assert container(client, athlete).id != first_id  # a new container, the same home
    assert inside(dstack, athlete, check).strip() == "5 km easy|my own notes"

    dstack.descendants = dstack.processes()
    assert dstack.stop() == [] and dstack.proc.returncode == 0, admin_name
    _wait_until_gone(client, athlete)  # the hub stops and removes the containers it started
    dstack.start()
    athlete.start_server(athlete.name, timeout=240)
    assert inside(dstack, athlete, check).strip() == "5 km easy|my own notes"


def _wait_until_gone(client, person, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.containers.list(all=True, filters={"name": f"sporthub-{person.name}"}):
        assert time.monotonic() < deadline, f"{person.name}'s container was not removed"
        time.sleep(0.5)
