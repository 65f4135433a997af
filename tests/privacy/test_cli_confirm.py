"""``sporthub users erase NAME`` asks for the name again before anything is erased."""

from __future__ import annotations

from typing import ClassVar

import httpx
import pytest

from sporthub import admin
from sporthub.settings import load_settings


class FakeHub:
    posts: ClassVar[list[str]] = []

    def __init__(self, settings):
        pass

    def request(self, method, path, **kwargs):
        if method == "POST":
            FakeHub.posts.append(path)
            return httpx.Response(200, json={"removed": ["account"], "kept": ["2 ledger rows"]})
        return httpx.Response(200, json={"name": "zoe"})


@pytest.fixture
def hub(monkeypatch, tmp_path):
    FakeHub.posts = []
    monkeypatch.setattr(admin, "Hub", FakeHub)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    return load_settings(data_dir=tmp_path)


def test_a_different_name_typed_erases_nothing(hub, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "zoe2")
    with pytest.raises(admin.AdminError, match="does not match"):
        admin.erase_person(hub, "zoe")
    assert FakeHub.posts == []


def test_the_same_name_typed_erases_and_says_what_stayed(hub, monkeypatch, capsys):
    monkeypatch.setattr("builtins.input", lambda prompt: "zoe")
    assert admin.erase_person(hub, "zoe") == 0
    assert FakeHub.posts == ["sporthub/people/zoe/erase"]
    out = capsys.readouterr().out
    assert "removed: account" in out and "kept:    2 ledger rows" in out


def test_without_a_terminal_it_needs_yes(hub, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(admin.AdminError, match="--yes"):
        admin.erase_person(hub, "zoe")
    assert admin.erase_person(hub, "zoe", yes=True) == 0
