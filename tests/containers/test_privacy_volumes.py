"""Export and erase of a person in the docker profile: their home is a named volume, read and
removed through the engine's API (sporthub.privacy), while their container runs."""

from __future__ import annotations

import json
import uuid
import zipfile

import docker
import pytest

from tests.containers.conftest import PASSWORD
from tests.hub.test_backup import save, sporthub
from tests.support.stack import HubClient, create_account, set_password

pytestmark = [pytest.mark.containers, pytest.mark.stack]


def test_a_persons_volume_is_exported_then_erased(dstack, client, people, tmp_path):
    admin = HubClient.admin(dstack)
    name = f"pri{uuid.uuid4().hex[:6]}"
    words = f"kneewords{uuid.uuid4().hex[:6]}"
    assert set_password(create_account(admin, name, "athletes"), PASSWORD).status_code == 302
    person = HubClient(dstack)
    assert person.login(name, PASSWORD).status_code == 302
    person.token_from_session(name)
    person.start_server(name, timeout=240)
    chat = json.dumps({"messages": [{"body": f"{words} chat"}]})
    save(person, name, "coach.chat", {"type": "file", "format": "text", "content": chat})
    volume = f"sporthub-home-{name}"
    assert client.volumes.get(volume)

    target = tmp_path / "export.zip"
    done = sporthub(dstack, "users", "export", name, str(target))
    assert done.returncode == 0, done.stderr
    members = zipfile.ZipFile(target)
    assert members.read("home/coach.chat").decode() == chat
    assert members.read("chats/coach.chat").decode() == chat

    done = sporthub(dstack, "users", "erase", name, "--yes")
    assert done.returncode == 0, done.stderr
    assert f"home volume {volume}" in done.stdout and "running server (stopped)" in done.stdout
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(volume)
    assert not client.containers.list(all=True, filters={"name": f"sporthub-{name}"})
    assert not [v for v in client.volumes.list() if name in v.name]
    assert admin.api("GET", f"/users/{name}").status_code == 404
    # the others' volumes stay
    for other in people.values():
        assert client.volumes.get(f"sporthub-home-{other.name}")
