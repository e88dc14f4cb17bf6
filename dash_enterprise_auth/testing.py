"""Helpers for app authors' own tests: a viewer signed in without any identity provider.

    from dash_enterprise_auth.testing import signed_in_client

    def test_admin_sees_the_report():
        client = signed_in_client(app, "alice", groups=["admins"])
        assert client.get("/report").status_code == 200

The app must be protected (``DASH_AUTH_CONNECTOR`` set, or ``protect(app)``).
The session is a real one in the app's store, so the guard, the privacy
level and ``get_username()`` behave exactly as in production.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from flask.testing import FlaskClient

from .identity import Identity
from .install import installed_on
from .protection import Protection
from .session import COOKIE_NAME


def _protection(app: Any) -> Protection:
    protection = installed_on(getattr(app, "server", app))
    if protection is None:
        raise RuntimeError("the app is not protected: set DASH_AUTH_CONNECTOR or call protect(app) first")
    return protection


def signed_in_client(
    app: Any,
    username: str,
    *,
    groups: Iterable[str] = (),
    email: str | None = None,
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> FlaskClient:
    """A Flask test client whose requests carry a live session for ``username``."""
    protection = _protection(app)
    identity = Identity(username=username, email=email, display_name=name, groups=tuple(groups),
                        attributes=dict(attributes or {}), connector="testing")
    server = getattr(app, "server", app)
    client = server.test_client()
    client.set_cookie(
        COOKIE_NAME, protection.start_session(identity), path=protection.prefixes.requests,
    )
    return client
