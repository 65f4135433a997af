"""The Coach: a Jupyter AI persona for athletes, answering through the SportHub gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_ai_persona_manager import BasePersona, PersonaDefaults
from jupyter_ai_persona_manager.awareness_models import CommandOption
from jupyterlab_chat.models import Message

from sporthub_coach import checkin, landing, sharing
from sporthub_coach.folder import ACTIVITIES
from sporthub_coach.gateway import GatewayRefused, Place, stream_chat
from sporthub_coach.language import interface_language
from sporthub_coach.messages import refusal, say

if TYPE_CHECKING:
    from sporthub_coach.athlete_data import Summary

HISTORY_MESSAGES = 8
# coaching answers are short; small models also loop on a sentence without a repetition penalty
ANSWER_TOKENS = 300
FREQUENCY_PENALTY = 0.8
DATA_COMMAND = "/data"

SYSTEM_PROMPT = """You are Coach, the AI assistant of a sports club. You help athletes understand \
their training: load, recovery, pacing, sleep, nutrition basics and planning. Be encouraging, \
concrete and brief. Base advice on established sports science and say when evidence is thin. \
Never diagnose: for pain, injury, illness or medication, tell the athlete to see the club's \
medical staff. Answer in the language of the athlete's question (Russian if they write in \
Russian, English if they write in English). The athlete's own training data, computed from \
their files, follows; quote its numbers when they matter, and do not invent numbers that are \
not there."""


class CoachPersona(BasePersona):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Jupyter AI 3.2's convention: a persona advertises its own slash commands, and the
        # message ("/data ...") reaches process_message unchanged
        self.report_slash_commands([
            CommandOption(name=DATA_COMMAND,
                          description="Show the training summary the Coach answers from"),
            CommandOption(name=sharing.COMMAND,
                          description="Share your training data with the club's staff: "
                                      "/share on, /share off, /share (state and who read it)"),
            CommandOption(name=checkin.LOG_COMMAND,
                          description="Daily check-in into activities/log.csv: /log rpe 7 "
                                      "60min sleep 7.5h soreness 3"),
            CommandOption(name=checkin.PROFILE_COMMAND,
                          description="Show or set your thresholds (activities/profile.toml): "
                                      "/profile hrmax 192 ftp 265"),
        ])
        # after a bare "/log" the Coach asked for the values: the next message may be them
        self._awaiting_log = False

    @property
    def defaults(self) -> PersonaDefaults:
        return PersonaDefaults(
            name="Coach",
            description="The club's AI coach: training, recovery and planning questions.",
            avatar_path=str(Path(__file__).with_name("avatar.svg")),
            system_prompt=SYSTEM_PROMPT,
        )

    @property
    def activities(self) -> Path:
        # the server's root (the person's home), where the contents API puts their uploads
        return Path(self.parent.root_dir) / ACTIVITIES

    # the language of the latest question, for a failure that comes with no message
    _last_lang = "en"

    async def process_message(self, message: Message) -> None:
        # the Coach's own words follow the person's interface language (JupyterLab's); the
        # model answers a free question in the question's language (SYSTEM_PROMPT)
        lang = self._last_lang = interface_language()
        if message.body.strip().split(maxsplit=1)[:1] == [sharing.COMMAND]:
            # the athlete's own switch: the squad service, never the model
            self._say(await sharing.answer(message.body, lang))
            return
        self._demo_notice(lang)
        if await self._check_in(message.body, lang):
            return
        # sportlab (pandas, scipy) loads at the first question, not with the server: a user's
        # server must be up within the hub's 30 s
        from sporthub_coach.athlete_data import summarise

        # reading a season of files is CPU work: off the server's event loop
        self.set_status(say(lang, "reading"))
        summary = await asyncio.to_thread(summarise, self.activities)
        if message.body.strip().split(maxsplit=1)[:1] == [DATA_COMMAND]:
            self._say(f"{say(lang, 'data_title')}\n\n```\n{summary.text}\n```")
            return

        def show_place(place: Place) -> None:
            # the typing indicator under the chat: "Coach is waiting: 3rd in line, about 2 min"
            self.set_status(say(lang, "waiting", place=place.describe(lang)))

        try:
            await self.stream_message(self._answer(
                stream_chat(self._conversation(message, summary), show_place,
                            max_tokens=ANSWER_TOKENS, frequency_penalty=FREQUENCY_PENALTY),
                summary, lang))
        except GatewayRefused as refused:
            self._say(refusal(lang, refused.code, refused.status, refused.retry_after_s))

    def _demo_notice(self, lang: str) -> None:
        """Once per chat, when the model is a demo: its answers are not advice."""
        if not landing.is_demo():
            return
        said = [m.body for m in self.chat.get_messages() if m.sender == self.id and m.body]
        if not landing.has_demo_notice(said):
            self.send_message(f"_{landing.DEMO_NOTICE.get(lang, landing.DEMO_NOTICE['en'])}_")

    async def _check_in(self, body: str, lang: str) -> bool:
        """``/log`` and ``/profile`` (and the values asked for after a bare ``/log``): the
        only writes the Coach makes, into the athlete's own activities folder. True if handled."""
        command, rest = checkin.command_of(body)
        awaiting, self._awaiting_log = self._awaiting_log, False
        if command is None and awaiting and checkin.looks_like_log(body):
            command = checkin.LOG_COMMAND
        if command == checkin.LOG_COMMAND and not rest.strip():
            self._awaiting_log = True
            self._say(checkin.text(lang, "log_help"))
            return True
        if command == checkin.LOG_COMMAND:
            self._say(await asyncio.to_thread(checkin.log, self.activities, rest, lang))
            return True
        if command == checkin.PROFILE_COMMAND:
            self._say(await asyncio.to_thread(checkin.profile, self.activities, rest, lang))
            return True
        return False

    async def handle_uncaught_exception(self, exc: Exception) -> None:
        # a person gets a sentence, never a traceback (the server log has the details)
        self._say(refusal(self._last_lang, None, None, None))

    def _say(self, body: str) -> None:
        """A whole message from the Coach; the typing indicator ends after it, as after a
        streamed answer (clients wait for that to know the Coach is done)."""
        self.send_message(body)
        self.clear_status()

    @staticmethod
    async def _answer(reply: AsyncIterator[str], summary: Summary, lang: str
                      ) -> AsyncIterator[str]:
        """The model's answer, then which of the athlete's files it was given."""
        async for text in reply:
            yield text
        used = (say(lang, "data_used", files=", ".join(summary.files_used))
                if summary.files_used else say(lang, "no_data_used"))
        yield f"\n\n_{used}_"

    def _conversation(self, message: Message, summary: Summary) -> list[dict]:
        """The system prompt with the athlete's data, and the latest exchanges."""
        history = [m for m in self.chat.get_messages() if m.id != message.id][-HISTORY_MESSAGES:]
        # the welcome is left out: ~250 tokens (~650 in Russian) the model would read before
        # each of the first answers, the largest part of their wait on the embedded model
        turns = [{"role": "assistant" if m.sender == self.id else "user", "content": m.body}
                 for m in history if m.body and not m.deleted
                 and not (m.sender == self.id and landing.is_welcome(m.body))]
        system = f"{SYSTEM_PROMPT}\n\n{summary.text}"
        return [{"role": "system", "content": system}, *turns,
                {"role": "user", "content": message.body}]
