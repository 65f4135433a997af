"""People's homes and the disk they are on: a size per person, and a full disk that stops no one else.

A home's size is the engine's volume option (Docker Engine ``size``, podman ``o=size=``), which
both engines honour only where their volumes are on XFS mounted with project quotas. This
machine's kernel has no quota support at all (``CONFIG_XFS_QUOTA`` unset: an XFS image mounts
with ``prjquota`` refused, "quota support not available in this kernel"; ext4's ``quota`` needs
``CONFIG_QFMT_V2``, also absent), so here each engine must refuse a size, and SportHub must stop
rather than start with homes silently unlimited. The full disk is real: a person's home volume on
a small filesystem of its own, filled from inside their container.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid

import docker
import pytest

from sporthub.hub.profiles import docker as profile
from sporthub.settings import SettingsError, load_settings
from tests.containers import kernel
from tests.containers.conftest import PASSWORD, record
from tests.support.stack import HubClient, create_account, set_password

pytestmark = [pytest.mark.containers, pytest.mark.stack]

# what each engine answers when asked for a size where its volumes have no project quota: the
# option was read as a size (an option it did not know would be refused in other words, or, for
# podman and Docker's spelling, accepted without effect)
NO_QUOTA = {"podman": "Filesystem does not support Project Quota",
            "docker": "quota size requested but no quota support"}


def volumes(client) -> set[str]:
    return {v.name for v in client.volumes.list()}


def test_an_engine_without_project_quotas_stops_a_start_with_a_home_size(
        engine, client, network, monkeypatch):
    """SPORTHUB_USER_STORAGE_LIMIT on an engine that cannot hold a volume to it: the docker
    profile's preparation (``sporthub up``, and the hub's configuration) stops, naming the setting
    and what to do, with the engine's own words; no volume is left behind."""
    monkeypatch.setenv("DOCKER_HOST", engine.docker_host)
    settings = load_settings(profile="docker", ip="0.0.0.0", docker_network=network,
                             user_storage_limit="1G",
                             docker_name_prefix=f"sporthub-test-{uuid.uuid4().hex[:6]}")
    before = volumes(client)
    with pytest.raises(SettingsError) as e:
        profile.prepare(settings)
    message = str(e.value)
    assert message.startswith("SPORTHUB_USER_STORAGE_LIMIT=1G: this engine cannot hold a volume "
                              "to a size")
    assert NO_QUOTA[engine.kind] in message
    assert "XFS mounted with the prjquota option" in message and "or unset it" in message
    assert volumes(client) == before


def test_a_groups_home_size_the_engine_cannot_hold_stops_that_start(dstack, engine, client,
                                                                   suffix):
    """No size in the settings, but the person's group gives one: their start stops with the
    reason in the hub's log, and no unlimited home is made in its place."""
    admin = HubClient.admin(dstack)
    group = f"sized{suffix}"
    assert admin.api("POST", f"/groups/{group}").status_code == 201
    assert admin.api("PUT", f"/groups/{group}/properties",
                     json={"user_storage_limit": "1G"}).status_code == 200
    name = f"siz{suffix}"
    assert set_password(create_account(admin, name, group), PASSWORD).status_code == 302
    home = profile.home_volume("sporthub", name)
    response = admin.api("POST", f"/users/{name}/server")
    said = f"{name}'s home ({home}) cannot be held to {1024**3} bytes"
    deadline = time.monotonic() + 120
    while said not in dstack.log():
        assert time.monotonic() < deadline, (response.status_code, dstack.log()[-4000:])
        time.sleep(0.5)
    # JupyterHub's "Unhandled error starting" line (its traceback ends with the same words)
    line = next(x for x in dstack.log().splitlines() if said in x)
    assert NO_QUOTA[engine.kind] in line and "user_storage_limit" in line and "prjquota" in line
    # the start failed: no server, no container, and no home made without the size
    while admin.api("GET", f"/users/{name}").json()["servers"]:
        assert time.monotonic() < deadline, "the failed start left a server behind"
        time.sleep(0.5)
    assert home not in volumes(client)
    assert not client.containers.list(all=True, filters={"name": f"sporthub-{name}"})


def mount_small_filesystem(image, mountpoint: str, size_mb: int) -> None:
    """A filesystem of its own for one home: ext4 in a file, no blocks kept back for root, its
    top folder the person's (UID 1000) and empty, so the engine copies the image's home in."""
    subprocess.run(["truncate", "-s", f"{size_mb}M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), mountpoint], check=True)
    os.rmdir(os.path.join(mountpoint, "lost+found"))
    os.chown(mountpoint, 1000, 1000)
    os.chmod(mountpoint, 0o755)


FILL_AND_ASK = """
import errno, json, os, urllib.request

def fill(path, chunk):
    # appends until the kernel refuses; returns its errno's name
    try:
        with open(path, "ab") as out:
            while True:
                out.write(b"\\0" * chunk)
                out.flush()
                os.fsync(out.fileno())
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

seen = {"error": fill("filler.bin", 2**20)}
# the last megabyte did not fit: the blocks left, one by one
seen["error_small"] = fill("filler.bin", 4096)
seen["written_mb"] = os.path.getsize("filler.bin") // 2**20
stats = os.statvfs(".")
seen["free_bytes"] = stats.f_bavail * stats.f_frsize
seen["one_more"] = fill("one-more.txt", 4096)
# the gateway, with this person's own token, while their disk is full
request = urllib.request.Request(
    os.environ["OPENAI_API_BASE"] + "/chat/completions",
    data=json.dumps({"model": os.environ.get("LLM_GATEWAY_MODEL", "smollm2-135m-instruct"),
                     "messages": [{"role": "user", "content": "Say hi"}],
                     "max_tokens": 8}).encode(),
    headers={"Authorization": "Bearer " + os.environ["JUPYTERHUB_API_TOKEN"],
             "Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=300) as answer:
    seen["gateway"] = answer.status
    seen["reply"] = json.load(answer)["choices"][0]["message"]["content"]
print(json.dumps(seen))
"""


def test_a_full_home_disk_stops_neither_the_hub_nor_the_ledger_nor_the_others(
        dstack, people, client, suffix, tmp_path):
    """A person's home volume on a disk of its own, filled from inside their container until the
    kernel says ENOSPC: with that disk full, their own request to the gateway is answered and
    charged in the ledger, the admin signs in anew, and another person's home takes writes.
    The hub's data directory (databases, secrets, the ledger) is on another disk than the homes'."""
    admin = HubClient.admin(dstack)
    name = f"ful{suffix}"
    assert set_password(create_account(admin, name, "athletes"), PASSWORD).status_code == 302
    home = client.volumes.create(profile.home_volume("sporthub", name))
    mountpoint = home.attrs["Mountpoint"]
    mount_small_filesystem(tmp_path / "home.ext4", mountpoint, size_mb=96)
    try:
        person = HubClient(dstack)
        assert person.login(name, PASSWORD).status_code == 302
        person.token_from_session(name)
        person.start_server(name, timeout=240)
        assert os.stat(mountpoint).st_dev != os.stat(dstack.data_dir).st_dev
        before = len(dstack.ledger_rows())
        started = time.monotonic()
        seen = json.loads(asyncio.run(kernel.run(dstack.url, name, person.token, FILL_AND_ASK,
                                                 timeout=600)))
        record("a home disk filled from inside, then a gateway answer", time.monotonic() - started)
        # the disk is full: the kernel refused the write, and the next one too
        assert seen["error"] == seen["error_small"] == seen["one_more"] == "ENOSPC", seen
        assert seen["free_bytes"] < 64 * 1024 and seen["written_mb"] > 32, seen
        assert seen["gateway"] == 200 and seen["reply"].strip(), seen
        # ... and the gateway charged it: the ledger is not on that disk
        rows = dstack.ledger_rows()[before:]
        assert [(r["user"], r["outcome"]) for r in rows] == [(name, "ok")]
        # the hub still signs people in and still starts nothing wrong: the admin, anew
        assert HubClient(dstack).login(dstack.admin_user, dstack.admin_password).status_code == 302
        assert admin.api("GET", f"/users/{name}").json()["servers"][""]["ready"]
        # the others' homes are on the engine's own volume storage, untouched by this disk
        wrote = asyncio.run(kernel.run(dstack.url, people["athlete"].name,
                                       people["athlete"].token,
                                       "open('after-full.txt', 'w').write('x' * 4096)\n"
                                       "print(len(open('after-full.txt').read()))"))
        assert wrote.strip() == "4096"
    finally:
        stop_server(admin, name)
        subprocess.run(["umount", mountpoint], check=False)
        try:
            client.volumes.get(home.name).remove(force=True)
        except docker.errors.NotFound:
            pass


def stop_server(admin: HubClient, name: str, timeout: float = 120) -> None:
    admin.api("DELETE", f"/users/{name}/server")
    deadline = time.monotonic() + timeout
    while admin.api("GET", f"/users/{name}").json()["servers"] and time.monotonic() < deadline:
        time.sleep(0.5)
