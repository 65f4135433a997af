"""Sign-in for the embedded default: the admin's password from the settings."""

from __future__ import annotations

import hmac

from jupyterhub.auth import Authenticator
from traitlets import Unicode


class SportHubAuthenticator(Authenticator):
    """Password sign-in for the admin account that ``sporthub up`` prints."""

    admin_password = Unicode(config=True, help="The admin's password (never logged).")

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        password = data.get("password", "")
        if username in self.admin_users and self.admin_password and hmac.compare_digest(
            password.encode(), self.admin_password.encode()
        ):
            return {"name": username, "admin": True}
        self.log.warning("Failed login for %r", username)
        return None
