"""SportHub's own pages in English and Russian: one message catalogue and a Jinja ``_()``.

Messages are keyed by their English text, as gettext does, so templates stay readable:
``{{ _("Sign in") }}``; a text missing from the Russian catalogue shows in English. The language
comes from ``?lang=`` (the switch on every page, remembered in the ``sporthub_lang`` cookie),
else the browser's Accept-Language, else English.
"""

from __future__ import annotations

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
    # error pages
    "SportHub is full right now: {limit} people are working at once, which is all this server "
    "takes. A place frees up when someone stops their server, or after {idle} without activity. "
    "Please try again in a few minutes.":
        "Сейчас SportHub заполнен: одновременно работают {limit} человек, больше этот сервер не "
        "принимает. Место освободится, когда кто-то остановит свой сервер или через {idle} "
        "бездействия. Попробуйте ещё раз через несколько минут.",
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
    # usage page
    "SportHub usage": "Использование SportHub",
    "Language": "Язык",
}
CATALOGUES = {"ru": RUSSIAN}

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
    return CATALOGUES.get(lang, {}).get(text, text).format(**values)


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
