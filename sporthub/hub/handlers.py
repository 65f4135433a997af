"""Hub pages and API of invite-only accounts, mounted under ``/hub/`` by the authenticator.

- ``/hub/invite?token=...``: the person sets their password (one-time, expiring link).
- ``/hub/invites``: the admin's list of accounts, with a "new link" button per account.
- ``/hub/api/sporthub/invites[/<name>]``: the same for the ``sporthub`` CLI, with a hub token.

Accounts themselves are hub users (created in the admin panel, with the REST API or the CLI); this
only adds a password to them. Tokens and passwords never reach a log line.
"""

from __future__ import annotations

import asyncio
import json

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import new_token, url_path_join
from tornado import web
from tornado.httputil import url_concat

from sporthub import i18n
from sporthub.forwarded import client_scheme, local_end
from sporthub.hub.accounts import InvalidInvite, WeakPassword


def _invite_url(handler: BaseHandler, token: str) -> str:
    # a query parameter named "token", not a path segment: the hub's request log scrubs exactly
    # such parameters, and it logs paths as they are
    path = url_concat(url_path_join(handler.hub.base_url, "invite"), {"token": token})
    # SPORTHUB_PUBLIC_URL (the hub's public_url): the address people type, whoever asked
    public = handler.settings.get("public_url")
    if public:
        return f"{public.scheme}://{public.netloc}{path}"
    # unset: https behind a TLS front: the one-time token must not cross the network in clear
    # text on its way to the redirect (tornado's request.protocol believes the last proxy, CHP: http)
    request, auth = handler.request, handler.authenticator
    context = request.connection.context
    # the connection's own scheme (tornado keeps it aside when xheaders rewrite it)
    own = getattr(context, "_orig_protocol", request.protocol)
    scheme = client_scheme(context.address[0], request.headers.get("X-Forwarded-For"),
                           request.headers.get("X-Forwarded-Proto"), auth.trusted_proxies,
                           auth.forwarded_hops, own, context.address[1],
                           local_end(request))
    return f"{scheme}://{request.host}{path}"


def _accounts(handler: BaseHandler) -> list[dict]:
    store = handler.authenticator.store
    users = handler.db.query(orm.User).order_by(orm.User.name).all()
    statuses = store.status([u.name for u in users])
    settings_admins = handler.authenticator.admin_users if handler.authenticator.admin_password \
        else set()
    rows = []
    for user in users:
        status = statuses[user.name]
        if user.name in settings_admins:
            state = "admin password from settings"
        elif status.has_password:
            state = "active"
        elif status.invite_expires:
            state = "invited"
        else:
            state = "no link yet"
        rows.append({
            "name": user.name, "admin": user.admin, "groups": [g.name for g in user.groups],
            "state": state,
            "invite_expires": status.invite_expires.isoformat() if status.invite_expires else None,
            "failed_sign_ins": status.failures,
        })
    return rows


def _new_invite(handler: BaseHandler, name: str, lang: str = "en") -> dict:
    if handler.find_user(name) is None:
        raise web.HTTPError(404, i18n.gettext(lang, "No account named {name}: create it first.",
                                              name=repr(name)))
    token = handler.authenticator.store.new_invite(name)
    handler.log.info("New invite link for %r issued by %s", name, handler.current_user.name)
    status = handler.authenticator.store.status([name])[name]
    return {"name": name, "url": _invite_url(handler, token),
            "expires": status.invite_expires.isoformat()}


async def end_sessions(handler: BaseHandler, name: str) -> None:
    """Sign ``name`` out everywhere: whoever knew the old password must not stay signed in.

    What JupyterHub's own logout does for one browser, for all of them: a new ``cookie_id``
    invalidates every login cookie, and deleting the person's API tokens ends the OAuth sessions
    of their server and of services (OAuth access tokens are API tokens since JupyterHub 2) and
    every token they made. Their running server holds one of those tokens, so it is stopped.
    """
    user = handler.find_user(name)
    if user is None:
        return
    for server_name, spawner in list(user.spawners.items()):
        if spawner.active and not spawner.pending:
            await handler.stop_single_user(user, server_name)
    revoked = handler.db.query(orm.APIToken).filter_by(user_id=user.id).delete()
    user.orm_user.cookie_id = new_token()
    handler.db.commit()
    handler.log.info("Signed %r out everywhere after a password reset (%d tokens revoked)",
                     name, revoked)


class InviteHandler(BaseHandler):
    """The page an invite link opens: choose a password, then sign in.

    The token arrives as ``?token=`` (GET) or a form field (POST). Refusals are rendered here
    rather than raised: tornado's warning for a raised HTTPError prints the unscrubbed URI.
    """

    def _lang(self) -> str:
        return i18n.language_of_request(self.request)

    def _username(self) -> str | None:
        token = self.get_argument("token", default="")
        try:
            name = self.authenticator.store.invite_user(token)
        except InvalidInvite:
            return None
        return name if self.find_user(name) is not None else None

    async def _refuse(self) -> None:
        self.log.warning("Invite link refused: unknown, used or expired")
        self.set_status(410)
        self.finish(await self.render_template(
            "error.html", status_code=410, status_message="Link no longer valid",
            message=InvalidInvite.say(self._lang()), message_html="", extra_error_html=""))

    async def _page(self, username: str, error: str | None = None) -> str:
        return await self.render_template(
            "sporthub-invite.html", username=username, error=error,
            token=self.get_argument("token"), action=url_path_join(self.hub.base_url, "invite"),
            xsrf=self.xsrf_token.decode("ascii"))

    async def get(self):
        username = self._username()
        if username is None:
            return await self._refuse()
        self.finish(await self._page(username))

    async def post(self):
        username = self._username()
        if username is None:
            return await self._refuse()
        password = self.get_argument("password", default="", strip=False)
        if password != self.get_argument("password2", default="", strip=False):
            self.set_status(400)
            return self.finish(await self._page(
                username, i18n.gettext(self._lang(), "The two passwords differ.")))
        try:
            await asyncio.to_thread(self.authenticator.store.redeem, self.get_argument("token"),
                                    password)
        except WeakPassword as e:
            self.set_status(400)
            return self.finish(await self._page(
                username, i18n.gettext(self._lang(), e.reason, **e.values)))
        except InvalidInvite:
            return await self._refuse()
        self.log.info("Password set for %r through an invite link", username)
        await end_sessions(self, username)
        self.redirect(self.settings["login_url"])


class InvitesPageHandler(BaseHandler):
    """The admin's page: accounts made in the admin panel get their link here."""

    @web.authenticated
    @needs_scope("admin:users")
    async def get(self):
        self.finish(await self._page())

    @web.authenticated
    @needs_scope("admin:users")
    async def post(self):
        invite = _new_invite(self, self.get_argument("username"),
                             i18n.language_of_request(self.request))
        self.finish(await self._page(invite))

    async def _page(self, invite: dict | None = None) -> str:
        return await self.render_template(
            "sporthub-invites.html", accounts=_accounts(self), invite=invite,
            xsrf=self.xsrf_token.decode("ascii"))


class AccountsAPIHandler(APIHandler):
    @needs_scope("admin:users")
    def get(self):
        self.write(json.dumps(_accounts(self)))


class InviteAPIHandler(APIHandler):
    @needs_scope("admin:users")
    def post(self, user_name: str):
        self.set_status(201)
        self.write(json.dumps(_new_invite(self, user_name)))


def handlers() -> list[tuple]:
    return [
        (r"/invite", InviteHandler),
        (r"/invites", InvitesPageHandler),
        (r"/api/sporthub/invites", AccountsAPIHandler),
        (r"/api/sporthub/invites/([^/]+)", InviteAPIHandler),
    ]
