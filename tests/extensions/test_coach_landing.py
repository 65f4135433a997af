"""Where an athlete lands and in which language (no stack: the files and rules themselves)."""

from __future__ import annotations

import json

import pytest
from jupyterlab_chat.ychat import YChat

from sporthub import i18n
from sporthub_coach import landing, language


@pytest.mark.parametrize("cookie, accept, expected", [
    (None, "ru-RU,ru;q=0.9,en-US;q=0.8", "ru"),
    (None, "en-US,en;q=0.9,ru;q=0.8", "en"),
    ("en", "ru-RU,ru;q=0.9", "en"),          # the hub page's switch wins over the browser
    ("ru", "en-US", "ru"),
    (None, "de-DE,de;q=0.9,ru;q=0.5", "ru"),  # the first language SportHub speaks
    (None, "de-DE,de;q=0.9,ru;q=0.5,en;q=0.8", "en"),  # by quality, not by position
    (None, "ru;q=abc,en", "en"),              # a quality that is no number counts as 0
    (None, None, "en"),
    ("xx", "fr", "en"),
])
def test_the_language_follows_the_hub_then_the_browser(cookie, accept, expected):
    # JupyterLab's "default" language in a person's server is the hub pages' own rule (no ?lang=
    # reaches JupyterLab's translations API: the cookie is the page switch remembered)
    assert language.choose is i18n.choose
    assert language.choose(None, cookie, accept) == expected


def test_the_coach_speaks_the_language_last_served_else_the_one_it_was_started_in(
        monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path))  # nothing picked in Settings
    monkeypatch.setattr(language, "_served", None)
    monkeypatch.setenv("COACH_LANG", "ru")
    assert language.interface_language() == "ru"
    monkeypatch.setattr(language, "_served", "en")
    assert language.interface_language() == "en"
    assert language.of_locale("ru_RU") == "ru" and language.of_locale("de_DE") == "en"


@pytest.mark.parametrize("lang, demo, share", [("ru", True, True), ("en", False, True),
                                               ("en", True, False)])
def test_the_coach_chat_is_made_once_with_the_welcome(tmp_path, lang, demo, share):
    assert landing.make_coach_chat(tmp_path, lang, demo, share)
    document = json.loads((tmp_path / "coach.chat").read_text(encoding="utf-8"))
    [message] = document["messages"]
    assert message["sender"] == landing.COACH_ID
    assert ("/log" in message["body"]) and ("/profile" in message["body"])
    assert ("Тренер" in message["body"]) == (lang == "ru")
    assert landing.has_demo_notice([message["body"]]) == demo
    # /share is named only where the club runs the squad service
    assert ("/share" in message["body"]) == share
    assert "{" not in message["body"] and "\n\n\n" not in message["body"]
    # the model is not given the welcome again with each question; an answer it is given
    assert landing.is_welcome(message["body"])
    assert not landing.is_welcome("Warm up for 15 minutes, then do a few short accelerations.")
    # jupyterlab-chat reads the file as it is, its id included (no second id made on load)
    chat = YChat()
    chat.set(json.dumps(document))
    chat.dirty = False
    assert chat.get_id() == document["metadata"]["id"] and len(chat.get_id()) == 36
    # the person's chat is theirs: never written over
    (tmp_path / "coach.chat").write_text('{"messages": []}', encoding="utf-8")
    assert not landing.make_coach_chat(tmp_path, lang, demo)
    assert (tmp_path / "coach.chat").read_text(encoding="utf-8") == '{"messages": []}'


def test_share_is_offered_where_the_hub_gave_the_squad_services_address(monkeypatch):
    monkeypatch.delenv("SQUAD_API_URL", raising=False)
    assert not landing.can_share()
    monkeypatch.setenv("SQUAD_API_URL", "http://hub:8000/services/squad/api")
    assert landing.can_share()


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


@pytest.mark.parametrize("raw, chosen", [
    # what Settings > Language > English saves (JupyterLab keeps the editor's text: JSON5)
    ('{\n    // Language\n    "locale": "en"\n}', "en"),
    ('{"locale": "ru_RU"}', "ru"),
    ('{"locale": "default"}', None),  # picked nothing: the hub's language and the browser's
    ("{}", None),
    ("{not json", None),              # a file JupyterLab would not read either
    ('["en"]', None),
])
def test_a_language_picked_in_settings_beats_the_language_the_server_was_started_in(
        monkeypatch, tmp_path, raw, chosen):
    # a restart from a Russian browser starts the server with COACH_LANG=ru; a person who picked
    # English keeps English, from the Coach's first word on (its welcome is written at the start,
    # before any page asks for JupyterLab's translations)
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path))
    monkeypatch.setattr(language, "_served", None)
    monkeypatch.setenv("COACH_LANG", "ru")
    setting = tmp_path / language.SETTING
    setting.parent.mkdir(parents=True)
    setting.write_text(raw, encoding="utf-8")
    assert language.chosen_in_settings() == chosen
    assert language.interface_language() == (chosen or "ru")
    assert landing.make_coach_chat(tmp_path, language.interface_language(), demo=False)
    body = json.loads((tmp_path / "coach.chat").read_text(encoding="utf-8"))["messages"][0]["body"]
    assert ("I am the Coach" in body) == (chosen == "en")


@pytest.mark.parametrize("backends, demo", [
    (None, "1"),  # the embedded model: 135M parameters, for trying SportHub
    ('[{"name": "club", "url": "http://gpu:8000", "api_key": "k", "models": ["m"]}]', "0"),
    (('[{"name": "trial", "url": "http://gpu:8000", "api_key": "k", "models": ["m"], '
      '"demo": true}]'), "1"),
])
def test_the_embedded_model_and_backends_marked_demo_are_told_as_demo(
        monkeypatch, tmp_path, backends, demo):
    from sporthub.hub.common import first_minutes_environment
    from sporthub.settings import load_settings

    if backends:  # as an admin writes it
        monkeypatch.setenv("SPORTHUB_LLM_BACKENDS", backends)
    settings = load_settings(data_dir=tmp_path)
    assert first_minutes_environment(settings)["LLM_GATEWAY_DEMO"] == demo


@pytest.mark.parametrize("body, lang, said", [
    ("/share статус", "en", "Use `/share on`"),  # a Russian word, an English interface
    ("/share status", "ru", "Команды: `/share вкл`"),
])
def test_share_answers_in_the_interface_language_whatever_the_words(monkeypatch, body, lang, said):
    import asyncio

    from sporthub_coach import sharing

    # an unknown word is answered before any call to the squad service
    monkeypatch.setenv("SQUAD_API_URL", "http://127.0.0.1:9/services/squad/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-used")
    assert asyncio.run(sharing.answer(body, lang)).startswith(said)
