"""The Coach's ``/share``: the athlete's switch for sharing with the club's staff, in the chat.

``/share on`` / ``/share off`` (Russian: ``/share вкл`` / ``/share выкл``) change it; ``/share``
alone shows the state, what is stored, what was skipped and why, and who read the data. The
answer is the Coach's own text (never the model's), in the person's interface language like all
its own texts (issue 21's one rule); the Russian words are understood in either.
"""

from __future__ import annotations

from datetime import datetime

from sporthub_coach import squad_sync

COMMAND = "/share"
ON = {"on", "yes", "вкл", "включить", "да"}
OFF = {"off", "no", "выкл", "выключить", "нет"}

TEXTS = {
    "en": {
        "on": "Sharing with the club's staff is **on**.",
        "off": "Sharing with the club's staff is **off**: nothing of yours is stored by the "
               "squad service.",
        "turned_on": "Done: sharing is on. Your server sends your recordings, log.csv and "
                     "your thresholds (profile.toml) within a minute; `/share off` takes them back at once.",
        "turned_off": "Done: sharing is off, and every shared copy was deleted.",
        "stored": "Stored: {files} files, {sessions} sessions, {days} daily log lines "
                  "(last update {when} UTC).",
        "skipped": "Not sent:",
        "reads": "Who read your data:",
        "no_reads": "Nobody has read your data.",
        "record": "Your decisions:",
        "usage": "Use `/share on`, `/share off`, or `/share` to see the state.",
        "minor": "You are registered as a minor: sharing needs your guardian's consent, "
                 "which the club's admin records first.",
        "unavailable": "The squad service cannot be reached right now ({why}). Please try "
                       "again in a minute.",
        "never": "never",
        "more": "and {n} more {reason}",
    },
    "ru": {
        "on": "Доступ тренерского штаба клуба к вашим данным **открыт**.",
        "off": "Доступ тренерского штаба клуба **закрыт**: сервис команды ничего вашего не "
               "хранит.",
        "turned_on": "Готово: доступ открыт. Ваш сервер отправит записи, log.csv и ваши "
                     "пороги (profile.toml) в течение минуты; `/share выкл` сразу всё отзовёт.",
        "turned_off": "Готово: доступ закрыт, все переданные копии удалены.",
        "stored": "Хранится: файлов {files}, тренировок {sessions}, строк дневника {days} "
                  "(последнее обновление {when} UTC).",
        "skipped": "Не отправлено:",
        "reads": "Кто смотрел ваши данные:",
        "no_reads": "Ваши данные никто не смотрел.",
        "record": "Ваши решения:",
        "usage": "Команды: `/share вкл`, `/share выкл` или `/share`, чтобы увидеть состояние.",
        "minor": "Вы зарегистрированы как несовершеннолетний: для доступа нужно согласие "
                 "законного представителя, которое сначала вносит администратор клуба.",
        "unavailable": "Сервис команды сейчас недоступен ({why}). Попробуйте через минуту.",
        "never": "ещё не было",
        "more": "и ещё {n}: {reason}",
    },
}
CHANGES_RU = {"share on": "доступ открыт", "share off": "доступ закрыт",
              "guardian consent": "согласие законного представителя",
              "guardian consent withdrawn": "согласие законного представителя отозвано",
              "athletes list": "список спортсменов", "sessions": "тренировки",
              "wellness": "дневник самочувствия"}


def _t(lang: str, key: str, **values) -> str:
    return TEXTS[lang][key].format(**values)


def _when(text: str | None, lang: str) -> str:
    if not text:
        return _t(lang, "never")
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")


def _word(lang: str, text: str) -> str:
    if lang != "ru":
        return text
    if text.startswith("file "):
        return "файл " + text[5:]
    return CHANGES_RU.get(text, text)


def describe(me: dict, lang: str, skipped: dict[str, str] | None = None) -> str:
    lines = [_t(lang, "on" if me["sharing"] else "off")]
    # what the service refused is the service's to say (kept until the file changes or goes)
    skipped = {r["name"]: r["reason"] for r in me.get("refused") or ()} | (skipped or {})
    if me["sharing"]:
        stored = me["stored"]
        lines.append(_t(lang, "stored", files=len(stored["files"]), sessions=stored["sessions"],
                        days=stored["wellness_days"], when=_when(me.get("last_sync"), lang)))
    if skipped:
        lines.append(_t(lang, "skipped"))
        # one line each, except a reason shared by many files (a limit reached): counted
        by_reason: dict[str, list[str]] = {}
        for name, reason in sorted(skipped.items()):
            by_reason.setdefault(reason, []).append(name)
        for reason, names in by_reason.items():
            lines += [f"- {name}: {reason}" for name in names[:3]]
            if len(names) > 3:
                lines.append("- " + _t(lang, "more", n=len(names) - 3, reason=reason))
    reads = me.get("reads") or []
    if reads:
        lines.append(_t(lang, "reads"))
        lines += [f"- {_when(r['at'], lang)} UTC: {r['reader']}, {_word(lang, r['what'])}"
                  for r in reads[:20]]
    else:
        lines.append(_t(lang, "no_reads"))
    record = me.get("consent_record") or []
    if record:
        lines.append(_t(lang, "record"))
        lines += [f"- {_when(e['at'], lang)} UTC: {_word(lang, e['change'])} ({e['by']}"
                  + (f", {e['address']}" if e.get("address") else "") + ")"
                  for e in record[-5:]]
    return "\n".join(lines)


async def answer(body: str, lang: str = "en") -> str:
    """The Coach's reply to a ``/share ...`` message, in ``lang`` (the interface's)."""
    lang = lang if lang in TEXTS else "en"
    words = body.strip().split()[1:]
    try:
        client = squad_sync.SquadClient()
        if not words:
            sync = squad_sync.current()
            state = await sync.sync_once() if sync else None
            return describe(await client.me(), lang, state.skipped if state else None)
        word = words[0].lower()
        if word not in ON | OFF:
            return _t(lang, "usage")
        status, reply = await client.set_share(word in ON)
    except squad_sync.SquadUnavailable as e:
        return _t(lang, "unavailable", why=str(e))
    if status != 200:
        code = (reply.get("error") or {}).get("code")
        return _t(lang, "minor") if code == "guardian_consent_needed" else \
            _t(lang, "unavailable", why=(reply.get("error") or {}).get("message", status))
    if word in ON:
        sync = squad_sync.current()
        if sync is not None:
            sync.wake()
        return _t(lang, "turned_on")
    return _t(lang, "turned_off")
