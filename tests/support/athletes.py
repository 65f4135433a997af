"""An athlete with recordings, made on a running stack the way people come to have one.

The admin invites them into their group (and adds them to any others); they set a password
through the link; their JupyterLab starts; their files reach their home through Jupyter's
contents API, as JupyterLab's upload does, so the person's own server writes them (in any
profile, as the person's user). The tests of the squad, the Coach and privacy start from this.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx

from tests.support.stack import create_account, set_password

PASSWORD = "relay-tempo-cadence-8"


def account(stack, name: str, *groups: str, password: str = PASSWORD) -> str:
    """A person invited into the first of ``groups`` (``athletes`` if none) and added to the
    others, who set ``password`` through their link; returns a token of theirs."""
    groups = groups or ("athletes",)
    url = create_account(stack.admin, name, groups[0])
    for group in groups[1:]:
        response = stack.admin.api("POST", f"/groups/{group}/users", json={"users": [name]})
        assert response.status_code == 200, response.text
    assert set_password(url, password).status_code == 302
    return stack.admin.new_token(name, note="tests")


def put_home_file(stack, user: str, token: str, path: str, data: bytes) -> None:
    """``data`` at ``path`` in the person's home, through their server's contents API."""
    response = httpx.put(f"{stack.url}/user/{user}/api/contents/{path}", timeout=60,
                         headers={"Authorization": f"token {token}"},
                         json={"type": "file", "format": "base64",
                               "content": base64.b64encode(data).decode()})
    assert response.status_code in (200, 201), response.text


def recordings(folder: Path, names: Iterable[str]) -> dict[str, bytes]:
    """Real recordings (the ``activities`` fixture's folder) as ``activities/<name>`` files."""
    return {f"activities/{name}": (folder / name).read_bytes() for name in names}


def athlete(stack, name: str, files: Mapping[str, bytes] | None = None, *,
            groups: tuple[str, ...] = ("athletes",), password: str = PASSWORD) -> str:
    """An :func:`account` with a running JupyterLab and ``files`` in its home (path in the home:
    content, e.g. :func:`recordings`); returns a token of theirs."""
    token = account(stack, name, *groups, password=password)
    stack.admin.start_server(name)
    for path, data in (files or {}).items():
        put_home_file(stack, name, token, path, data)
    return token
