"""Where an athlete lands and in which language (no stack: the files and rules themselves)."""

from __future__ import annotations

import json

import pytest

from sporthub_coach import landing, language


@pytest.mark.parametrize("cookie, accept, expected", [
    (None, "ru-RU,ru;q=0.9,en-US;q=0.8", "ru"),
    (None, "en-US,en;q=0.9,ru;q=0.8", "en"),
    ("en", "ru-RU,ru;q=0.9", "en"),          # the hub page's switch wins over the browser
    ("ru", "en-US", "ru"),
    (None, "de-DE,de;q=0.9,ru;q=0.5", "ru"),  # the first language SportHub speaks
    (None, None, "en"),
    ("xx", "fr", "en"),
])
def test_the_language_follows_the_hub_then_the_browser(cookie, accept, expected):
    assert language.choose(cookie, accept) == expected


def test_the_coach_speaks_the_language_last_served_else_the_one_it_was_started_in(monkeypatch):
    monkeypatch.setattr(language, "_served", None)
    monkeypatch.setenv("COACH_LANG", "ru")
    assert language.interface_language() == "ru"
    monkeypatch.setattr(language, "_served", "en")
    assert language.interface_language() == "en"
    assert language.of_locale("ru_RU") == "ru" and language.of_locale("de_DE") == "en"


@pytest.mark.parametrize("lang, demo", [("ru", True), ("en", False)])
def test_the_coach_chat_is_made_once_with_the_welcome(tmp_path, lang, demo):
    assert landing.make_coach_chat(tmp_path, lang, demo)
    document = json.loads((tmp_path / "coach.chat").read_text(encoding="utf-8"))
    [message] = document["messages"]
    assert message["sender"] == landing.COACH_ID
    assert ("/log" in message["body"]) and ("/profile" in message["body"])
    assert ("Тренер" in message["body"]) == (lang == "ru")
    assert landing.has_demo_notice([message["body"]]) == demo
    # the model is not given the welcome again with each question; an answer it is given
    assert landing.is_welcome(message["body"])
    assert not landing.is_welcome("Warm up for 15 minutes, then do a few short accelerations.")
    # the person's chat is theirs: never written over
    (tmp_path / "coach.chat").write_text('{"messages": []}', encoding="utf-8")
    assert not landing.make_coach_chat(tmp_path, lang, demo)
    assert (tmp_path / "coach.chat").read_text(encoding="utf-8") == '{"messages": []}'


def test_the_workspace_opens_the_chat_only_until_the_person_has_a_layout(tmp_path):
    assert landing.make_workspace(tmp_path)
    [saved] = tmp_path.glob("*.jupyterlab-workspace")
    data = json.loads(saved.read_text())["data"]
    assert data["layout-restorer:data"]["main"]["dock"]["widgets"] == ["chat:coach.chat"]
    # JupyterLab saves the person's own layout (here: the chat closed) in the same file
    saved.write_text(json.dumps({"data": {"layout-restorer:data": {"main": {"dock": None}}},
                                 "metadata": {"id": "default"}}))
    assert not landing.make_workspace(tmp_path)
    assert json.loads(saved.read_text())["data"]["layout-restorer:data"]["main"]["dock"] is None
