"""SportHub's own pages in Russian for a browser that asks for it, and JupyterLab in Russian.

The pages come from a real hub (in front of the fake model of tests/support/fake_backend.py: no page
here needs an answer from a model), with room for one running server so that a second person
meets the "hub is full" page.
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from sporthub import i18n, passwords
from sporthub.hub.accounts import InvalidInvite, Throttled
from sporthub.usage.app import render_error, render_page
from sporthub.usage.report import Report, UserUsage
from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.stack import HubClient, add_rows, create_account, make_stack, set_password

TEMPLATES = Path(i18n.__file__).parent / "hub" / "templates"
RU = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}


PASSWORD = "quiet-harbour-tempo-5"


def test_every_text_of_the_templates_has_its_russian():
    texts = set()
    for template in TEMPLATES.glob("*.html"):
        texts |= {t for _, t in re.findall(r"""_\(\s*(["'])(.*?)\1""", template.read_text())}
    texts |= set(i18n.ERROR_TITLES.values())
    assert texts, "no translatable text found: the pattern is wrong"
    missing = sorted(t for t in texts if t not in i18n.RUSSIAN)
    assert missing == []
    counted = set()
    for template in TEMPLATES.glob("*.html"):
        counted |= {t for _, t in re.findall(r"""_n\(\s*(["'])(.*?)\1""", template.read_text())}
    assert counted and sorted(t for t in counted if t not in i18n.RUSSIAN_PLURALS) == []


def translated_in_python() -> tuple[set[str], set[str]]:
    """The English texts that SportHub's Python code hands to gettext and ngettext."""
    texts, counted = set(), set()
    for source in Path(i18n.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not (isinstance(node, ast.Call) and len(node.args) >= 2):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            text = node.args[1]
            if name in ("gettext", "ngettext") and isinstance(text, ast.Constant):
                (texts if name == "gettext" else counted).add(text.value)
    return texts, counted


def test_every_text_of_the_python_side_has_its_russian():
    texts, counted = translated_in_python()
    # the pages' own sentences, the password rules, the states the invites page shows
    texts |= set(passwords.REASONS) | {"active", "invited", "no link yet",
                                       "admin password from settings"}
    # the hub's own login errors, shown through the login template
    texts |= {"Invalid username or password", "Login form invalid or expired. Try again."}
    assert "The two passwords differ." in texts and len(counted) >= 4
    assert sorted(t for t in texts if t not in i18n.RUSSIAN) == []
    assert sorted(t for t in counted if t not in i18n.RUSSIAN_PLURALS) == []
    # every Russian plural names each CLDR category the language has
    for forms in i18n.RUSSIAN_PLURALS.values():
        assert set(forms) == {"one", "few", "many", "other"}


@pytest.mark.parametrize("seconds, russian, english", [
    (1, "1 секунду", "1 second"),
    (2, "2 секунды", "2 seconds"),
    (4, "4 секунды", "4 seconds"),
    (5, "5 секунд", "5 seconds"),
    (11, "11 секунд", "11 seconds"),
    (21, "21 секунду", "21 seconds"),
    (22, "22 секунды", "22 seconds"),
    (119, "119 секунд", "119 seconds"),
    (120, "2 минуты", "2 minutes"),
    (300, "5 минут", "5 minutes"),
    (1260, "21 минуту", "21 minutes"),
    (0.2, "1 секунду", "1 second"),  # never "wait 0 seconds"
])
def test_waits_take_the_russian_plural_forms(seconds, russian, english):
    assert i18n.wait_time("ru", seconds) == russian
    assert i18n.wait_time("en", seconds) == english


def test_the_full_hub_sentence_agrees_with_its_count():
    (singular,) = [t for t in i18n.RUSSIAN_PLURALS if t.startswith("SportHub is full")]
    plural = singular.replace("{n} person is working,", "{n} people are working at once,")

    def full(lang, n):
        return i18n.ngettext(lang, singular, plural, n, idle="1 час")

    assert full("ru", 1).startswith("Сейчас SportHub заполнен: уже работает 1 человек,")
    assert full("ru", 3).startswith("Сейчас SportHub заполнен: одновременно работают 3 человека,")
    assert full("ru", 5).startswith("Сейчас SportHub заполнен: одновременно работают 5 человек,")
    assert full("en", 1).startswith("SportHub is full right now: 1 person is working,")
    assert full("en", 5).startswith("SportHub is full right now: 5 people are working at once,")


@pytest.mark.parametrize("seconds, russian, english", [
    (3600, "1 час", "1 hour"),
    (7200, "2 часа", "2 hours"),
    (18000, "5 часов", "5 hours"),
    (60, "1 минуту", "1 minute"),
    (1800, "30 минут", "30 minutes"),
    (20, "20 секунд", "20 seconds"),
    (90, "90 секунд", "90 seconds"),
])
def test_durations_take_the_largest_whole_unit(seconds, russian, english):
    assert i18n.duration("ru", seconds) == russian
    assert i18n.duration("en", seconds) == english


def test_sign_in_refusals_in_both_languages():
    throttled = Throttled(timedelta(seconds=2))
    assert str(throttled) == ("Too many failed sign-ins from your address: wait 2 seconds before "
                              "trying again.")  # the logs and the API stay English
    assert throttled.say("ru") == ("Слишком много неудачных попыток входа с вашего адреса: "
                                   "подождите 2 секунды и попробуйте снова.")
    assert "15 минут" in Throttled(timedelta(minutes=15)).say("ru")
    assert InvalidInvite.say("ru").startswith("Эта ссылка-приглашение устарела")
    with pytest.raises(passwords.WeakPassword) as short:
        passwords.check_password_strength("olga", "short")
    assert str(short.value) == "Choose a password of at least 10 characters."
    assert (i18n.gettext("ru", short.value.reason, **short.value.values)
            == "Выберите пароль длиной не меньше 10 символов.")


def test_the_usage_page_formats_numbers_and_dates_for_the_language():
    report = Report(
        generated_at=datetime(2026, 11, 27, 16, 5, tzinfo=UTC),
        users=[UserUsage(user="ann", groups="athletes", budget_per_day=50000, tokens_today=1234,
                         tokens_week=21001, budget_week=350000, requests_week=1,
                         mean_queue_ms=1500.4, p95_queue_ms=None, errors_week=0)],
        days=[(date(2026, 11, 26), 1), (date(2026, 11, 27), 21001)], errors=[])
    russian = render_page(report, "/hub/", "ru")
    assert '<html lang="ru">' in russian
    assert '<td class="today">1\xa0234</td><td>50\xa0000</td>' in russian
    assert '<td class="mean">1\xa0500</td>' in russian
    assert "Сформировано 27 нояб. 2026\u202fг., 16:05:00 UTC." in russian
    assert "Токены по дням за последние 2 дня (все пользователи)" in russian
    assert "<title>26 нояб. 2026\u202fг.: 1 токен</title>" in russian
    assert "<title>27 нояб. 2026\u202fг.: 21\xa0001 токен</title>" in russian
    assert ">27.11</text>" in russian and '<td colspan="6">нет</td>' in russian
    english = render_page(report, "/hub/", "en")
    assert '<td class="today">1,234</td><td>50,000</td>' in english
    assert "Generated Nov 27, 2026, 4:05:00\u202fPM UTC." in english
    assert "Tokens per day, last 2 days (everyone)" in english
    assert "<title>Nov 26, 2026: 1 token</title>" in english
    # what scripts read stays plain
    assert 'data-day="2026-11-27" data-tokens="21001"' in russian


def test_the_usage_services_own_refusal_in_russian():
    refused = render_error(403, "The usage page is for hub admins.", "ru")
    assert "<h1>Доступ запрещён</h1>" in refused
    assert "Страница использования доступна только администраторам SportHub." in refused
    assert "<h1>Access denied</h1>" in render_error(403, "The usage page is for hub admins.")


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
    # one running server at most: the admin's JupyterLab (below) fills the hub for everyone else;
    # 30 minutes of idle time, which the idle culler never reaches during the tests
    stack = make_stack(tmp_path_factory.mktemp("i18n"), llm_backends=backends,
                       active_server_limit="1", idle_timeout_s="1800")
    stack.start()
    stack.admin = HubClient.admin(stack)
    yield stack
    stack.descendants = stack.processes()
    stack.stop()
    backend.stop()


@pytest.mark.stack
def test_the_login_page_speaks_the_browsers_language(hub):
    russian = httpx.get(f"{hub.url}/hub/login", headers=RU).text
    assert "<h1>Вход</h1>" in russian and "Имя пользователя:" in russian
    assert 'value=\'Вход\'' in russian and 'id="login_submit"' in russian
    english = httpx.get(f"{hub.url}/hub/login", headers=EN).text
    assert "<h1>Sign in</h1>" in english and "Вход" not in english


@pytest.mark.stack
def test_the_switch_overrides_the_browser_and_is_remembered(hub):
    switched = httpx.get(f"{hub.url}/hub/login?lang=en", headers=RU).text
    assert "<h1>Sign in</h1>" in switched
    # the page's script keeps the choice in a cookie, which the next page reads
    assert 'document.cookie = "sporthub_lang="' in switched
    remembered = httpx.get(f"{hub.url}/hub/login", headers=EN, cookies={"sporthub_lang": "ru"})
    assert "<h1>Вход</h1>" in remembered.text


@pytest.mark.stack
def test_invite_and_invites_pages_in_russian(hub):
    url = create_account(hub.admin, "olga", "athletes")
    page = httpx.get(url, headers=RU).text
    assert "Добро пожаловать в SportHub, olga" in page and "Сохранить пароль" in page
    invites = hub.admin.http.get("/hub/invites", headers=RU).text
    assert "Учётные записи и ссылки-приглашения" in invites and "новая ссылка" in invites
    assert "Приглашения" in invites  # the link in the top bar


@pytest.mark.stack
def test_error_pages_in_russian_say_what_happened_in_words(hub):
    missing = httpx.get(f"{hub.url}/hub/no-such-page", headers=RU)
    assert missing.status_code == 404
    assert "Страница не найдена" in missing.text and "Такой страницы здесь нет." in missing.text
    used = httpx.get(f"{hub.url}/hub/invite?token=not-a-real-token", headers=RU)
    assert used.status_code == 410 and "Ссылка больше не действует" in used.text


@pytest.mark.stack
def test_jupyterlab_has_its_russian_language_pack(hub):
    hub.admin.start_server(hub.admin_user)
    headers = {"Authorization": f"token {hub.admin.token}"}
    base = f"{hub.url}/user/{hub.admin_user}/lab/api/translations"
    languages = httpx.get(f"{base}/", headers=headers, timeout=60).json()["data"]
    assert "ru_RU" in languages
    russian = httpx.get(f"{base}/ru_RU", headers=headers, timeout=60).json()["data"]
    assert russian["jupyterlab"]["menu\x04File"] == ["Файл"]


@pytest.mark.stack
def test_a_wrong_password_and_a_throttled_address_in_russian(hub):
    stranger = HubClient(hub, address="127.0.0.95")
    stranger.http.headers.update(RU)
    wrong = stranger.login("nobody-here", "wrong-password-x")
    assert wrong.status_code == 403
    assert "Неверное имя пользователя или пароль" in wrong.text
    assert "Invalid username or password" not in wrong.text
    # 5 failures are free; the next try is held back (or, if the machine was slow enough for
    # the wait to pass, fails again and makes the next wait longer)
    for _ in range(12):
        refused = stranger.login("nobody-here", "wrong-password-x")
        if refused.status_code == 429:
            break
    assert refused.status_code == 429, refused.text
    said = re.search(r"Слишком много неудачных попыток входа с вашего адреса: подождите "
                     r"(\d+) (\w+) и попробуйте снова\.", refused.text)
    assert said, refused.text
    assert f"{said[1]} {said[2]}" == i18n.wait_time("ru", int(said[1]))
    assert "Too many failed sign-ins" not in refused.text
    # the switch, remembered in the cookie, wins over the browser's Russian
    stranger.http.cookies.set("sporthub_lang", "en")
    english = stranger.login("nobody-here", "wrong-password-x")
    assert english.status_code in (403, 429)
    assert ("Too many failed sign-ins from your address: wait" in english.text
            or "Invalid username or password" in english.text)
    assert "Слишком много" not in english.text and "Неверное" not in english.text


@pytest.mark.stack
def test_set_password_refusals_in_russian(hub):
    url = create_account(hub.admin, "pyotr", "athletes")
    with httpx.Client(timeout=30, headers=RU) as browser:
        form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"',
                               browser.get(url).text))
        for password, again, said in [
            ("short", "short", "Выберите пароль длиной не меньше 10 символов."),
            ("password123", "password123", "Этот пароль слишком распространён"),
            ("Pyotr-2024!!", "Pyotr-2024!!", "Пароль не должен содержать имя пользователя."),
            (PASSWORD, PASSWORD + "x", "Пароли не совпадают."),
        ]:
            refused = browser.post(url.split("?")[0], follow_redirects=False, data={
                **form, "password": password, "password2": again})
            assert refused.status_code == 400 and said in refused.text, password
            assert "Choose a password" not in refused.text and "differ" not in refused.text
    # the invites page shows the account's state in Russian
    invites = hub.admin.http.get("/hub/invites", headers=RU).text
    state = re.search(r'data-state="invited">([^<]*)<', invites)
    assert state and state[1].startswith("приглашение выдано"), invites


@pytest.mark.stack
def test_the_full_hub_says_so_in_russian_with_its_idle_time(hub):
    running = hub.admin.api("GET", f"/users/{hub.admin_user}").json()["servers"]
    if not running:
        hub.admin.start_server(hub.admin_user)
    assert set_password(create_account(hub.admin, "vera", "athletes"), PASSWORD).status_code \
        == 302
    vera = HubClient(hub)
    assert vera.login("vera", PASSWORD).status_code == 302
    full = vera.http.get("/hub/spawn", headers=RU)
    assert full.status_code == 429
    assert "<h1>SportHub заполнен</h1>" in full.text
    assert ("Сейчас SportHub заполнен: уже работает 1 человек, больше этот сервер не "
            "принимает. Место освободится, когда этот человек остановит свой сервер или через "
            "30 минут бездействия.") in full.text
    assert "minutes" not in full.text and "SportHub is full" not in full.text
    english = vera.http.get("/hub/spawn", headers=EN)
    assert english.status_code == 429
    assert ("SportHub is full right now: 1 person is working, which is all this server takes. A "
            "place frees up when they stop their server, or after 30 minutes without "
            "activity.") in english.text


@pytest.mark.stack
def test_the_usage_page_in_russian_and_the_switch_sticks(hub):
    add_rows(hub, [{"user": "usage-i18n", "started_at": datetime.now(UTC).replace(tzinfo=None),
                    "prompt_tokens": 12000, "completion_tokens": 345, "status": 502,
                    "outcome": "upstream_error"}])
    admin = HubClient.admin(hub)  # a browser of its own: the switch below sets its cookie
    admin.http.headers.update(RU)
    page = admin.http.get("/services/usage/")
    assert page.status_code == 200 and page.url.path == "/services/usage/", page.text
    assert '<html lang="ru">' in page.text
    assert "<h1>Использование языковой модели</h1>" in page.text
    assert "Сегодня — текущие сутки по UTC (лимиты обнуляются в 00:00 UTC)" in page.text
    assert "Токены по дням за последние 14 дней (все пользователи)" in page.text
    assert "<h2>Последние ошибки</h2>" in page.text
    assert '<td class="today">12\xa0345</td>' in page.text
    for english in ("Language model usage", "Recent errors", "tokens today", "Generated"):
        assert english not in page.text
    # the switch: English now, and for the pages after, the hub's included
    switched = admin.http.get("/services/usage/?lang=en")
    assert "<h1>Language model usage</h1>" in switched.text
    assert '<td class="today">12,345</td>' in switched.text
    assert admin.http.cookies.get("sporthub_lang") == "en"
    again = admin.http.get("/services/usage/")
    assert "<h1>Language model usage</h1>" in again.text and "Использование" not in again.text
    home = admin.http.get("/hub/home")
    assert ">Invites</a>" in home.text and "Приглашения" not in home.text
    back = admin.http.get("/services/usage/?lang=ru")
    assert "<h1>Использование языковой модели</h1>" in back.text


@pytest.mark.stack
def test_the_usage_page_refuses_a_non_admin_in_russian(hub):
    vera = HubClient(hub)
    assert vera.login("vera", PASSWORD).status_code == 302
    # the hub itself refuses (no access:services); the service's own check is the second line
    refused = vera.http.get("/services/usage/", headers=RU)
    assert refused.status_code == 403
    assert "<h1>Доступ запрещён</h1>" in refused.text
    assert "У вас нет доступа к этой странице." in refused.text
    assert "You do not have permission" not in refused.text


@pytest.mark.parametrize("code, status, retry_after_s, english, russian", [
    ("budget_exhausted", 429, 9000, "in about 2 h 30 min", "примерно через 2 ч 30 мин"),
    ("upstream_unavailable", 503, 30, "Please try again in a minute.",
     "Попробуйте ещё раз через минуту."),
    ("backend_starting", 503, 10, "The AI model is not available right now.",
     "Модель ИИ сейчас недоступна. Попробуйте ещё раз через минуту."),
    ("queue_timeout", 503, 300, "Please try again in about 5 min.",
     "Попробуйте ещё раз примерно через 5 мин."),
])
def test_the_coachs_refusals_say_when_to_try_again_in_both_languages(
        code, status, retry_after_s, english, russian):
    from sporthub_coach.messages import refusal

    assert english in refusal("en", code, status, retry_after_s)
    said = refusal("ru", code, status, retry_after_s)
    assert russian in said and not re.search(r"[A-Za-z]{4,}", said.replace("UTC", ""))


def test_the_coach_is_told_to_answer_in_the_language_of_the_question():
    import sporthub_coach

    # read from the source: importing the persona imports all of Jupyter AI (20 s under load)
    persona = Path(sporthub_coach.__file__).with_name("persona.py").read_text()
    prompt = next(node.value.value for node in ast.parse(persona).body
                  if isinstance(node, ast.Assign) and node.targets[0].id == "SYSTEM_PROMPT")
    assert "Answer in the language of the athlete's question" in prompt
