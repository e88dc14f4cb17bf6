"""Helpers for app authors' own tests: a viewer signed in without any identity provider.

    from dash_enterprise_auth.testing import signed_in_client

    def test_admin_sees_the_report():
        client = signed_in_client(app, "alice", groups=["admins"])
        assert client.get("/report").status_code == 200

The app must be protected (``DASH_AUTH_CONNECTOR`` set, or ``protect(app)``).
The session is a real one in the app's store, so the guard, the privacy
level and ``get_username()`` behave exactly as in production. On every Dash
backend: Flask's test client, Starlette's ``TestClient`` for FastAPI (needs
``httpx``), Quart's (async) test client; :func:`session_cookie` serves any
other client (requests, Playwright).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from .identity import Identity
from .install import installed_on
from .protection import Protection
from .session import COOKIE_NAME


def _protection(app: Any) -> Protection:
    protection = installed_on(getattr(app, "server", app))
    if protection is None:
        raise RuntimeError("the app is not protected: set DASH_AUTH_CONNECTOR or call protect(app) first")
    return protection


def session_cookie(
    app: Any,
    username: str,
    *,
    groups: Iterable[str] = (),
    email: str | None = None,
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """(cookie name, value) of a new live session for ``username``, for plain-HTTP test clients."""
    protection = _protection(app)
    identity = Identity(username=username, email=email, display_name=name, groups=tuple(groups),
                        attributes=dict(attributes or {}), connector="testing")
    return COOKIE_NAME, protection.start_session(identity)


def signed_in_client(app: Any, username: str, **identity: Any) -> Any:
    """The server's own test client, its requests carrying a live session for ``username``
    (keywords: ``groups``, ``email``, ``name``, ``attributes``)."""
    protection = _protection(app)
    server = getattr(app, "server", app)
    cookie, value = session_cookie(app, username, **identity)
    path = protection.prefixes.requests
    if hasattr(server, "build_middleware_stack"):  # FastAPI
        from starlette.testclient import TestClient

        client = TestClient(server)
        client.cookies.set(cookie, value, path=path)
        return client
    client = server.test_client()
    if hasattr(server, "asgi_app"):  # Quart
        client.set_cookie("localhost", cookie, value, path=path)
    else:
        client.set_cookie(cookie, value, path=path)
    return client
