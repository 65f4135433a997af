"""Issue 17, item 15: an installation moving from the local profile to the docker profile keeps
people's files: `sporthub users move-homes` copies each local home into the person's volume.

The local profile's side is what it leaves on disk (the hub's database naming the people, each
person's system user and 0700 home, as root); the docker side is the real engine and user image
of this tier. Before the command, a person's first container started with an empty home.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import uuid

import pytest
from jupyterhub import orm

from sporthub.hub.localusers import ensure_system_user, system_username
from tests.support.stack import SPORTHUB, remove_system_users

pytestmark = [pytest.mark.containers,
              pytest.mark.skipif(os.geteuid() != 0, reason="system users need root")]


def volume_files(client, image: str, volume: str) -> dict[str, tuple[int, int, bytes]]:
    """The volume's files and folders as the engine archives them: path -> (uid, mode, content);
    the volume's top folder is ""."""
    helper = client.containers.create(image, volumes={volume: {"bind": "/v", "mode": "ro"}},
                                      network_disabled=True)
    try:
        chunks, _ = helper.get_archive("/v")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            # the first part of a member's name is the folder's: "v" on Docker, "" on podman
            # ("/season/plan.md"); Docker's mode keeps the file type (0o100640), podman's not
            return {(m.name.split("/", 1)[1] if "/" in m.name else ""): (
                        m.uid, stat.S_IMODE(m.mode), tar.extractfile(m).read() if m.isreg() else b"")
                    for m in tar if m.isreg() or m.isdir()}
    finally:
        helper.remove(force=True)


@pytest.fixture
def local_installation(tmp_path):
    """What the local profile left: the hub's database and two people's homes."""
    prefix = f"m{uuid.uuid4().hex[:4]}-"
    data = tmp_path / "data"
    data.mkdir()
    db = orm.new_session_factory(f"sqlite:///{data / 'jupyterhub.sqlite'}")()
    for name in ("olga", "petr"):
        db.add(orm.User(name=name))
    db.commit()
    db.close()
    users = {name: ensure_system_user(system_username(name, prefix), name)
             for name in ("olga", "petr")}
    olga = users["olga"]
    os.makedirs(f"{olga.pw_dir}/season", exist_ok=True)
    with open(f"{olga.pw_dir}/season/plan.md", "w") as f:
        f.write("4x8 min threshold\n")
    os.chmod(f"{olga.pw_dir}/season/plan.md", 0o640)
    os.symlink("/etc/shadow", f"{olga.pw_dir}/shadow-link")  # kept a link, never followed
    for path in (f"{olga.pw_dir}/season", f"{olga.pw_dir}/season/plan.md"):
        os.lchown(path, olga.pw_uid, olga.pw_gid)
    yield data, prefix
    remove_system_users(prefix)


def test_move_homes_copies_each_local_home_into_its_volume_owned_by_uid_1000(
        local_installation, engine, client, image, suffix):
    data, prefix = local_installation
    names = f"sporthub-mv{suffix}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPORTHUB_")}
    env.update(SPORTHUB_PROFILE="docker", SPORTHUB_DATA_DIR=str(data),
               SPORTHUB_LOCAL_USER_PREFIX=prefix, SPORTHUB_SINGLEUSER_IMAGE=image,
               SPORTHUB_DOCKER_NAME_PREFIX=names, DOCKER_HOST=engine.docker_host)
    move = [str(SPORTHUB), "users", "move-homes"]
    try:
        done = subprocess.run(move, env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert f"olga: home copied into the volume {names}-home-olga" in done.stdout
        files = volume_files(client, image, f"{names}-home-olga")
        assert files["season/plan.md"] == (1000, 0o640, b"4x8 min threshold\n")
        # the home itself is the person's too, as it was (0700), or they could not create a
        # file in it (Docker Engine's upload leaves the top folder root's)
        assert files[""][:2] == (1000, 0o700) and files["season"][0] == 1000
        assert all(uid == 1000 for uid, _, _ in files.values())
        # the link is not followed: /etc/shadow's root line is in no file ("root:" alone is,
        # in the skeleton's .bashrc: "${debian_chroot:-}")
        with open("/etc/shadow", "rb") as f:
            shadow_root = f.readline()
        assert "shadow-link" not in files and not any(shadow_root in c
                                                      for _, _, c in files.values())
        # a second run would merge into volumes that have files: refused, nothing written
        again = subprocess.run(move, env=env, capture_output=True, text=True, timeout=600,
                               check=False)
        assert again.returncode == 1 and "is not empty" in again.stderr
    finally:
        for volume in client.volumes.list(filters={"name": names}):
            volume.remove(force=True)
