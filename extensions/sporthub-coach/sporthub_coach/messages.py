"""What the Coach itself says (not the model), in English and Russian.

The Coach's own texts follow the person's interface language (sporthub_coach.language);
``language_of`` (Cyrillic letters -> Russian) remains for callers that have only a text.
Error sentences are for people: what happened and when to try again, never a status code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

CYRILLIC = re.compile(r"[\u0400-\u04FF]")

MESSAGES = {
    "en": {
        "budget_exhausted": "You have used today's AI budget. It resets at {resets} UTC, "
                            "{wait}. Until then the Coach cannot answer.",
        "backend_down": "The AI model is not available right now. Please try again {wait}.",
        "busy": "The AI is very busy and no place became free in time. Please try again {wait}.",
        "too_many_queued": "You already have several questions waiting. Please wait for "
                           "their answers, then ask again.",
        "no_access": "Your account may not use the AI assistant. Please ask the club's admin "
                     "to add you to the athletes group.",
        "too_long": "This conversation is too long for the AI. Please start a new chat.",
        "failed": "The Coach could not answer this time. Please try again {wait}.",
        "in_a_minute": "in a minute",
        "in_minutes": "in about {n} min",
        "in_hours": "in about {h} h {m} min",
        "data_used": "Data used: {files} (in ~/activities).",
        "no_data_used": "No training data of yours was used (~/activities is empty).",
        "data_title": "Your training data, as the Coach sees it:",
        "waiting": "is waiting: {place}",
        "reading": "is reading your training data...",
    },
    "ru": {
        "budget_exhausted": "Дневной лимит ИИ исчерпан. Он обновится в {resets} UTC, "
                            "{wait}. До тех пор Тренер не может отвечать.",
        "backend_down": "Модель ИИ сейчас недоступна. Попробуйте ещё раз {wait}.",
        "busy": "ИИ сейчас очень загружен, и место в очереди не освободилось вовремя. "
                "Попробуйте ещё раз {wait}.",
        "too_many_queued": "У вас уже несколько вопросов в очереди. Дождитесь ответов и "
                           "спросите снова.",
        "no_access": "Вашей учётной записи недоступен ИИ-ассистент. Попросите администратора "
                     "клуба добавить вас в группу athletes.",
        "too_long": "Этот разговор слишком длинный для ИИ. Начните новый чат.",
        "failed": "Тренер не смог ответить. Попробуйте ещё раз {wait}.",
        "in_a_minute": "через минуту",
        "in_minutes": "примерно через {n} мин",
        "in_hours": "примерно через {h} ч {m} мин",
        "data_used": "Использованы данные: {files} (в ~/activities).",
        "no_data_used": "Ваши тренировочные данные не использовались (папка ~/activities пуста).",
        "data_title": "Ваши тренировочные данные, как их видит Тренер:",
        "waiting": "ждёт: {place}",
        "reading": "читает ваши тренировочные данные...",
    },
}

# the gateway's error codes (sporthub/gateway), grouped by what a person can do about them
_KIND = {
    "budget_exhausted": "budget_exhausted",
    "upstream_unavailable": "backend_down", "backend_down": "backend_down",
    # the model is loading (after a restart): for the person the same as down for a moment
    "backend_starting": "backend_down",
    "upstream_timeout": "backend_down", "upstream_error": "backend_down",
    "hub_unavailable": "backend_down", "unreachable": "backend_down",
    "queue_timeout": "busy",
    "too_many_queued": "too_many_queued",
    "missing_scope": "no_access", "invalid_api_key": "no_access", "missing_api_key": "no_access",
    "prompt_too_large": "too_long", "request_too_large": "too_long",
}


def language_of(text: str) -> str:
    return "ru" if CYRILLIC.search(text or "") else "en"


def say(lang: str, key: str, **values: object) -> str:
    return MESSAGES.get(lang, MESSAGES["en"])[key].format(**values)


def wait_phrase(lang: str, seconds: float | None) -> str:
    """"in about 3 min" / "примерно через 3 мин"; a minute when the gateway gave no hint."""
    if not seconds or seconds <= 90:
        return say(lang, "in_a_minute")
    minutes = round(seconds / 60)
    if minutes < 60:
        return say(lang, "in_minutes", n=minutes)
    return say(lang, "in_hours", h=minutes // 60, m=minutes % 60)


def refusal(lang: str, code: str | None, status: int | None, retry_after_s: float | None,
            now: datetime | None = None) -> str:
    """The plain sentence for a refusal from the gateway (or no answer from it at all)."""
    kind = _KIND.get(code or "")
    if kind is None:
        kind = {401: "no_access", 403: "no_access", 413: "too_long"}.get(status or 0, "failed")
    if kind == "budget_exhausted":
        now = now or datetime.now(UTC)
        resets = now + timedelta(seconds=retry_after_s or 0)
        return say(lang, kind, resets=f"{resets:%H:%M}", wait=wait_phrase(lang, retry_after_s))
    return say(lang, kind, wait=wait_phrase(lang, retry_after_s))
