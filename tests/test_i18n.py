"""SportHub's own pages in Russian for a browser that asks for it, and JupyterLab in Russian.

The pages come from a real hub (in front of the fake model of tests/fake_backend.py: no page
here needs an answer from a model).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from sporthub import i18n
from tests.fake_backend import KEY, MODEL, FakeBackend
from tests.stack import HubClient, create_account, make_stack

TEMPLATES = Path(i18n.__file__).parent / "hub" / "templates"
RU = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}


def test_every_text_of_the_templates_has_its_russian():
    texts = set()
    for template in TEMPLATES.glob("*.html"):
        texts |= set(re.findall(r"""_\(\s*["']([^"']+)["']""", template.read_text()))
    texts |= set(i18n.ERROR_TITLES.values())
    assert texts, "no translatable text found: the pattern is wrong"
    missing = sorted(t for t in texts if t not in i18n.RUSSIAN)
    assert missing == []


@pytest.mark.parametrize("query, cookie, accept, expected", [
    (None, None, "ru-RU,ru;q=0.9,en;q=0.8", "ru"),
    (None, None, "de-DE,de;q=0.9,ru;q=0.5,en;q=0.8", "en"),  # English is preferred to Russian
    (None, None, "de-DE", "en"),
    (None, None, None, "en"),
    (None, "ru", "en-US", "ru"),  # the switch, remembered
    ("en", "ru", "ru", "en"),  # the switch, just pressed
    ("fr", None, "ru", "ru"),  # an unknown choice is ignored
])
def test_the_language_is_the_switch_else_the_browsers_choice(query, cookie, accept, expected):
    assert i18n.choose(query, cookie, accept) == expected


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    backend = FakeBackend().start()
    backends = (f'[{{"name": "fake", "url": "{backend.url}", "api_key": "{KEY}", '
                f'"models": ["{MODEL}"], "max_concurrency": 1}}]')
    stack = make_stack(tmp_path_factory.mktemp("i18n"), llm_backends=backends)
    stack.start()
    stack.admin = HubClient.admin(stack)
    yield stack
    stack.descendants = stack.processes()
    stack.stop()
    backend.stop()


def test_the_login_page_speaks_the_browsers_language(hub):
    russian = httpx.get(f"{hub.url}/hub/login", headers=RU).text
    assert "<h1>Вход</h1>" in russian and "Имя пользователя:" in russian
    assert 'value=\'Вход\'' in russian and 'id="login_submit"' in russian
    english = httpx.get(f"{hub.url}/hub/login", headers=EN).text
    assert "<h1>Sign in</h1>" in english and "Вход" not in english


def test_the_switch_overrides_the_browser_and_is_remembered(hub):
    switched = httpx.get(f"{hub.url}/hub/login?lang=en", headers=RU).text
    assert "<h1>Sign in</h1>" in switched
    # the page's script keeps the choice in a cookie, which the next page reads
    assert 'document.cookie = "sporthub_lang="' in switched
    remembered = httpx.get(f"{hub.url}/hub/login", headers=EN, cookies={"sporthub_lang": "ru"})
    assert "<h1>Вход</h1>" in remembered.text


def test_invite_and_invites_pages_in_russian(hub):
    url = create_account(hub.admin, "olga", "athletes")
    page = httpx.get(url, headers=RU).text
    assert "Добро пожаловать в SportHub, olga" in page and "Сохранить пароль" in page
    invites = hub.admin.http.get("/hub/invites", headers=RU).text
    assert "Учётные записи и ссылки-приглашения" in invites and "новая ссылка" in invites
    assert "Приглашения" in invites  # the link in the top bar


def test_error_pages_in_russian_say_what_happened_in_words(hub):
    missing = httpx.get(f"{hub.url}/hub/no-such-page", headers=RU)
    assert missing.status_code == 404
    assert "Страница не найдена" in missing.text and "Такой страницы здесь нет." in missing.text
    used = httpx.get(f"{hub.url}/hub/invite?token=not-a-real-token", headers=RU)
    assert used.status_code == 410 and "Ссылка больше не действует" in used.text


def test_jupyterlab_has_its_russian_language_pack(hub):
    hub.admin.start_server(hub.admin_user)
    headers = {"Authorization": f"token {hub.admin.token}"}
    base = f"{hub.url}/user/{hub.admin_user}/lab/api/translations"
    languages = httpx.get(f"{base}/", headers=headers, timeout=60).json()["data"]
    assert "ru_RU" in languages
    russian = httpx.get(f"{base}/ru_RU", headers=headers, timeout=60).json()["data"]
    assert russian["jupyterlab"]["menu\x04File"] == ["Файл"]
