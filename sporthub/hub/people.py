"""A person's data on request: the admin's page ``/hub/people/<name>`` and its API.

- ``/hub/people/<name>``: what SportHub holds about the person, a download of everything
  (``/hub/people/<name>/export``), and the erase, confirmed by typing the name again.
- ``/hub/api/sporthub/people/<name>/export`` and ``.../erase``: the same for ``sporthub users
  export`` / ``erase`` (the CLI's token, ``admin:users``).

Both run inside the hub, which reaches every store in every profile (``sporthub.privacy``): the
CLI in the k8s profile cannot reach the homes, this page can. The admin panel's "delete user"
keeps its meaning: the account only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
import tempfile
import time
from urllib.parse import quote

import httpx
from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import maybe_future, url_path_join
from sqlalchemy.engine import make_url
from tornado import web

from sporthub import compaction, i18n, privacy
from sporthub.pseudonym import Pseudonyms
from sporthub.settings import Settings, load_settings

CHUNK = 256 * 1024
STOP_WAIT_S = 60


def _settings(handler: BaseHandler) -> Settings:
    cached = handler.settings.get("sporthub_settings")
    if cached is None:
        # the hub's process has every setting in its environment (sporthub up, the chart)
        cached = handler.settings["sporthub_settings"] = load_settings()
    return cached


class HubPerson:
    """:class:`sporthub.privacy.HubSide` for one account, through a request's handler."""

    def __init__(self, handler: BaseHandler, user):
        self.handler, self.user = handler, user
        self.kept: list[str] = []  # what delete_account could not wipe, for the erase's report

    async def account(self) -> dict:
        user = self.user
        return {
            "name": user.name, "admin": user.admin,
            "groups": sorted(g.name for g in user.groups),
            "created": user.created, "last_activity": user.last_activity,
            "servers": {name or "default": {"started": s.orm_spawner.started,
                                            "last_activity": s.orm_spawner.last_activity}
                        for name, s in user.spawners.items()},
        }

    async def stop_server(self) -> bool:
        stopped = False
        for server_name, spawner in list(self.user.spawners.items()):
            if spawner.active and not spawner._stop_pending:
                await self.handler.stop_single_user(self.user, server_name)
                stopped = True
            deadline = time.monotonic() + STOP_WAIT_S
            while (spawner._stop_pending or spawner.active) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            if spawner.active:
                raise privacy.PrivacyError(f"{self.user.name}'s server did not stop in "
                                           f"{STOP_WAIT_S} s; nothing more was erased")
        return stopped

    async def server_files(self):
        """Each file of the home, through the person's running server (Jupyter's contents API),
        with a short-lived token of theirs that may reach that server only."""
        spawner = self.user.spawner
        if not spawner.ready:
            raise privacy.PrivacyError(
                f"{self.user.name}'s server is not running, and in this profile the home is "
                "read through it: start it (admin panel) and export again")
        token = self.user.new_api_token(note="sporthub export", expires_in=600,
                                        scopes=[f"access:servers!server={self.user.name}/"])
        base = spawner.server.url.rstrip("/") + "/api/contents"
        try:
            async with httpx.AsyncClient(timeout=120, headers={
                    "Authorization": f"token {token}"}) as client:
                folders = [""]
                while folders:
                    folder = folders.pop()
                    listing = await client.get(f"{base}/{quote(folder)}", params={"content": 1})
                    listing.raise_for_status()
                    for item in sorted(listing.json()["content"], key=lambda i: i["path"]):
                        if item["type"] == "directory":
                            folders.append(item["path"])
                            continue
                        got = await client.get(f"{base}/{quote(item['path'])}",
                                               params={"content": 1, "format": "base64",
                                                       "type": "file"})
                        got.raise_for_status()
                        yield item["path"], base64.b64decode(got.json()["content"])
        except httpx.HTTPError as e:
            raise privacy.PrivacyError(f"reading the home through {self.user.name}'s server "
                                       f"failed: {e}") from None
        finally:
            orm_token = orm.APIToken.find(self.handler.db, token)
            if orm_token is not None:
                self.handler.db.delete(orm_token)
                self.handler.db.commit()

    async def delete_account(self) -> list[str]:
        """What the hub's own DELETE /users/<name> does, plus the OAuth clients of the servers."""
        user, db = self.user, self.handler.db
        settings = _settings(self.handler)
        clients = [s.oauth_client_id for s in user.spawners.values() if s.oauth_client_id]
        await maybe_future(self.handler.authenticator.delete_user(user))
        await user.delete_spawners()
        for identifier in clients:
            client = orm.OAuthClient.find(db, identifier)
            if client is not None:
                db.delete(client)
        db.commit()
        self.handler.users.delete(user)
        db.commit()
        url = settings.hub_database_url
        # on the event loop, so no other request of this hub holds the file or a table
        # meanwhile (its session has just committed); milliseconds for a hub of 100 people
        if url.startswith("sqlite"):
            # freed pages keep no name
            with contextlib.closing(sqlite3.connect(make_url(url).database, timeout=5)) as conn:
                conn.execute("VACUUM")
        else:
            # PostgreSQL: every hub table written anew, no dead row version keeps the name
            # (sporthub.compaction: a plain VACUUM does not wipe it)
            missed = compaction.compact(url, [t.name for t in orm.Base.metadata.sorted_tables])
            if missed:
                self.kept = compaction.missed_note("hub database", missed)
        return ["account, its groups, tokens and server records (hub database)"]


async def _person(handler: BaseHandler, name: str,
                  through_server: bool = False) -> privacy.Person:
    user = handler.find_user(name)
    lang = i18n.language_of_request(handler.request)
    if user is None:
        raise web.HTTPError(404, i18n.gettext(lang, "No account named {name}.", name=repr(name)))
    settings = _settings(handler)
    return privacy.Person(name=user.name, settings=settings, hub=HubPerson(handler, user),
                          pseudonyms=Pseudonyms.of(settings), home_through_server=through_server)


async def _erase(handler: BaseHandler, name: str) -> privacy.Outcome:
    person = await _person(handler, name)
    lang = i18n.language_of_request(handler.request)
    settings = person.settings
    if name == handler.current_user.name or (settings.auth == "password"
                                             and name == settings.admin_user):
        raise web.HTTPError(400, i18n.gettext(lang, "You cannot erase your own account."))
    outcome = await privacy.erase_person(person)
    # the log says that it happened, not whom: the pseudonym ties it to the kept rows
    handler.log.info("Erased a person (now %s) at the request of %s",
                     person.pseudonyms(name), handler.current_user.name)
    return outcome


async def _send_export(handler: BaseHandler, name: str, fmt: str) -> None:
    if fmt not in privacy.FORMATS:
        raise web.HTTPError(400, f"format {fmt!r}: choose {' or '.join(privacy.FORMATS)}")
    # ?home=server: the k8s profile's way (through the person's running server) in any profile
    person = await _person(handler, name, handler.get_argument("home", "") == "server")
    # an unnamed file in the data directory (0600, the hub's own): gone when closed
    with tempfile.TemporaryFile(dir=person.settings.data_dir) as spool:
        try:
            await privacy.export_person(person, spool, fmt)
        except privacy.PrivacyError as e:
            raise web.HTTPError(409, str(e)) from None
        handler.log.info("Exported the data of %s for %s", person.pseudonyms(name),
                         handler.current_user.name)
        size = spool.tell()
        spool.seek(0)
        handler.set_header("Content-Type", "application/zip" if fmt == "zip"
                           else "application/gzip")
        handler.set_header("Content-Disposition",
                           f'attachment; filename="sporthub-{name}.{fmt}"')
        handler.set_header("Content-Length", str(size))
        handler.set_header("Cache-Control", "no-store")
        while chunk := spool.read(CHUNK):
            handler.write(chunk)
            await handler.flush()
    handler.finish()


class PersonPageHandler(BaseHandler):
    @web.authenticated
    @needs_scope("admin:users")
    async def get(self, name: str):
        person = await _person(self, name)
        self.finish(await self._page(person.name, account=await person.hub.account()))

    @web.authenticated
    @needs_scope("admin:users")
    async def post(self, name: str):
        lang = i18n.language_of_request(self.request)
        if self.get_argument("confirm", default="").strip() != name:
            person = await _person(self, name)
            self.set_status(400)
            return self.finish(await self._page(
                name, account=await person.hub.account(),
                error=i18n.gettext(lang, "The name typed does not match; nothing was erased.")))
        try:
            outcome = await _erase(self, name)
        except privacy.PrivacyError as e:
            raise web.HTTPError(500, str(e)) from None
        self.finish(await self._page(name, outcome=outcome))

    async def _page(self, name: str, account: dict | None = None, error: str | None = None,
                    outcome: privacy.Outcome | None = None) -> str:
        return await self.render_template(
            "sporthub-person.html", person=name, account=account, error=error, outcome=outcome,
            stores=privacy.STORES, xsrf=self.xsrf_token.decode("ascii"),
            action=url_path_join(self.hub.base_url, "people", name))


class PersonExportHandler(BaseHandler):
    @web.authenticated
    @needs_scope("admin:users")
    async def get(self, name: str):
        await _send_export(self, name, self.get_argument("format", "zip"))


class ExportAPIHandler(APIHandler):
    @needs_scope("admin:users")
    async def get(self, name: str):
        await _send_export(self, name, self.get_argument("format", "zip"))


class EraseAPIHandler(APIHandler):
    @needs_scope("admin:users")
    async def post(self, name: str):
        try:
            outcome = await _erase(self, name)
        except privacy.PrivacyError as e:
            raise web.HTTPError(500, str(e)) from None
        self.write(json.dumps({"name": name, "removed": outcome.removed,
                               "kept": outcome.kept}))


def handlers() -> list[tuple]:
    return [
        (r"/people/([^/]+)", PersonPageHandler),
        (r"/people/([^/]+)/export", PersonExportHandler),
        (r"/api/sporthub/people/([^/]+)/export", ExportAPIHandler),
        (r"/api/sporthub/people/([^/]+)/erase", EraseAPIHandler),
    ]
