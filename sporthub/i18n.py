"""SportHub's own pages in English and Russian: one message catalogue and a Jinja ``_()``.

Messages are keyed by their English text, as gettext does, so templates stay readable:
``{{ _("Sign in") }}``; a text missing from the Russian catalogue shows in English. The language
comes from ``?lang=`` (the switch on every page, remembered in the ``sporthub_lang`` cookie),
else the browser's Accept-Language, else English.

Texts with a count go through :func:`ngettext`: Russian has three forms (1 секунду, 2 секунды,
5 секунд) chosen by CLDR's plural rules as Babel implements them, never by ``n == 1``. Numbers
and dates go through Babel too (50,000 / 50 000).
"""

from __future__ import annotations

from datetime import date, datetime

from babel import Locale
from babel.dates import format_date as _format_date
from babel.dates import format_datetime as _format_datetime
from babel.dates import format_skeleton
from babel.numbers import format_decimal
from jinja2 import pass_context

LANGUAGES = ("en", "ru")
COOKIE = "sporthub_lang"

RUSSIAN = {
    # login
    "Sign in": "Вход",
    "Username:": "Имя пользователя:",
    "Password:": "Пароль:",
    "Show password": "Показать пароль",
    "Sign in with {service}": "Войти через {service}",
    # invite / set password
    "Welcome to SportHub, {name}": "Добро пожаловать в SportHub, {name}",
    "Choose your password: at least 10 characters, not a common password, and not your user "
    "name.": "Придумайте пароль: не короче 10 символов, не из списка распространённых и не "
             "совпадающий с именем пользователя.",
    "New password:": "Новый пароль:",
    "The same again:": "Ещё раз:",
    "Set password": "Сохранить пароль",
    # invites page
    "Invites": "Приглашения",
    "Accounts and invite links": "Учётные записи и ссылки-приглашения",
    "Every account signs in with a password its owner sets through a one-time link. Create "
    "accounts in the admin panel (or with sporthub users add), then give each person their "
    "link here. A new link replaces the old one and unlocks the account.":
        "Каждый входит с паролем, который сам задаёт по одноразовой ссылке. Создайте учётные "
        "записи в панели администратора (или командой sporthub users add), затем выдайте здесь "
        "каждому его ссылку. Новая ссылка заменяет старую и снимает блокировку.",
    "admin panel": "панель администратора",
    "Link for {name} (valid until {expires} UTC, shown only now):":
        "Ссылка для {name} (действует до {expires} UTC, показывается только сейчас):",
    "account": "учётная запись",
    "groups": "группы",
    "state": "состояние",
    "new link": "новая ссылка",
    "until": "до",
    # a person's data page (/hub/people/<name>, sporthub/hub/people.py)
    "Personal data of {name}": "Персональные данные: {name}",
    "Everything SportHub holds about this person, where it is, and what an erase does "
    "(docs/privacy.md).": "Всё, что SportHub хранит об этом человеке, где это лежит и что "
                           "делает удаление (docs/privacy.md).",
    "Download everything (zip)": "Скачать всё (zip)",
    "Erase this person": "Удалить все данные этого человека",
    "This stops their server and deletes their account, home, chats and shared copies. Ledger "
    "rows and audit lines stay for accounting under a pseudonym. It cannot be undone; backups "
    "made before hold the person until they are rotated. The admin panel's delete removes the "
    "account only.": "Сервер будет остановлен, учётная запись, домашняя папка, чаты и "
                     "общие копии удалены. Строки учёта и журнала аудита останутся для "
                     "отчётности под псевдонимом. Отменить нельзя; резервные копии, сделанные "
                     "раньше, хранят данные до их ротации. Удаление в панели администратора "
                     "удаляет только учётную запись.",
    "Type the name again to confirm:": "Введите имя ещё раз для подтверждения:",
    "Erase": "Удалить",
    "{name} was erased.": "Данные {name} удалены.",
    "Removed:": "Удалено:",
    "Kept:": "Сохранено:",
    "The name typed does not match; nothing was erased.":
        "Введённое имя не совпадает; ничего не удалено.",
    "No account named {name}.": "Учётной записи {name} нет.",
    "You cannot erase your own account.": "Нельзя удалить собственную учётную запись.",
    "where": "где",
    "store": "хранилище",
    # error pages
    "SportHub is full": "SportHub заполнен",
    "Bad request": "Неверный запрос",
    "Please sign in": "Пожалуйста, войдите",
    "Access denied": "Доступ запрещён",
    "Page not found": "Страница не найдена",
    "Link no longer valid": "Ссылка больше не действует",
    "Too many requests": "Слишком много запросов",
    "Something went wrong on our side": "Что-то пошло не так на нашей стороне",
    "SportHub is not available right now; please try again in a minute.":
        "SportHub сейчас недоступен; попробуйте через минуту.",
    "There is no such page here.": "Такой страницы здесь нет.",
    "You do not have permission to open this page.": "У вас нет доступа к этой странице.",
    "Invalid username or password": "Неверное имя пользователя или пароль",
    "Login form invalid or expired. Try again.":
        "Форма входа устарела или повреждена. Попробуйте ещё раз.",
    "Too many failed sign-ins from your address: wait {wait} before trying again.":
        "Слишком много неудачных попыток входа с вашего адреса: подождите {wait} и попробуйте "
        "снова.",
    "This invite link has expired or was already used. Ask your admin for a new one.":
        "Эта ссылка-приглашение устарела или уже использована. Попросите у администратора "
        "новую.",
    "The two passwords differ.": "Пароли не совпадают.",
    # sporthub/passwords.py; the length is the constant 10, always the "many" form in Russian
    "Choose a password of at least {n} characters.":
        "Выберите пароль длиной не меньше {n} символов.",
    "This password is too common; choose something less guessable.":
        "Этот пароль слишком распространён; придумайте что-нибудь менее предсказуемое.",
    "The password must not contain your user name.":
        "Пароль не должен содержать имя пользователя.",
    # states of an account on the invites page
    "admin": "администратор",
    "active": "активна",
    "invited": "приглашение выдано",
    "no link yet": "ссылки ещё нет",
    "admin password from settings": "пароль администратора из настроек",
    "No account named {name}: create it first.":
        "Учётной записи {name} нет: сначала создайте её.",
    # usage page
    "SportHub usage": "Использование SportHub",
    "Language": "Язык",
    "← hub": "← на главную",
    "Language model usage": "Использование языковой модели",
    "Generated {moment} UTC.": "Сформировано {moment} UTC.",
    "Today = this UTC day (budgets reset at 00:00 UTC); week = the last 7 UTC days, against "
    "7 × the daily budget. Queue wait: mean and 95th percentile (nearest rank) of the last 7 "
    "days' requests, in milliseconds.":
        "Сегодня — текущие сутки по UTC (лимиты обнуляются в 00:00 UTC); неделя — последние "
        "7 суток по UTC, в сравнении с 7 × дневной лимит. Ожидание в очереди: среднее и "
        "95-й процентиль (по ближайшему рангу) запросов за последние 7 дней, в миллисекундах.",
    "user": "пользователь",
    "tokens today": "токенов сегодня",
    "daily budget": "дневной лимит",
    "tokens week": "токенов за неделю",
    "week budget": "недельный лимит",
    "requests week": "запросов за неделю",
    "mean wait ms": "среднее ожидание, мс",
    "p95 wait ms": "p95 ожидания, мс",
    "errors week": "ошибок за неделю",
    "Queue waits and their ETAs, last 7 days": "Ожидание в очереди и его прогноз за 7 дней",
    "Requests that were told a wait when they joined the queue: their real waits, and how far "
    "the ETA they were told was from it (positive: later than told), in seconds; within = "
    "the share within 25 % of the real wait or 2 s.":
        "Запросы, которым при постановке в очередь назвали время ожидания: сколько они ждали на "
        "самом деле и насколько прогноз разошёлся с этим (плюс — ждали дольше обещанного), в "
        "секундах; «в пределах» — доля прогнозов, ошибившихся не более чем на 25 % ожидания "
        "или на 2 с.",
    "requests that waited": "запросов ждали",
    "median wait": "медиана ожидания",
    "p90 wait": "p90 ожидания",
    "median ETA error": "медиана ошибки прогноза",
    "p90 ETA error size": "p90 модуля ошибки",
    "within the bound": "в пределах",
    "Recent errors": "Последние ошибки",
    "time (UTC)": "время (UTC)",
    "endpoint": "адрес API",
    "model": "модель",
    "status": "статус",
    "outcome": "итог",
    "none": "нет",
    "The usage page is for hub admins.":
        "Страница использования доступна только администраторам SportHub.",
    # my data (sharing with the club's staff, sporthub/hub/mydata.py)
    "My data": "Мои данные",
    "My training data": "Мои тренировочные данные",
    "Sharing with the club's staff is for the club's athletes and staff; ask your admin.":
        "Обмен данными с тренерским штабом доступен спортсменам и штабу клуба; обратитесь к "
        "администратору.",
    "Your recordings and daily log stay private unless you share them. While sharing is on, "
    "your JupyterLab server sends the files in your activities folder to the club's staff "
    "(groups the admin names), and every time they read them it is listed below. Turning "
    "sharing off deletes every shared copy at once.":
        "Ваши записи тренировок и дневник видите только вы, пока вы ими не поделитесь. Пока "
        "доступ открыт, ваш сервер JupyterLab отправляет файлы из папки activities тренерскому "
        "штабу клуба (группам, которые назначает администратор), и каждое их обращение "
        "показано ниже. Если закрыть доступ, все переданные копии сразу удаляются.",
    "Sharing with the club's staff:": "Доступ тренерского штаба:",
    "on": "открыт",
    "off": "закрыт",
    "last update": "последнее обновление",
    "You are registered as a minor: sharing needs your guardian's consent, recorded by the "
    "club's admin.": "Вы зарегистрированы как несовершеннолетний: для доступа нужно согласие "
                     "законного представителя, которое вносит администратор клуба.",
    "Recorded: {name}, {moment} UTC.": "Внесено: {name}, {moment} UTC.",
    "Stop sharing and delete the shared copies": "Закрыть доступ и удалить переданные копии",
    "Share my training data with the club's staff":
        "Открыть доступ тренерскому штабу к моим данным",
    "What is stored": "Что хранится",
    "{files} files, {sessions} sessions, {days} daily log lines.":
        "Файлов: {files}, тренировок: {sessions}, строк дневника: {days}.",
    "Not stored": "Не сохранено",
    "The squad service refused these files as they are: they are not sent again until you "
    "change them.": "Сервис команды не принял эти файлы в нынешнем виде: они не будут "
                    "отправлены снова, пока вы их не измените.",
    "file": "файл",
    "reason": "причина",
    "Who read your data": "Кто смотрел ваши данные",
    "who": "кто",
    "what": "что",
    "address": "адрес",
    "nobody yet": "пока никто",
    "Your decisions": "Ваши решения",
    "change": "изменение",
    "by": "кто внёс",
    "share on": "доступ открыт",
    "share off": "доступ закрыт",
    "guardian consent": "согласие законного представителя",
    "guardian consent withdrawn": "согласие законного представителя отозвано",
    "Sharing is on.": "Доступ открыт.",
    "Sharing is off: your shared files and rows were deleted.":
        "Доступ закрыт: переданные файлы и записи удалены.",
    "You are registered as a minor: sharing needs your guardian's consent, which the club's "
    "admin records first.": "Вы зарегистрированы как несовершеннолетний: для доступа нужно "
                            "согласие законного представителя, которое сначала вносит "
                            "администратор клуба.",
}
CATALOGUES = {"ru": RUSSIAN}

# texts with a count: the English singular -> the text for each of the language's CLDR plural
# categories (Russian: "one" 1, 21, 101; "few" 2-4, 22-24; "many" 0, 5-20, 25-30; "other" 1.5)
RUSSIAN_PLURALS: dict[str, dict[str, str]] = {
    # the accusative, as in "подождите 1 секунду", "через 30 минут бездействия"
    "{n} second": {"one": "{n} секунду", "few": "{n} секунды", "many": "{n} секунд",
                   "other": "{n} секунды"},
    "{n} minute": {"one": "{n} минуту", "few": "{n} минуты", "many": "{n} минут",
                   "other": "{n} минуты"},
    "{n} hour": {"one": "{n} час", "few": "{n} часа", "many": "{n} часов", "other": "{n} часа"},
    "Tokens per day, last {n} day (everyone)": {
        "one": "Токены по дням за последний {n} день (все пользователи)",
        "few": "Токены по дням за последние {n} дня (все пользователи)",
        "many": "Токены по дням за последние {n} дней (все пользователи)",
        "other": "Токены по дням за последние {n} дня (все пользователи)"},
    # the hub is full (error.html): the count decides the verb too ("работает 1 человек")
    "SportHub is full right now: {n} person is working, which is all this server takes. A place "
    "frees up when they stop their server, or after {idle} without activity. Please try again "
    "in a few minutes.": {
        "one": "Сейчас SportHub заполнен: уже работает {n} человек, больше этот сервер не "
               "принимает. Место освободится, когда этот человек остановит свой сервер или через "
               "{idle} бездействия. Попробуйте ещё раз через несколько минут.",
        "few": "Сейчас SportHub заполнен: одновременно работают {n} человека, больше этот "
               "сервер не принимает. Место освободится, когда кто-то остановит свой сервер или "
               "через {idle} бездействия. Попробуйте ещё раз через несколько минут.",
        "many": "Сейчас SportHub заполнен: одновременно работают {n} человек, больше этот "
                "сервер не принимает. Место освободится, когда кто-то остановит свой сервер или "
                "через {idle} бездействия. Попробуйте ещё раз через несколько минут.",
        "other": "Сейчас SportHub заполнен: одновременно работают {n} человека, больше этот "
                 "сервер не принимает. Место освободится, когда кто-то остановит свой сервер "
                 "или через {idle} бездействия. Попробуйте ещё раз через несколько минут."},
    "SportHub is limited to {n} account and it is taken; please ask the club's admin to free a "
    "place.": {
        "one": "SportHub рассчитан на {n} учётную запись, и она уже занята; попросите "
               "администратора клуба освободить место.",
        "few": "SportHub рассчитан на {n} учётные записи, и все они заняты; попросите "
               "администратора клуба освободить место.",
        "many": "SportHub рассчитан на {n} учётных записей, и все они заняты; попросите "
                "администратора клуба освободить место.",
        "other": "SportHub рассчитан на {n} учётной записи, и все они заняты; попросите "
                 "администратора клуба освободить место."},
    "{day}: {n} token": {"one": "{day}: {n} токен", "few": "{day}: {n} токена",
                         "many": "{day}: {n} токенов", "other": "{day}: {n} токена"},
}
PLURAL_CATALOGUES = {"ru": RUSSIAN_PLURALS}

# the heading of an error page, by status: words, not only a number
ERROR_TITLES = {400: "Bad request", 401: "Please sign in", 403: "Access denied",
                404: "Page not found", 410: "Link no longer valid", 429: "Too many requests",
                500: "Something went wrong on our side", 502: "Something went wrong on our side",
                503: "Something went wrong on our side"}


def choose(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the switch (query, then cookie), else the browser's first choice."""
    for explicit in (query, cookie):
        if explicit in LANGUAGES:
            return explicit
    ranked = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.split("-")[0].lower()))
    for _, _, language in sorted(ranked):
        if language in LANGUAGES:
            return language
    return "en"


def gettext(lang: str, text: str, **values: object) -> str:
    translated = CATALOGUES.get(lang, {}).get(text, text)
    # formatted only when given values: a text from elsewhere (the hub's own login error) may
    # hold braces of its own
    return translated.format(**values) if values else translated


def ngettext(lang: str, singular: str, plural: str, n: int, **values: object) -> str:
    """The form of a text with a count ``n`` (``{n}`` in the text) that the language uses."""
    form = Locale.parse(lang if lang in LANGUAGES else "en").plural_form(n)
    forms = PLURAL_CATALOGUES.get(lang, {}).get(singular)
    if forms is None:
        text = singular if form == "one" else plural
    else:
        text = forms.get(form, forms["other"])
    return text.format(n=number(lang, n), **values)


def duration(lang: str, seconds: float) -> str:
    """A length of time in its largest whole unit: "1 hour", "30 минут", "20 секунд"."""
    seconds = round(seconds)
    if seconds and seconds % 3600 == 0:
        return ngettext(lang, "{n} hour", "{n} hours", seconds // 3600)
    if seconds and seconds % 60 == 0:
        return ngettext(lang, "{n} minute", "{n} minutes", seconds // 60)
    return ngettext(lang, "{n} second", "{n} seconds", seconds)


def wait_time(lang: str, seconds: float) -> str:
    """How long someone must wait: seconds up to two minutes, then whole minutes."""
    seconds = max(1, round(seconds))
    if seconds < 120:
        return ngettext(lang, "{n} second", "{n} seconds", seconds)
    return ngettext(lang, "{n} minute", "{n} minutes", round(seconds / 60))


def number(lang: str, value: float) -> str:
    return format_decimal(value, locale=lang)


def moment(lang: str, value: datetime) -> str:
    """A UTC date and time as the language writes it (the page says that it is UTC)."""
    return _format_datetime(value, "medium", tzinfo=value.tzinfo, locale=lang)


def day(lang: str, value: date, short: bool = False) -> str:
    return format_skeleton("dM", value, locale=lang) if short \
        else _format_date(value, "medium", locale=lang)


def language_of_request(request) -> str:
    """For a tornado or starlette request."""
    if hasattr(request, "query_arguments"):  # tornado
        query = (request.query_arguments.get("lang") or [b""])[0].decode(errors="replace")
        cookie = request.cookies.get(COOKIE)
        cookie = cookie.value if cookie is not None else None
    else:
        query, cookie = request.query_params.get("lang"), request.cookies.get(COOKIE)
    return choose(query, cookie, request.headers.get("Accept-Language"))


@pass_context
def jinja_gettext(context, text: str, **values: object) -> str:
    """``_()`` in the hub's templates: JupyterHub passes no request to templates, but its
    ``static_url`` is the handler's bound method, and the handler has the request."""
    handler = getattr(context.get("static_url"), "__self__", None)
    lang = language_of_request(handler.request) if handler is not None else "en"
    return gettext(lang, text, **values)


@pass_context
def jinja_language(context) -> str:
    handler = getattr(context.get("static_url"), "__self__", None)
    return language_of_request(handler.request) if handler is not None else "en"


@pass_context
def jinja_ngettext(context, singular: str, plural: str, n: int, **values: object) -> str:
    """``_n()`` in the hub's templates, for a text with a count."""
    return ngettext(jinja_language(context), singular, plural, n, **values)


@pass_context
def jinja_duration(context, seconds: float) -> str:
    """``sporthub_duration(seconds)`` in the hub's templates: "1 hour" / "1 час"."""
    return duration(jinja_language(context), seconds)
