"""The club's squad in a staff member's notebook: what the athletes who share have shared.

``squad = sportlab.squad.connect()`` uses the notebook server's own hub token
(``JUPYTERHUB_API_TOKEN``) and the squad service's address (``SQUAD_API_URL``), both set by
SportHub for every server: nothing to configure. Every read is logged by the service and shown
to the athlete it concerns; an athlete who stops sharing disappears at once (404).

* ``squad.athletes()``: one row per sharing athlete you may see (last sync, counts);
* ``squad.sessions(name=None)``: ``summarize_session`` rows (:mod:`sportlab.session`), one per
  recording, with an ``athlete`` column; ``start``/``date`` as timestamps;
* ``squad.wellness(name=None)``: the athletes' ``log.csv`` lines (:mod:`sportlab.athlete`
  columns), with ``athlete``;
* ``squad.file(name, file)``: one recording read with :func:`sportlab.read_activity` (a
  session row's ``file``; ``<zip>/<member>`` for one inside a shared archive).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx
import pandas as pd

from sportlab.archives import read_archive
from sportlab.readers import ActivityReadError, read_activity


class SquadError(RuntimeError):
    """The squad service refused or could not be reached; the message is the service's."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{message} (HTTP {status})")
        self.status = status


class Squad:
    def __init__(self, url: str, token: str, timeout: float = 60):
        self.url = url.rstrip("/")
        self._client = httpx.Client(timeout=timeout,
                                    headers={"Authorization": f"token {token}"})

    def _get(self, path: str) -> httpx.Response:
        response = self._client.get(f"{self.url}/{path}")
        if response.status_code != 200:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise SquadError(response.status_code, message)
        return response

    def athletes(self) -> pd.DataFrame:
        frame = pd.DataFrame(self._get("athletes").json(),
                             columns=["name", "last_sync", "files", "sessions", "wellness_days"])
        frame["last_sync"] = pd.to_datetime(frame["last_sync"], utc=True)
        return frame

    def _names(self, name: str | None) -> list[str]:
        return [name] if name is not None else list(self.athletes()["name"])

    def sessions(self, name: str | None = None) -> pd.DataFrame:
        rows = [{"athlete": athlete, **row} for athlete in self._names(name)
                for row in self._get(f"athletes/{quote(athlete, safe='')}/sessions").json()]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return pd.DataFrame(columns=["athlete", "file", "start", "date"])
        frame["start"] = pd.to_datetime(frame["start"], utc=True, format="ISO8601")
        frame["date"] = pd.to_datetime(frame["date"])
        return frame.sort_values(["athlete", "start"]).reset_index(drop=True)

    def wellness(self, name: str | None = None) -> pd.DataFrame:
        rows = [{"athlete": athlete, **row} for athlete in self._names(name)
                for row in self._get(f"athletes/{quote(athlete, safe='')}/wellness").json()]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return pd.DataFrame(columns=["athlete", "date"])
        frame["date"] = pd.to_datetime(frame["date"])
        return frame.sort_values(["athlete", "date"]).reset_index(drop=True)

    def file(self, name: str, file: str) -> pd.DataFrame:
        """One shared recording, read with sportlab's readers (the suffix picks the format,
        ``.gz`` too). ``file`` is a session row's ``file``: a recording inside a shared .zip is
        ``<zip>/<member>``, read from the archive."""
        stored, _, member = file.partition("/")
        data = self._get(f"athletes/{quote(name, safe='')}/files/{quote(stored, safe='')}"
                         ).content
        with tempfile.TemporaryDirectory(prefix="sportlab-squad-") as folder:
            path = Path(folder) / Path(stored).name
            path.write_bytes(data)
            if not member:
                return read_activity(path)
            frames = read_archive(path, on_error="skip")
            if member not in frames:
                raise ActivityReadError(path, f"{member}: not a readable recording in the "
                                        "archive")
            return frames[member]

    def close(self) -> None:
        self._client.close()


def connect(url: str | None = None, token: str | None = None) -> Squad:
    """The squad as this server's owner (a staff member) sees it."""
    url = url or os.environ.get("SQUAD_API_URL")
    token = token or os.environ.get("JUPYTERHUB_API_TOKEN")
    if not url or not token:
        raise SquadError(0, "No squad service here: sportlab.squad works in a SportHub "
                         "notebook server (SQUAD_API_URL and JUPYTERHUB_API_TOKEN unset)")
    return Squad(url, token)


__all__ = ["Squad", "SquadError", "connect"]
