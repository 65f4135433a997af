"""Sign-in for the embedded default: invite-only password accounts, plus the admin from settings.

Why our own: nativeauthenticator 1.3.0 crashes on every login under JupyterHub 6, and
firstuseauthenticator lets whoever comes first claim any account name. Here the admin creates an
account and hands out a one-time, expiring link; the person sets their own password with it.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import timedelta

from jupyterhub import orm
from jupyterhub.auth import Authenticator
from jupyterhub.utils import maybe_future, url_path_join
from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from traitlets import Dict, Float, Integer, List, Unicode, default

from sporthub import i18n
from sporthub.forwarded import client_address, client_scheme, local_end
from sporthub.hub.accounts import AccountStore, Throttled
from sporthub.hub.handlers import handlers as sporthub_handlers
from sporthub.hub.mydata import handlers as my_data_handlers


class AccountLimitReached(web.HTTPError):
    """Refuses account number ``max_accounts + 1``.

    An HTTPError so the login page shows it as is; ``str()`` is the bare message because the hub's
    user API embeds ``str(exception)`` in its own 400 answer, which the admin panel displays.
    """

    def __init__(self, limit: int):
        self.text = (f"SportHub is limited to {limit} accounts (SPORTHUB_MAX_ACCOUNTS) and has "
                     "reached that limit; delete an unused account first.")
        super().__init__(403, self.text)

    def __str__(self) -> str:
        return self.text


class CappedAccountsMixin(Authenticator):
    """The account cap and SportHub's groups, shared by every authenticator SportHub configures."""

    max_accounts = Integer(100, config=True, help="Hub accounts allowed, admins included.")
    default_groups = Dict(config=True, help="Group name -> properties given to a group that has none.")
    squad_url = Unicode("", config=True, help="The squad service at its own socket (/hub/my-data).")

    # add_user is also called for every existing user while the hub loads its database; those
    # accounts exist already and must never be refused, so the cap applies once the hub is up.
    _hub_ready = False
    _hub_db = None

    def add_user(self, user):
        """Accounts made through the REST API (admin panel, CLI): the hub deletes it if we raise."""
        if self._hub_ready and user.name not in self.admin_users:
            accounts = user.db.query(orm.User).count()  # the new user is already in it
            if accounts > self.max_accounts:
                self._refuse(user.name, accounts - 1)
        return super().add_user(user)

    async def check_allowed(self, username, authentication=None):
        """A first sign-in (OIDC): refused before the hub creates the user, which on this path it
        would not delete again if add_user raised."""
        allowed = await maybe_future(super().check_allowed(username, authentication))
        db = self._hub_db
        new = db is not None and orm.User.find(db, username) is None
        if allowed and new and username not in self.admin_users:
            accounts = db.query(orm.User).count()
            if accounts >= self.max_accounts:
                self._refuse(username, accounts)
        return allowed

    def _refuse(self, username: str, accounts: int):
        self.log.warning("Refused account %r: %d accounts exist, limit %d", username, accounts,
                         self.max_accounts)
        raise AccountLimitReached(self.max_accounts)

    def fill_default_group_properties(self, db) -> None:
        """Give SportHub's groups their default properties, only where a group has none at all.

        ``load_groups`` creates the groups without properties (with properties it would replace
        the admin's edits on every start). A group with no properties behaves exactly as with the
        defaults, so filling them in changes nothing but makes them visible and editable.
        """
        for name, properties in self.default_groups.items():
            group = orm.Group.find(db, name)
            if group is not None and not group.properties:
                group.properties = dict(properties)
        db.commit()

    def get_handlers(self, app):
        # called once at startup after users, groups and roles are loaded: SportHub's start hook
        self.fill_default_group_properties(app.db)
        self._hub_db = app.db
        self._hub_ready = True
        # the people's data pages: with either way of signing in
        from sporthub.hub.people import handlers as people_handlers

        return [*super().get_handlers(app), *my_data_handlers(), *self.extra_handlers(),
                *people_handlers()]

    def extra_handlers(self) -> list:
        return []


def request_address(request, trusted_proxies: list[str], hops: int) -> str:
    """The address a request came from, believing ``X-Forwarded-For`` only from our own proxies
    (sporthub.forwarded: the gateway's rule, from the same settings).

    The hub's server runs with tornado's ``xheaders``, which take ``X-Real-Ip`` and
    ``X-Forwarded-For`` from any peer: ``request.remote_ip`` is what the client claims. The socket's
    own peer is not.
    """
    peer, port = request.connection.context.address[:2]
    return client_address(peer, request.headers.get("X-Forwarded-For"), trusted_proxies,
                          hops, port, local_end(request)) or peer



class SportHubAuthenticator(CappedAccountsMixin, Authenticator):
    """Invite-only password accounts; the admin from the settings signs in with its own password."""

    admin_password = Unicode(config=True, help="The admin's password (never logged).")
    accounts_url = Unicode(config=True, help="SQLAlchemy URL of the password/invite table.")
    invite_ttl_hours = Float(72.0, config=True)
    max_failures = Integer(5, config=True,
                           help="Failed sign-ins at one account from one address before delays.")
    longest_delay_minutes = Float(15.0, config=True,
                                  help="The longest wait a failing address is given.")
    trusted_proxies = List(Unicode(), ["127.0.0.1", "::1"], config=True,
                           help="Proxies (addresses or networks) whose X-Forwarded-For is read.")
    forwarded_hops = Integer(1, config=True,
                             help="How many of X-Forwarded-For's last entries our proxies wrote.")

    _store: AccountStore | None = None

    @property
    def store(self) -> AccountStore:
        if self._store is None:
            self._store = AccountStore(
                self.accounts_url, invite_ttl=timedelta(hours=self.invite_ttl_hours),
                max_failures=self.max_failures,
                longest_delay=timedelta(minutes=self.longest_delay_minutes))
        return self._store

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        password = data.get("password", "")
        if not username or not password:
            return None
        address = request_address(handler.request, self.trusted_proxies, self.forwarded_hops)
        try:
            # argon2 takes tens of milliseconds on purpose: not on the hub's event loop
            if await asyncio.to_thread(self.store.sign_in, username, address,
                                       lambda: self._password_ok(username, password)):
                return {"name": username, "admin": True} if username in self.admin_users \
                    else {"name": username}
        except Throttled as e:
            self.log.warning("Sign-in at %r from %s refused: too many failures", username, address)
            # the login page shows this text as it is: in the reader's language
            raise web.HTTPError(429, e.say(i18n.language_of_request(handler.request))) from None
        self.log.warning("Failed login for %r from %s", username, address)
        return None

    def _password_ok(self, username: str, password: str) -> bool:
        if username in self.admin_users and self.admin_password:
            return hmac.compare_digest(password.encode(), self.admin_password.encode())
        return self.store.check_password(username, password)

    def delete_user(self, user):
        # a deleted account's password must not bring it back if the name is reused
        self.store.forget(user.name)
        return super().delete_user(user)

    def extra_handlers(self) -> list:
        return sporthub_handlers()


class SportHubOIDCAuthenticator(CappedAccountsMixin, GenericOAuthenticator):
    """Sign-in with the club's OpenID Connect provider; its groups become SportHub's groups.

    Only provider groups named in ``group_map`` reach the hub (a directory has many groups that
    mean nothing here); ``allowed_groups`` and ``admin_groups`` are hub group names, after the map.
    """

    group_map = Dict(config=True, help="provider group -> hub group")
    groups_claim = Unicode("groups", config=True)
    trusted_proxies = List(Unicode(), ["127.0.0.1", "::1"], config=True,
                           help="Proxies (addresses or networks) whose X-Forwarded-* are read.")
    forwarded_hops = Integer(1, config=True,
                             help="How many of X-Forwarded-For's last entries our proxies wrote.")

    def get_callback_url(self, handler=None):
        """The configured callback, else one built from the request with the scheme our trusted
        proxies forwarded: OAuthenticator's guess takes tornado's ``request.protocol``, the last
        X-Forwarded-Proto from anyone."""
        if self.oauth_callback_url or handler is None:
            return super().get_callback_url(handler)
        request = handler.request
        context = request.connection.context
        own = getattr(context, "_orig_protocol", request.protocol)
        scheme = client_scheme(context.address[0], request.headers.get("X-Forwarded-For"),
                               request.headers.get("X-Forwarded-Proto"), self.trusted_proxies,
                               self.forwarded_hops, own, context.address[1],
                               local_end(request))
        path = url_path_join(handler.hub.server.base_url, "oauth_callback")
        return f"{scheme}://{request.host}{path}"

    @default("auth_state_groups_key")
    def _map_groups(self):
        def hub_groups(auth_state: dict) -> list[str]:
            claimed = (auth_state.get(self.user_auth_state_key) or {}).get(self.groups_claim) or []
            if isinstance(claimed, str):
                claimed = [claimed]
            return sorted({self.group_map[g] for g in claimed if g in self.group_map})

        return hub_groups
