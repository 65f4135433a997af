"""The Coach: a Jupyter AI persona for athletes, answering through the SportHub gateway."""

from __future__ import annotations

from pathlib import Path

from jupyter_ai_persona_manager import BasePersona, PersonaDefaults
from jupyterlab_chat.models import Message

from sporthub_coach.gateway import GatewayRefused, Place, stream_chat

HISTORY_MESSAGES = 8
# coaching answers are short; small models also loop on a sentence without a repetition penalty
ANSWER_TOKENS = 300
FREQUENCY_PENALTY = 0.8

SYSTEM_PROMPT = """You are Coach, the AI assistant of a sports club. You help athletes understand \
their training: load, recovery, pacing, sleep, nutrition basics and planning. Be encouraging, \
concrete and brief. Base advice on established sports science and say when evidence is thin. \
Never diagnose: for pain, injury, illness or medication, tell the athlete to see the club's \
medical staff. Do not invent numbers about the athlete; ask for the data you need."""


class CoachPersona(BasePersona):
    @property
    def defaults(self) -> PersonaDefaults:
        return PersonaDefaults(
            name="Coach",
            description="The club's AI coach: training, recovery and planning questions.",
            avatar_path=str(Path(__file__).with_name("avatar.svg")),
            system_prompt=SYSTEM_PROMPT,
        )

    async def process_message(self, message: Message) -> None:
        def show_place(place: Place) -> None:
            # the typing indicator under the chat: "Coach is waiting: 3rd in line, about 2 min"
            self.set_status(f"is waiting: {place.describe()}")

        try:
            await self.stream_message(stream_chat(
                self._conversation(message), show_place, max_tokens=ANSWER_TOKENS,
                frequency_penalty=FREQUENCY_PENALTY))
        except GatewayRefused as refused:
            self.send_message(str(refused))

    def _conversation(self, message: Message) -> list[dict]:
        """The system prompt and the latest exchanges between this person and the coach."""
        history = [m for m in self.chat.get_messages() if m.id != message.id][-HISTORY_MESSAGES:]
        turns = [{"role": "assistant" if m.sender == self.id else "user", "content": m.body}
                 for m in history if m.body and not m.deleted]
        return [{"role": "system", "content": SYSTEM_PROMPT}, *turns,
                {"role": "user", "content": message.body}]
