"""Where an athlete lands: their Coach chat (``coach.chat``) open in JupyterLab's main area.

An athlete comes for the Coach, not for notebooks: on their server's start (the hub sets
``COACH_LANDING=coach`` for members of ``athletes`` who are not ``scientists``):

- ``coach.chat`` is made if missing, with the Coach's welcome in the person's language. An
  existing chat is theirs and is never written over.
- JupyterLab's default workspace is made if the person has none yet, with that chat open in the
  main area (so no Launcher). JupyterLab saves the layout as the person changes it: a chat they
  closed stays closed after a reload; the workspace is never written again.

Everyone else keeps JupyterLab's own start (the Launcher).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

CHAT_FILE = "coach.chat"
COACH_ID = "jupyter-ai-personas::sporthub_coach::CoachPersona"
WORKSPACE = "default"

WELCOME = {
    "en": "Hello! I am the Coach, the club's AI assistant. Ask me about your training: load, "
          "recovery, pacing, sleep and planning.\n\n"
          "- Put your recordings (FIT, GPX or TCX, e.g. from Garmin Connect or Strava) into the "
          "**activities** folder in the file browser on the left: I answer from their numbers.\n"
          "- `/data` shows what I see in your files.\n"
          "- `/log` records your day: `/log rpe 7 60min sleep 7.5h soreness 3`.\n"
          "- `/profile` shows and sets your thresholds: `/profile hrmax 192 ftp 265`.\n"
          "{share}\n"
          "One AI model serves the whole club: when others are asking, your question waits in "
          "line, and the status bar at the bottom shows your place and the wait. Each person "
          "has a daily budget of tokens (the status bar shows it too); it resets every day.",
    "ru": "Здравствуйте! Я Тренер, ИИ-ассистент клуба. Спрашивайте о тренировках: нагрузка, "
          "восстановление, темп, сон и планирование.\n\n"
          "- Положите записи тренировок (FIT, GPX или TCX, например из Garmin Connect или "
          "Strava) в папку **activities** в браузере файлов слева: я отвечаю по их цифрам.\n"
          "- `/data` покажет, что я вижу в ваших файлах.\n"
          "- `/log` записывает ваш день: `/log rpe 7 60мин сон 7.5ч болезненность 3`.\n"
          "- `/profile` показывает и задаёт ваши пороги: `/profile чссмакс 192 ftp 265`.\n"
          "{share}\n"
          "Одна модель ИИ отвечает всему клубу: когда спрашивают другие, ваш вопрос ждёт в "
          "очереди, а строка состояния внизу показывает ваше место и ожидание. У каждого есть "
          "дневной лимит токенов (он тоже виден в строке состояния); он обновляется каждый день.",
}
# the welcome's line on /share, where the club runs the squad service (SQUAD_API_URL)
SHARE = {
    "en": "- `/share on` lets the club's staff see your recordings and log; `/share off` takes "
          "them back at once, `/share` shows who read them. Until you switch it on, nothing "
          "is shared.\n",
    "ru": "- `/share вкл` открывает тренерскому штабу клуба ваши записи и дневник; `/share выкл` "
          "сразу всё отзовёт, `/share` покажет, кто их смотрел. Пока вы не включите доступ, "
          "ничего не передаётся.\n",
}
DEMO_NOTICE = {
    "en": "Note: the AI answering here is a small demo model for trying SportHub. Its answers "
          "are often wrong and are not training or medical advice.",
    "ru": "Обратите внимание: здесь отвечает маленькая демонстрационная модель ИИ, чтобы "
          "попробовать SportHub. Её ответы часто ошибочны и не являются тренировочным или "
          "медицинским советом.",
}
# how the Coach recognises its own notice in a chat's history (once per chat)
DEMO_MARK = {"en": "small demo model", "ru": "демонстрационная модель"}


def is_demo() -> bool:
    """The hub marks the model as a demo (the embedded one, or a backend with ``"demo": true``)."""
    return os.environ.get("LLM_GATEWAY_DEMO") == "1"


def is_athlete() -> bool:
    return os.environ.get("COACH_LANDING") == "coach"


def can_share() -> bool:
    """The hub gave this server the squad service's address, so ``/share`` works."""
    return bool(os.environ.get("SQUAD_API_URL"))


def welcome(lang: str, demo: bool, share: bool = False) -> str:
    lang = lang if lang in WELCOME else "en"
    text = WELCOME[lang].format(share=SHARE[lang] if share else "")
    return f"{text}\n\n_{DEMO_NOTICE[lang]}_" if demo else text


def is_welcome(body: str) -> bool:
    """The Coach's welcome (any language, with or without the demo notice): not conversation,
    so it is not sent to the model again with each question (a few hundred tokens to read)."""
    # what comes before the optional /share paragraph is the same in every welcome
    return any(body.startswith(text.partition("{share}")[0]) for text in WELCOME.values())


def has_demo_notice(bodies: list[str]) -> bool:
    return any(mark in body for body in bodies for mark in DEMO_MARK.values())


def make_coach_chat(root: Path, lang: str, demo: bool, share: bool = False) -> bool:
    """``coach.chat`` with the welcome, unless the person has one; True if made."""
    document = {
        "messages": [{"type": "msg", "id": str(uuid.uuid4()), "time": time.time(),
                      "sender": COACH_ID, "body": welcome(lang, demo, share),
                      "raw_time": False}],
        "users": {COACH_ID: {"username": COACH_ID, "name": "Coach", "display_name": "Coach",
                             "bot": True}},
        "attachments": {},
        # the chat's id, which jupyterlab-chat would otherwise make only once the document has
        # first been loaded and saved: its front end holds the chat as not ready (the input
        # without its context) until the id is known, about a second more on a first login
        "metadata": {"id": str(uuid.uuid4())},
    }
    try:
        # exclusive: a chat that exists (or appears meanwhile) is the person's, never replaced
        with (root / CHAT_FILE).open("x", encoding="utf-8") as out:
            json.dump(document, out, indent=2, ensure_ascii=False)
    except FileExistsError:
        return False
    return True


def workspace_with_chat_open() -> dict:
    """JupyterLab's default workspace: the Coach's chat the one tab of the main area."""
    key = f"chat:{CHAT_FILE}"
    return {
        "data": {
            "layout-restorer:data": {
                "main": {"dock": {"type": "tab-area", "currentIndex": 0, "widgets": [key]},
                         "current": key},
            },
            # jupyterlab-chat restores a chat with its open command and these arguments
            key: {"data": {"filepath": CHAT_FILE, "inSidePanel": False, "startup": True}},
        },
        "metadata": {"id": WORKSPACE},
    }


def make_workspace(workspaces_dir: Path) -> bool:
    """The default workspace with the chat open, unless the person has one; True if made."""
    from jupyterlab_server.workspaces_handler import WorkspacesManager

    manager = WorkspacesManager(str(workspaces_dir))
    if manager.load(WORKSPACE).get("data"):
        return False  # their own layout
    manager.save(WORKSPACE, json.dumps(workspace_with_chat_open()))
    return True
