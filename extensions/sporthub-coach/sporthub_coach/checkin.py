"""``/log`` and ``/profile``: the athlete's daily check-in and thresholds, typed in the chat.

``/log rpe 7 60min sleep 7.5h soreness 3`` (or ``/log rpe 7 60мин сон 7.5ч болезненность 3``)
appends one line to ``~/activities/log.csv``; ``/profile hrmax 192 ftp 265`` sets thresholds in
``~/activities/profile.toml``; ``/profile`` alone shows them. The formats, ranges and writers are
sportlab's (:mod:`sportlab.athlete`): this module only turns words into column names.

Why a parser of our own and not the model: the files hold health data that later analyses trust,
so a value is written only when it is unambiguous. Hours slept (``sleep_h``) and the Hooper
sleep-quality rating 1-7 (``sleep_quality``) are different words, and ``sleep 6`` without a unit
is refused with the two ways to say it, never guessed. Anything unknown, duplicated or out of
range writes nothing and is explained in plain words, in the person's interface language.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType

LOG_COMMAND = "/log"
PROFILE_COMMAND = "/profile"

# the words an athlete may type for each log.csv column (sportlab.athlete.LOG_COLUMNS)
LOG_WORDS = {
    "rpe": ("rpe", "рпе", "тяжесть", "нагрузка"),
    "minutes": ("minutes", "min", "duration", "мин", "минут", "минуты", "длительность"),
    "sleep_h": ("sleep", "slept", "sleep_h", "сон", "спал", "спала"),
    "resting_hr": ("hr", "rhr", "resting_hr", "pulse", "пульс", "чсс"),
    "rmssd_ms": ("rmssd", "hrv", "rmssd_ms", "вср"),
    "sleep_quality": ("quality", "sleep_quality", "качество", "качество_сна"),
    "stress": ("stress", "стресс"),
    "fatigue": ("fatigue", "tiredness", "усталость"),
    "soreness": ("soreness", "sore", "doms", "болезненность", "крепатура", "боль"),
}
# ... and for each profile.toml threshold (sportlab.athlete.THRESHOLDS)
PROFILE_WORDS = {
    "hr_max_bpm": ("hrmax", "hr_max", "maxhr", "hr_max_bpm", "чссмакс", "пульсмакс", "чсс_макс"),
    "hr_rest_bpm": ("hrrest", "hr_rest", "rhr", "hr_rest_bpm", "пульспокоя", "чсс_покоя"),
    "lthr_bpm": ("lthr", "lthr_bpm", "пано", "чсс_пано"),
    "ftp_w": ("ftp", "ftp_w", "фтп"),
    "threshold_pace_s_per_km": ("pace", "threshold_pace", "threshold_pace_s_per_km", "темп"),
    "weight_kg": ("weight", "weight_kg", "mass", "вес"),
}
HOURS = ("h", "hr", "hrs", "hour", "hours", "ч", "час", "часа", "часов")
MINUTES = ("m", "min", "mins", "minute", "minutes", "мин", "минут", "минуты", "минута")
TODAY = ("today", "сегодня")
YESTERDAY = ("yesterday", "вчера")
# a number, optionally glued to its unit: 7, 7.5, 7,5, 60min, 7.5h, 7,5ч, 4:10 (a pace)
NUMBER = re.compile(r"^(\d+(?:[.,]\d+)?|\d{1,2}:\d{2})([a-zа-яё]*)$")

TEXTS = {
    "en": {
        "log_help": "Daily check-in: type `/log` and what you want to record, for example\n\n"
                    "`/log rpe 7 60min sleep 7.5h quality 3 soreness 2`\n\n"
                    "Words: **rpe** (session effort 0-10), **min** (session minutes), "
                    "**sleep** (hours slept, with `h`), **quality** (sleep quality 1-7, Hooper), "
                    "**stress**, **fatigue**, **soreness** (1 very low - 7 very high), "
                    "**hr** (resting heart rate), **hrv** (rMSSD, ms); `yesterday` or a date "
                    "(2026-03-01) for another day. Send the values now, or anything else to skip.",
        "logged": "Written to `activities/{file}` for {day}: {values}.",
        "profile_help": "Your thresholds (`activities/{file}`):\n\n{values}\n\nSet one with, "
                        "for example, `/profile hrmax 192 ftp 265`. Words: **hrmax**, "
                        "**hrrest**, **lthr** (bpm), **ftp** (W), **pace** (threshold pace, "
                        "min:s per km, e.g. 4:10), **weight** (kg).",
        "profile_empty": "none set yet",
        "profile_set": "Written to `activities/{file}` (measured {day}): {values}.",
        "nothing_written": "Nothing was written: {why}",
        "unknown_word": "I do not know the word “{word}”.",
        "no_value": "“{word}” needs a number after it.",
        "lonely_number": "the number {number} has no word saying what it is (for example "
                         "`rpe {number}`).",
        "twice": "{name} is given twice.",
        "sleep_ambiguous": "“{word} {number}”: hours slept or sleep quality? Write `{word} "
                           "{number}h` for hours slept, or `quality {number}` for the 1-7 "
                           "sleep-quality rating.",
        "hours_ambiguous": "“{number}h”: hours slept or session length? Write `sleep "
                           "{number}h` or `{minutes}min`.",
        "wrong_unit": "“{word} {number}{unit}”: {unit} is not a unit of {name}.",
        "bad_value": "{name}: {value} is not possible ({low:g}-{high:g} {unit}).",
        "not_whole": "{name}: {value} must be a whole number ({low:g}-{high:g}).",
        "bad_date": "“{word}” is not a date like 2026-03-01.",
        "future": "{day} is in the future.",
        "nothing_given": "there was nothing to write.",
        "file_broken": "`activities/{file}` cannot be read ({problem}); fix or remove it first.",
    },
    "ru": {
        "log_help": "Дневник: напишите `/log` и что записать, например\n\n"
                    "`/log rpe 7 60мин сон 7.5ч качество 3 болезненность 2`\n\n"
                    "Слова: **rpe** (тяжесть тренировки 0-10), **мин** (длительность, минуты), "
                    "**сон** (часы сна, с `ч`), **качество** (качество сна 1-7, Хупер), "
                    "**стресс**, **усталость**, **болезненность** (1 очень низкая - 7 очень "
                    "высокая), **пульс** (пульс покоя), **вср** (rMSSD, мс); `вчера` или дата "
                    "(2026-03-01) для другого дня. Пришлите значения сейчас или что-то другое, "
                    "чтобы пропустить.",
        "logged": "Записано в `activities/{file}` за {day}: {values}.",
        "profile_help": "Ваши пороги (`activities/{file}`):\n\n{values}\n\nЗадать, например: "
                        "`/profile чссмакс 192 ftp 265`. Слова: **чссмакс**, **пульспокоя**, "
                        "**пано** (уд/мин), **ftp** (Вт), **темп** (пороговый темп, мин:с на км, "
                        "например 4:10), **вес** (кг).",
        "profile_empty": "пока не заданы",
        "profile_set": "Записано в `activities/{file}` (измерено {day}): {values}.",
        "nothing_written": "Ничего не записано: {why}",
        "unknown_word": "Я не знаю слова «{word}».",
        "no_value": "После «{word}» нужно число.",
        "lonely_number": "у числа {number} нет слова, что это (например `rpe {number}`).",
        "twice": "{name} указано дважды.",
        "sleep_ambiguous": "«{word} {number}»: часы сна или качество сна? Напишите `{word} "
                           "{number}ч` для часов сна или `качество {number}` для оценки "
                           "качества сна 1-7.",
        "hours_ambiguous": "«{number}ч»: часы сна или длительность тренировки? Напишите "
                           "`сон {number}ч` или `{minutes}мин`.",
        "wrong_unit": "«{word} {number}{unit}»: {unit} не единица для «{name}».",
        "bad_value": "{name}: {value} невозможно ({low:g}-{high:g} {unit}).",
        "not_whole": "{name}: {value} должно быть целым числом ({low:g}-{high:g}).",
        "bad_date": "«{word}» не дата вида 2026-03-01.",
        "future": "{day} ещё не наступило.",
        "nothing_given": "нечего записывать.",
        "file_broken": "файл `activities/{file}` не читается ({problem}); сначала исправьте "
                       "или удалите его.",
    },
}
# what each column or threshold is called in a confirmation or an explanation
NAMES = {
    "en": {"rpe": "RPE", "minutes": "minutes", "sleep_h": "hours slept",
           "resting_hr": "resting HR", "rmssd_ms": "rMSSD", "sleep_quality": "sleep quality",
           "stress": "stress", "fatigue": "fatigue", "soreness": "soreness",
           "hr_max_bpm": "HRmax", "hr_rest_bpm": "resting HR", "lthr_bpm": "LTHR",
           "ftp_w": "FTP", "threshold_pace_s_per_km": "threshold pace", "weight_kg": "weight"},
    "ru": {"rpe": "RPE", "minutes": "минуты", "sleep_h": "часы сна",
           "resting_hr": "пульс покоя", "rmssd_ms": "rMSSD", "sleep_quality": "качество сна",
           "stress": "стресс", "fatigue": "усталость", "soreness": "болезненность",
           "hr_max_bpm": "ЧСС макс", "hr_rest_bpm": "пульс покоя", "lthr_bpm": "ЧСС ПАНО",
           "ftp_w": "FTP", "threshold_pace_s_per_km": "пороговый темп", "weight_kg": "вес"},
}


def athlete() -> ModuleType:
    """:mod:`sportlab.athlete`, imported at the first /log or /profile: sportlab brings pandas and
    SciPy with it, 6 s at load 9, which the Coach's persona paid each time a chat opened (the
    athlete waited for it before the Coach was ready) while most chats never write a line."""
    import sportlab.athlete

    return sportlab.athlete


@functools.cache
def _specs() -> dict:
    return {s.name: s for s in (*athlete().LOG_COLUMNS, *athlete().THRESHOLDS)}


class Unclear(ValueError):
    """What the person typed cannot be written as it is; ``key`` and ``values`` say why."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values

    def say(self, lang: str) -> str:
        return text(lang, self.key, **self.values)


def text(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def name_of(lang: str, column: str) -> str:
    return NAMES.get(lang, NAMES["en"])[column]


@dataclass
class Entry:
    """What a ``/log`` or ``/profile`` line asks to write: the day and column -> value."""

    day: date
    values: dict[str, float]


def _words(body: str) -> list[str]:
    # "rpe=7, sleep: 7.5h" reads like "rpe 7 sleep 7.5h"
    return [w for w in re.split(r"[\s;=]+|,(?!\d)|(?<=[^\d\s]):", body.strip().lower()) if w]


def _number(raw: str) -> tuple[float, str] | None:
    """``(value, unit)`` of "7", "7,5", "60min", "7.5ч", "4:10" (minutes:seconds)."""
    match = NUMBER.match(raw)
    if not match:
        return None
    digits, unit = match.groups()
    if ":" in digits:
        minutes, seconds = digits.split(":")
        return int(minutes) * 60 + int(seconds), "min:s"
    return float(digits.replace(",", ".")), unit


def _checked(lang: str, column: str, value: float) -> float:
    """The value within its column's range (sportlab's :class:`Spec`), or :class:`Unclear`."""
    spec = _specs()[column]
    shown = f"{value:g}"
    try:
        return spec.check(value)
    except athlete().AthleteDataError:
        key = "not_whole" if spec.low <= value <= spec.high else "bad_value"
        raise Unclear(key, name=name_of(lang, column), value=shown, low=spec.low,
                      high=spec.high, unit=spec.unit) from None


def parse(body: str, words: dict[str, tuple[str, ...]], lang: str,
          today: date | None = None) -> Entry:
    """The day and values of a check-in or thresholds line (the command word removed)."""
    today = today or date.today()
    lookup = {w: column for column, names in words.items() for w in names}
    tokens, values, day = _words(body), {}, today
    is_log = "sleep_h" in words
    i = 0
    while i < len(tokens):
        word = tokens[i]
        i += 1
        if word in TODAY or word in YESTERDAY:
            day = today - timedelta(days=1 if word in YESTERDAY else 0)
            continue
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", word):
            try:
                day = date.fromisoformat(word)
            except ValueError:
                raise Unclear("bad_date", word=word) from None
            if day > today:
                raise Unclear("future", day=word)
            continue
        number = _number(word)
        if number is not None:
            value, unit = number
            if not unit and i < len(tokens) and tokens[i] in (*HOURS, *MINUTES):
                unit = tokens[i]  # "60 min"
                i += 1
            # "60min" alone names its column; "7.5h" alone does not (sleep or session?)
            if is_log and unit in MINUTES and unit:
                column = "minutes"
            elif is_log and unit in HOURS and unit:
                raise Unclear("hours_ambiguous", number=f"{value:g}", minutes=f"{value * 60:g}")
            else:
                raise Unclear("lonely_number", number=f"{value:g}")
        else:
            column = lookup.get(word)
            if column is None:
                raise Unclear("unknown_word", word=word)
            if i >= len(tokens) or (number := _number(tokens[i])) is None:
                raise Unclear("no_value", word=word)
            i += 1
            value, unit = number
            if (not unit and column in ("sleep_h", "minutes") and i < len(tokens)
                    and tokens[i] in (*HOURS, *MINUTES)):
                unit = tokens[i]  # "sleep 7.5 h", "мин 60 минут"
                i += 1
            column, value = _with_unit(lang, column, word, value, unit)
        if column in values:
            raise Unclear("twice", name=name_of(lang, column))
        values[column] = _checked(lang, column, value)
    if not values:
        raise Unclear("nothing_given")
    return Entry(day, values)


def _with_unit(lang: str, column: str, word: str, value: float, unit: str) -> tuple[str, float]:
    """The column and value once the unit is applied; a unit that does not fit is refused."""
    if column == "sleep_h":
        if unit in HOURS and unit:
            return column, value
        if not unit:
            # the one word people use for both: never guessed
            raise Unclear("sleep_ambiguous", word=word, number=f"{value:g}")
    elif column == "minutes":
        if not unit or unit in MINUTES:
            return column, value
        if unit in HOURS:
            return column, value * 60  # "min 1.5h": a session of 90 minutes
    elif column == "threshold_pace_s_per_km":
        if unit == "min:s":
            return column, value
        if not unit:
            return column, value  # seconds per km, as profile.toml stores it
    elif not unit:
        return column, value
    raise Unclear("wrong_unit", word=word, number=f"{value:g}", unit=unit,
                  name=name_of(lang, column))


def _shown(lang: str, values: dict[str, float]) -> str:
    parts = []
    for column, value in values.items():
        if column == "threshold_pace_s_per_km":
            shown = f"{int(value) // 60}:{int(value) % 60:02d}"
        else:
            shown = f"{value:g}"
        parts.append(f"{name_of(lang, column)} {shown}")
    return ", ".join(parts)


def log(activities: Path, body: str, lang: str, today: date | None = None) -> str:
    """Append the check-in in ``body`` (after ``/log``) to log.csv; the Coach's answer."""
    lab = athlete()
    try:
        entry = parse(body, LOG_WORDS, lang, today)
        activities.mkdir(exist_ok=True)
        lab.append_log(activities / lab.LOG_NAME, entry.day, entry.values)
    except Unclear as unclear:
        return text(lang, "nothing_written", why=unclear.say(lang))
    except lab.AthleteDataError as broken:
        return text(lang, "nothing_written", why=text(lang, "file_broken", file=lab.LOG_NAME,
                                                      problem=broken.problem))
    return text(lang, "logged", file=lab.LOG_NAME, day=entry.day.isoformat(),
                values=_shown(lang, entry.values))


def profile(activities: Path, body: str, lang: str, today: date | None = None) -> str:
    """Show (empty ``body``) or set thresholds in profile.toml; the Coach's answer."""
    lab = athlete()
    path = activities / lab.PROFILE_NAME
    try:
        if not body.strip():
            current = lab.read_profile(path)
            lines = [f"- {name_of(lang, s.name)}: {_shown(lang, {s.name: t.value}).split(' ')[-1]}"
                     f" {s.unit}" + (f" ({t.measured.isoformat()})" if t.measured else "")
                     for s in lab.THRESHOLDS if (t := getattr(current, s.name)) is not None]
            return text(lang, "profile_help", file=lab.PROFILE_NAME,
                        values="\n".join(lines) or text(lang, "profile_empty"))
        entry = parse(body, PROFILE_WORDS, lang, today)
        activities.mkdir(exist_ok=True)
        lab.set_profile_values(path, entry.values, measured=entry.day)
    except Unclear as unclear:
        return text(lang, "nothing_written", why=unclear.say(lang))
    except lab.AthleteDataError as broken:
        return text(lang, "nothing_written", why=text(lang, "file_broken", file=lab.PROFILE_NAME,
                                                      problem=broken))
    return text(lang, "profile_set", file=lab.PROFILE_NAME, day=entry.day.isoformat(),
                values=_shown(lang, entry.values))


def looks_like_log(body: str) -> bool:
    """Whether a message after a bare ``/log`` is the values asked for (a word of the check-in,
    or a number with its unit), not a new question."""
    words = {w for names in LOG_WORDS.values() for w in names}
    return any(t in words or ((n := _number(t)) is not None and n[1] in (*HOURS, *MINUTES)
                               and n[1] != "") for t in _words(body))


def command_of(body: str) -> tuple[str | None, str]:
    """``("/log", "rpe 7")`` for "/log rpe 7"; ``(None, body)`` for anything else."""
    head, _, rest = body.strip().partition(" ")
    head = head.lower()
    return (head, rest) if head in (LOG_COMMAND, PROFILE_COMMAND) else (None, body)
