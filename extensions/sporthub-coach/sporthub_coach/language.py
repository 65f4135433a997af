"""The person's interface language, one rule for JupyterLab and for the Coach's own texts.

JupyterLab's language is its translation setting (Settings > Language). Until a person picks one,
the setting says ``default``, which JupyterLab resolves to the *server's* locale: English for
everyone here. SportHub resolves it to the person's instead: the language of the hub's pages
(the ``sporthub_lang`` cookie, which the hub sets for the whole site), else the browser's
Accept-Language. A language picked in Settings is sent as itself and always wins.

The same language, as last served to this person's JupyterLab, is what the Coach uses for its own
texts (welcome, ``/data``, ``/log``, ``/profile``, refusals); before any page was served, the
language picked in Settings if there is one (it is a file in the person's home, so it survives a
restart), else the language of the request that started the server (``COACH_LANG``, set by the
hub).
"""

from __future__ import annotations

import os
from pathlib import Path

import json5
from jupyter_core.paths import jupyter_config_dir
from jupyterlab_server.translations_handler import TranslationsHandler

# the hub's rule itself, not a copy: every user server runs with SportHub's packages (the local
# profile's servers in the hub's own environment, the docker and k8s profiles' from
# images/singleuser, which installs sporthub beside the Coach); sporthub.i18n needs only Babel
# and Jinja, which JupyterLab's server loads anyway
from sporthub.i18n import COOKIE, LANGUAGES, choose

# JupyterLab's locale names of the language packs SportHub installs (English is built in)
LOCALES = {"en": "en", "ru": "ru_RU"}
# where JupyterLab keeps Settings > Language, under its user settings folder
SETTING = Path("@jupyterlab", "translation-extension", "plugin.jupyterlab-settings")

_served: str | None = None


def of_locale(locale: str) -> str:
    """"ru_RU", "ru-RU", "ru" -> "ru"; anything else -> "en"."""
    return "ru" if locale.lower().startswith("ru") else "en"


def user_settings_dir() -> Path:
    """JupyterLab's user settings folder (jupyterlab.commands.get_user_settings_dir, without
    importing all of jupyterlab.commands)."""
    configured = os.environ.get("JUPYTERLAB_SETTINGS_DIR")
    return Path(configured or Path(jupyter_config_dir(), "lab", "user-settings"))


def chosen_in_settings(settings_dir: Path | None = None) -> str | None:
    """The language the person picked in JupyterLab's Settings, None while it is ``default``."""
    path = (settings_dir or user_settings_dir()) / SETTING
    try:
        # JupyterLab saves the editor's raw text: JSON5, comments allowed
        locale = json5.loads(path.read_text(encoding="utf-8")).get("locale")
    except (OSError, ValueError, AttributeError):
        return None  # none saved, or a file JupyterLab itself would not read
    if not isinstance(locale, str) or locale in ("", "default"):
        return None
    return of_locale(locale)


def interface_language() -> str:
    """The language of the Coach's own texts for this person."""
    if _served is not None:
        return _served
    chosen = chosen_in_settings()
    if chosen is not None:
        return chosen
    started = os.environ.get("COACH_LANG", "")
    return started if started in LANGUAGES else "en"


class PersonTranslationsHandler(TranslationsHandler):
    """JupyterLab's translations API, with ``default`` meaning the person's language."""

    async def get(self, locale: str | None = None) -> None:
        global _served
        if locale is not None:
            if locale in ("", "default"):
                # no language picked in Settings: follow the hub's pages and the browser
                cookie = self.get_cookie(COOKIE)
                locale = LOCALES[choose(None, cookie, self.request.headers.get("Accept-Language"))]
            _served = of_locale(locale)
        await super().get(locale)


def follow_the_person(web_app) -> bool:
    """Serve JupyterLab's translations through :class:`PersonTranslationsHandler`; True when
    JupyterLab's handler was found (it is registered by the jupyterlab extension)."""
    found = False
    for host_rule in web_app.default_router.rules:
        for rule in getattr(host_rule.target, "rules", []):
            if rule.target is TranslationsHandler:
                rule.target = PersonTranslationsHandler
                found = True
    return found
