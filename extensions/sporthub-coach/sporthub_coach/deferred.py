"""Jupyter AI's Jupyternaut (and its ACP agents) loaded after the server's start, not during it.

Importing Jupyternaut imports LiteLLM, LangChain and LangGraph: measured 8.8 s of a user
server's start at load 9 on 2 cores, 16 s under importtime (jupyter_ai_jupyternaut.extension_app),
more than the whole start of a plain JupyterLab (7-11 s there). The Coach needs none of it: it
talks to the gateway itself. So jupyter_server_config.py leaves these server extensions out of
the start, and this module imports them on a thread once the server runs (while the person's
browser loads JupyterLab), then loads them as Jupyter Server would have and adds their personas
to the chats already open. Nothing is dropped: Jupyternaut answers as before, some seconds after
the Coach is ready instead of before it. The same thread first imports what the Coach's first
answer needs (sportlab), which is no longer imported when a chat opens.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import traceback
import weakref

from jupyter_ai_persona_manager import BasePersona, PersonaManager, PersonaRequirementsUnmet
from jupyter_ai_persona_manager.handlers import build_avatar_cache
from jupyter_ai_persona_manager.persona_manager import EPG_NAME
from tornado.ioloop import IOLoop

# server extensions (also the packages of their personas) left out of the start
EXTENSIONS = ("jupyter_ai_jupyternaut", "jupyter_ai_litellm", "jupyter_ai_acp_client")
# imported first, on the same thread: what the Coach's first answer reads the athlete's files
# with (sportlab: pandas, SciPy; ~10 s at load 12), so that a first question waits less for it
PRELOAD = ("sporthub_coach.athlete_data",)
# pending -> loaded (or failed: the error is logged, the other personas are unaffected)
_state = {"pending": True}
# persona managers made while pending: they get the deferred personas when these load
_waiting: weakref.WeakSet[SportHubPersonaManager] = weakref.WeakSet()


def deferred(entry_point_value: str) -> bool:
    """Whether a persona entry point (``module:Class``) belongs to a deferred extension."""
    return entry_point_value.split(":")[0].split(".")[0] in EXTENSIONS


def deferred_persona(persona_id: str) -> bool:
    """Whether a persona id (``jupyter-ai-personas::<package>::<class>``) is a deferred one's."""
    parts = persona_id.split("::")
    return len(parts) == 3 and parts[1] in EXTENSIONS


def persona_entry_points(select) -> list:
    from importlib_metadata import entry_points

    return [ep for ep in entry_points().select(group=EPG_NAME) if select(ep.value)]


def start(serverapp) -> None:
    """Import what is preloaded and the deferred extensions on a thread; load the extensions on
    the server's loop after."""
    loop = IOLoop.current()

    def import_them() -> None:
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the first question imports it again, and says why
                loop.add_callback(serverapp.log.warning, "SportHub: %s not preloaded:\n%s",
                                  name, traceback.format_exc())
        try:
            for name in EXTENSIONS:
                importlib.import_module(name)
            for ep in persona_entry_points(deferred):
                # an ACP agent whose program is not installed says so when imported
                with contextlib.suppress(PersonaRequirementsUnmet):
                    importlib.import_module(ep.value.split(":")[0])
        except Exception:  # noqa: BLE001 - logged; the Coach goes on without them
            loop.add_callback(finish, serverapp, traceback.format_exc())
        else:
            loop.add_callback(finish, serverapp, None)

    threading.Thread(target=import_them, name="sporthub-deferred-imports", daemon=True).start()


async def finish(serverapp, error: str | None) -> None:
    _state["pending"] = False
    if error:
        serverapp.log.error("SportHub: Jupyternaut could not be loaded:\n%s", error)
        return
    manager = serverapp.extension_manager
    for name in EXTENSIONS:
        if manager.add_extension(name, enabled=True):
            manager.link_extension(name)
            manager.load_extension(name)
            await manager.start_extension(name)
    serverapp.log.info("SportHub: loaded after the start: %s", ", ".join(EXTENSIONS))
    # the next chat loads every persona class again, the deferred ones included
    PersonaManager._ep_persona_classes = None
    for persona_manager in list(_waiting):
        persona_manager.add_deferred_personas()


class SportHubPersonaManager(PersonaManager):
    """Jupyter AI's persona manager, which starts a chat without the deferred personas while
    they load (``c.PersonaManagerExtension.persona_manager_class``)."""

    # messages sent to a deferred persona before it was there: (chat id, message)
    _held: list | None = None

    def _init_persona_classes(self) -> None:
        if _state["pending"]:
            _waiting.add(self)
            if PersonaManager._ep_persona_classes is None:
                # Jupyter AI's class-level list, without the deferred entry points (their
                # modules are being imported): the chat starts with the others
                PersonaManager._ep_persona_classes = [
                    item for item in map(_load_class,
                                         persona_entry_points(lambda v: not deferred(v)))
                    if item is not None]
        super()._init_persona_classes()

    def on_chat_message(self, chat_id: str, message) -> None:
        persona_id = (message.metadata or {}).get(self.TO_PERSONA_METADATA_KEY) or ""
        if _state["pending"] and deferred_persona(persona_id):
            # for Jupyternaut, still loading: it answers once it is there
            self._held = [*(self._held or []), (chat_id, message)]
            return
        super().on_chat_message(chat_id, message)

    def add_deferred_personas(self) -> None:
        """The deferred personas join this chat (once their modules are imported) and answer
        what was sent to them meanwhile."""
        present = {type(persona) for persona in self._personas.values()}
        for ep in persona_entry_points(deferred):
            item = _load_class(ep)
            if item is None or item["persona_class"] in present or item["traceback"]:
                continue
            try:
                persona = item["persona_class"](parent=self, chat=self.chat)
            except Exception:  # as Jupyter AI does: log it, keep the others
                self.log.exception("persona %s failed to start", ep.name)
                continue
            self._personas.setdefault(persona.id, persona)
        self._publish_persona_list()
        build_avatar_cache(self.parent.serverapp.web_app.settings["jupyter-ai"]
                           ["persona-managers"])
        held, self._held = self._held or [], None
        for chat_id, message in held:
            super().on_chat_message(chat_id, message)


def _load_class(ep) -> dict | None:
    """An entry point's persona class as Jupyter AI lists it; None if its requirements are
    unmet (as Jupyter AI skips those)."""
    try:
        persona_class = ep.load()
        assert issubclass(persona_class, BasePersona)
    except PersonaRequirementsUnmet:
        return None
    except Exception:  # noqa: BLE001 - listed with its traceback, as Jupyter AI does
        return {"module": ep.name, "persona_class": None, "traceback": traceback.format_exc()}
    return {"module": ep.name, "persona_class": persona_class, "traceback": None}
