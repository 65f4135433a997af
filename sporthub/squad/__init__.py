"""The squad service: athletes share their training with the club's staff, by consent.

A hub-managed service (``/services/squad/``, its own process) that never reads people's homes:
each athlete's own JupyterLab server sends it their ``~/activities`` while they share
(``sporthub_coach.squad_sync``), and staff read it with ``sportlab.squad``. See ``app.py`` for the
API, ``access.py`` for who is staff, ``store.py`` for what is kept.

The privacy helper's store entry: :func:`export_person` and :func:`erase_person`.
"""

from __future__ import annotations


def _store(settings=None):
    from sporthub.settings import load_settings
    from sporthub.squad.store import Store, migrate

    settings = settings or load_settings()
    migrate(settings.squad_db_url)
    return Store(settings.squad_db_url, settings.squad_store_dir)


def export_person(name: str, settings=None) -> dict[str, bytes]:
    """Everything the squad keeps about ``name``: ``{path in the export: content}`` (their shared
    files under ``squad/files/``, and ``squad/record.json``: sharing state, consent record,
    session and wellness rows, who read their data, and what they read of others)."""
    return _store(settings).export_person(name)


def erase_person(name: str, settings=None, pseudonym: str | None = None) -> dict:
    """Delete ``name``'s shared files and rows; pseudonymise the consent record and read logs
    that must stay (that a decision or a read happened, without the person), under
    ``pseudonym`` when the privacy helper gives one (the same as in its other stores)."""
    store = _store(settings)
    files = len(store.files(name))
    store.erase_person(name, pseudonym)
    return {"removed": [(f"the squad's {files} shared files, their session and wellness rows, "
                        "and the sharing state")],
            "kept": ["the squad's consent record and read log, under a pseudonym"]}
