"""``/hub/my-data``: the athlete's own switch for sharing with the club's staff, in the hub.

The page shows what the squad service keeps (sharing on or off, files, the consent record) and
who read it. It asks the service on the person's behalf with a token of theirs made for this
one request (only ``custom:squad:use``, five minutes, deleted right after), at the service's own
socket, naming the person's address in ``X-Forwarded-For`` as the proxy does, so the consent
record holds the address the decision came from.

A switch is POST, redirect, GET: the POST answers 303 to the page, and the confirmation rides in
a signed cookie the next GET reads once and clears, so a reload shows the page again rather than
posting the decision a second time.
"""

from __future__ import annotations

import httpx
from jupyterhub import orm
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

from sporthub import i18n
from sporthub.forwarded import client_address
from sporthub.service_auth import SQUAD_SCOPE


class MyDataHandler(BaseHandler):
    def _address(self) -> str:
        auth = self.authenticator
        peer, port = self.request.connection.context.address[:2]
        return client_address(peer, self.request.headers.get("X-Forwarded-For"),
                              getattr(auth, "trusted_proxies", ["127.0.0.1", "::1"]),
                              getattr(auth, "forwarded_hops", 1), port) or peer

    async def _squad(self, method: str, path: str, **kwargs) -> httpx.Response | None:
        """The squad's answer to the person, or None when they hold no squad scope."""
        user = self.current_user
        try:
            token = user.new_api_token(note="my-data page", expires_in=300,
                                       scopes=[SQUAD_SCOPE])
        except ValueError:
            return None  # the scope is not theirs: not an athlete or staff of the club
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                return await client.request(
                    method, f"{self.authenticator.squad_url}/api/{path}",
                    headers={"Authorization": f"token {token}",
                             "X-Forwarded-For": self._address()}, **kwargs)
        except httpx.HTTPError:
            raise web.HTTPError(503, "SportHub is not available right now; please try again "
                                "in a minute.") from None
        finally:
            found = orm.APIToken.find(self.db, token)
            if found is not None:
                self.db.delete(found)
                self.db.commit()

    async def _page(self, error: str | None = None, done: str | None = None) -> None:
        answer = await self._squad("GET", "me")
        me = answer.json() if answer is not None and answer.status_code == 200 else None
        lang = i18n.language_of_request(self.request)
        self.finish(await self.render_template(
            "sporthub-my-data.html", me=me, error=error, done=done,
            when=lambda text: i18n.moment(lang, _parse(text)) if text else "",
            xsrf=self.xsrf_token.decode("ascii")))

    def _url(self) -> str:
        return url_path_join(self.hub.base_url, "my-data")

    def _confirmation(self) -> str | None:
        """The switch the person just made, once (the cookie goes with this answer)."""
        value = self.get_secure_cookie(DONE_COOKIE, max_age_days=1)
        if value is None:
            return None
        self.clear_cookie(DONE_COOKIE, path=self._url())
        # the switch of whoever is signed in now (not of someone before them in this browser)
        name, _, switch = value.decode("utf-8", "replace").rpartition(":")
        return DONE.get(switch) if name == self.current_user.name else None

    @web.authenticated
    async def get(self):
        await self._page(done=self._confirmation())

    @web.authenticated
    async def post(self):
        share = self.get_argument("share", "") == "on"
        answer = await self._squad("PUT", "me/consent", json={"share": share})
        if answer is None:
            raise web.HTTPError(403, "You do not have permission to open this page.")
        if answer.status_code != 200:
            code = answer.json().get("error", {}).get("code")
            lang = i18n.language_of_request(self.request)
            message = GUARDIAN if code == "guardian_consent_needed" else answer.json()[
                "error"]["message"]
            self.set_status(answer.status_code)
            return await self._page(error=i18n.gettext(lang, message))
        # a short life: the confirmation is for the page that follows, not a later visit
        self._set_cookie(DONE_COOKIE, f"{self.current_user.name}:{'on' if share else 'off'}",
                         path=self._url(), expires_days=None, max_age=120)
        self.redirect(self._url(), status=303)


DONE_COOKIE = "sporthub-my-data-done"
DONE = {"on": "Sharing is on.",
        "off": "Sharing is off: your shared files and rows were deleted."}


GUARDIAN = ("You are registered as a minor: sharing needs your guardian's consent, which the "
            "club's admin records first.")


def _parse(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)


def handlers() -> list[tuple]:
    return [(r"/my-data", MyDataHandler)]
