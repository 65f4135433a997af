"""Backup and restore of the docker profile: the people's home volumes, through the engine's API.

The archive is taken from the running stack of this tier (its athlete and scientist have their
servers open) and restored into a fresh installation on the same engine, with a name prefix of
its own, so its volumes and containers stand beside the original's.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import stat
import tarfile
import time

import pytest

from sporthub import backup
from sporthub.settings import load_settings
from tests.containers import kernel
from tests.containers.conftest import PASSWORD, record
from tests.hub.test_backup import NOTEBOOK, chat_file, contents, save, sporthub
from tests.support.stack import HubClient, make_stack, started

pytestmark = [pytest.mark.containers, pytest.mark.stack]

SAMPLE = "season.bin"
SAMPLE_MB = 32


def inside(stack, person, code: str) -> str:
    return asyncio.run(kernel.run(stack.url, person.name, person.token, code, 240))


def file_in(box, path: str) -> tuple[tarfile.TarInfo, bytes]:
    """A file of a running container, as the engine archives it (owner, mode, content)."""
    chunks, _ = box.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = next(m for m in tar if m.isreg())
        return member, tar.extractfile(member).read()


@pytest.fixture(scope="module")
def saved(dstack, people) -> dict:
    """Each person's notebook and Coach chat, saved through their own JupyterLab; the athlete
    also has a 32 MB file of their own, mode 0640, written by their kernel."""
    state = {}
    for person in people.values():
        save(person, person.name, "coach.chat", {"type": "file", "format": "text",
                                                 "content": chat_file(person.name)})
        save(person, person.name, "training.ipynb", {"type": "notebook", "format": "json",
                                                     "content": NOTEBOOK})
        state[person.name] = contents(person, person.name, "coach.chat").json()["content"]
    athlete = people["athlete"]
    state["sample_sha256"] = inside(dstack, athlete, f"""
import hashlib, os
data = os.urandom({SAMPLE_MB} << 20)
with open({SAMPLE!r}, "wb") as f:
    f.write(data)
os.chmod({SAMPLE!r}, 0o640)
print(hashlib.sha256(data).hexdigest())
""").strip()
    return state


@pytest.fixture(scope="module")
def archive(dstack, saved, tmp_path_factory):
    path = tmp_path_factory.mktemp("docker-archives") / "sporthub.tar.gz"
    began = time.monotonic()
    done = sporthub(dstack, "backup", str(path))
    record("backup of the docker stack (CLI)", time.monotonic() - began)
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="module")
def target(tmp_path_factory, engine, client, image, network, suffix):
    """A fresh installation on the same engine: its own data directory and name prefix."""
    prefix = f"sporthub-r{suffix}"
    stack = make_stack(tmp_path_factory.mktemp("restored"), profile="docker", ip="0.0.0.0",
                       singleuser_image=image, docker_network=network,
                       docker_name_prefix=prefix, user_mem_limit="1G", user_cpu_limit="1.0")
    stack.env["DOCKER_HOST"] = engine.docker_host
    stack.prefix = prefix
    yield stack
    for box in client.containers.list(all=True, filters={"name": prefix}):
        box.remove(force=True)
    for volume in client.volumes.list(filters={"name": prefix}):
        volume.remove(force=True)


def test_the_archive_holds_each_persons_volume_with_owner_and_modes(archive, people, saved):
    manifest = backup.manifest_of(archive)
    assert manifest["profile"] == "docker"
    names = [p.name for p in people.values()]
    assert set(manifest["homes"]) >= set(names)
    assert manifest["home_volumes"][names[0]] == f"sporthub-home-{names[0]}"
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar}
    athlete = people["athlete"].name
    for name in names:
        for path in (f"homes/{name}", f"homes/{name}/coach.chat", f"homes/{name}/training.ipynb"):
            assert members[path].uid == 1000, path
    sample = members[f"homes/{athlete}/{SAMPLE}"]
    assert (sample.size, sample.mode, sample.uid) == (SAMPLE_MB << 20, 0o640, 1000)
    assert members[f"homes/{athlete}"].isdir()


def test_restored_into_a_fresh_installation_each_person_finds_their_files(
        archive, target, people, saved, client):
    done = sporthub(target, "restore", str(archive))
    assert done.returncode == 0, done.stderr
    with started(target):
        for person in people.values():
            name = person.name
            assert client.volumes.get(f"{target.prefix}-home-{name}")
            restored = HubClient(target)
            restored.name = name
            assert restored.login(name, PASSWORD).status_code == 302
            restored.token_from_session(name)
            restored.start_server(name, timeout=240)
            notebook = contents(restored, name, "training.ipynb")
            assert notebook.status_code == 200, notebook.text
            assert notebook.json()["content"]["cells"][0]["source"] == "# Threshold test"
            assert contents(restored, name, "coach.chat").json()["content"] == saved[name]
            box = client.containers.get(f"{target.prefix}-{name}")
            mounts = [(m.get("Name"), m["Destination"]) for m in box.attrs["Mounts"]]
            assert mounts == [(f"{target.prefix}-home-{name}", "/home/jovyan")]
            member, _ = file_in(box, "/home/jovyan/coach.chat")
            assert member.uid == 1000
            if person is people["athlete"]:
                member, data = file_in(box, f"/home/jovyan/{SAMPLE}")
                # (Docker's archive keeps the file type in the mode, podman's does not)
                assert (member.uid, stat.S_IMODE(member.mode)) == (1000, 0o640)
                assert hashlib.sha256(data).hexdigest() == saved["sample_sha256"]
                # and the person can work in the restored home: it is theirs (UID 1000)
                written = inside(target, restored, "open('after.txt', 'w').write('ok'); "
                                                   "import os; print(os.stat('.').st_uid)")
                assert written.strip() == "1000"


def test_restore_refuses_a_volume_that_has_files(archive, target, tmp_path):
    """The volumes the previous test filled are there: a second restore with the same prefix
    stops before writing anything."""
    again = make_stack(tmp_path, profile="docker", ip="0.0.0.0", docker_name_prefix=target.prefix,
                       singleuser_image=target.env["SPORTHUB_SINGLEUSER_IMAGE"],
                       docker_network=target.env["SPORTHUB_DOCKER_NETWORK"])
    again.env["DOCKER_HOST"] = target.env["DOCKER_HOST"]
    done = sporthub(again, "restore", str(archive))
    assert done.returncode == 1 and "is not empty" in done.stderr, done.stderr
    assert list(again.data_dir.iterdir()) == []


def test_volume_archive_speed(dstack, people, saved, engine, tmp_path, monkeypatch):
    """Measured, not asserted: the athlete's volume streamed through the engine's API."""
    monkeypatch.setenv("DOCKER_HOST", engine.docker_host)
    settings = load_settings(data_dir=dstack.data_dir, profile="docker",
                             singleuser_image=dstack.env["SPORTHUB_SINGLEUSER_IMAGE"])
    volumes = backup.Volumes(settings)
    name = people["athlete"].name
    began = time.monotonic()
    with tarfile.open(tmp_path / "volume.tar", mode="w") as tar:
        volumes.archive(volumes.volume(name), tar, f"homes/{name}")
    seconds = time.monotonic() - began
    size = (tmp_path / "volume.tar").stat().st_size
    assert size > SAMPLE_MB << 20
    record(f"volume archive, {size / 1e6:.0f} MB uncompressed ({size / 1e6 / seconds:.1f} MB/s)",
           seconds)
    print(json.dumps({"volume_archive_mb_per_s": size / 1e6 / seconds}))


def test_no_volume_no_home(dstack, engine, monkeypatch):
    """People whose volume does not exist (never started, or another prefix) have no home."""
    monkeypatch.setenv("DOCKER_HOST", engine.docker_host)
    settings = load_settings(data_dir=dstack.data_dir, profile="docker",
                             singleuser_image=dstack.env["SPORTHUB_SINGLEUSER_IMAGE"],
                             docker_name_prefix="sporthub-nobody-here")
    assert backup.hub_user_names(settings)  # the hub knows people ...
    assert backup.Volumes(settings).homes() == {}  # ... none has a volume of this prefix


def test_a_helper_reads_a_volume_as_it_is(dstack, engine, monkeypatch):
    """An empty volume counts as empty and one with a file does not, on both engines (the SDK's
    ``containers.run`` returned no output at all for podman's k8s-file logs), and a command that
    fails in the helper is a BackupError that says so, with no helper left behind."""
    monkeypatch.setenv("DOCKER_HOST", engine.docker_host)
    settings = load_settings(data_dir=dstack.data_dir, profile="docker",
                             singleuser_image=dstack.env["SPORTHUB_SINGLEUSER_IMAGE"],
                             docker_name_prefix="sporthub-helper-check")
    volumes = backup.Volumes(settings)
    name = volumes.volume("nobody")
    volumes.client.volumes.create(name)
    try:
        assert volumes.is_empty(name)
        volumes.run_in(name, ["touch", f"{backup.MOUNT}/a-file"], read_only=False,
                       capabilities=())
        assert not volumes.is_empty(name)
        with pytest.raises(backup.BackupError, match=r"exit status 2\): .*No such file"):
            volumes.run_in(name, ["ls", f"{backup.MOUNT}/missing"], read_only=True,
                           capabilities=("DAC_READ_SEARCH",))
        helpers = volumes.client.containers.list(
            all=True, filters={"label": f"{backup.HELPER_LABEL}=backup"})
        assert [c.name for c in helpers if c.name.startswith(name)] == []
    finally:
        volumes.client.volumes.get(name).remove(force=True)
