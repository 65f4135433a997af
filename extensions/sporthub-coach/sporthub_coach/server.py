"""Server extension: ``GET sporthub/status`` (status.py), on the server's first start
``~/activities`` with a short README, and the squad sync (squad_sync.py) while the athlete shares.

This is the only place SportHub writes into a person's home, and only when the folder does not
exist yet: the Coach itself only reads it.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from pathlib import Path

from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from sporthub_coach import deferred, landing, language, squad_sync
from sporthub_coach.folder import ACTIVITIES
from sporthub_coach.status import StatusHandler

README = """# Your training data / Ваши тренировочные данные

Put your recordings here (FIT, GPX or TCX files, e.g. exported from Garmin Connect or Strava):
drag them into this folder in JupyterLab's file browser. The Coach reads them (it never changes
them) and answers from their numbers. Type `/data` in the chat to see what it sees.

Optional daily log: a file `log.csv` here, one line per day, with the header

    date,rpe,minutes,sleep_h,resting_hr,rmssd_ms,sleep_quality,stress,fatigue,soreness
    2026-03-02,6,75,7.5,48,62,2,3,3,2

(date as YYYY-MM-DD; session RPE 0-10 and minutes give the session-RPE load; the last four are
the Hooper ratings 1 (very good) to 7 (very bad); any column may be left empty; older files with
only the first six columns still work).

Optional thresholds: a file `profile.toml` here, e.g. `ftp_w = 265` and `hr_max_bpm = 192`
(also `hr_rest_bpm`, `lthr_bpm`, `threshold_pace_s_per_km`, `weight_kg`); without it the Coach
uses the highest heart rate on record and says so.

Положите сюда записи тренировок (файлы FIT, GPX или TCX): перетащите их в эту папку в браузере
файлов JupyterLab. Тренер их только читает и отвечает по вашим цифрам. Команда `/data` в чате
покажет, что он видит. Дневник по желанию: файл `log.csv` с заголовком, как выше (последние
четыре столбца — оценки по Хуперу от 1, очень хорошо, до 7, очень плохо). Пороги по желанию:
файл `profile.toml`, например `ftp_w = 265` и `hr_max_bpm = 192`.
"""


def make_activities_folder(root: Path) -> None:
    folder = root / ACTIVITIES
    if not folder.exists():
        folder.mkdir()
        (folder / "README.md").write_text(README, encoding="utf-8")


def _exit_without_teardown() -> None:
    """The last step of a server that has stopped: leave at once.

    The server has shut its kernels and extensions down by now; what remains is the
    interpreter's own teardown, which garbage-collects everything Jupyter AI imported (LiteLLM,
    LangChain): measured 14 s on a busy 2-core machine, during which the hub waits and then
    kills. Nothing is lost by skipping it: logs are flushed here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def _load_jupyter_server_extension(serverapp) -> None:
    home = Path(serverapp.root_dir).expanduser()
    make_activities_folder(home)
    # while the athlete shares with the club's staff, their files follow to the squad service
    squad_sync.start(home, serverapp.io_loop)
    # registered once the server runs (the callback runs when its loop starts): a server that
    # fails to start keeps its own exit status
    IOLoop.current().add_callback(atexit.register, _exit_without_teardown)
    if landing.is_athlete():
        landing.make_coach_chat(Path(serverapp.root_dir).expanduser(),
                                language.interface_language(), landing.is_demo(),
                                landing.can_share())
    # once every extension is loaded (jupyterlab's handlers and its workspaces folder exist),
    # before the first request
    IOLoop.current().add_callback(_after_extensions, serverapp)
    # Jupyternaut's imports once the server answers, not before (deferred.py)
    IOLoop.current().add_callback(deferred.start, serverapp)


def _after_extensions(serverapp) -> None:
    if not language.follow_the_person(serverapp.web_app):
        serverapp.log.warning("SportHub: JupyterLab's translations API not found; JupyterLab "
                              "will not follow the person's language")
    if landing.is_athlete():
        labs = serverapp.extension_manager.extension_apps.get("jupyterlab") or set()
        for lab in labs:
            if getattr(lab, "workspaces_dir", ""):
                landing.make_workspace(Path(lab.workspaces_dir))
    base_url = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base_url, "sporthub/status"),
                                            StatusHandler)])
