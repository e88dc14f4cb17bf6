"""Who is looking at the page right now, and where that answer comes from.

Inside a Flask request the guard has already resolved the viewer and put it on
``flask.g``. In a Dash background callback there is no request: the viewer is
found again from the session cookie that Dash hands over in
``dash.callback_context.cookies``. Anywhere else there is no viewer, and the
public API raises instead of guessing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import g, has_request_context

from .connectors.base import Identity
from .stores import SessionRecord

if TYPE_CHECKING:
    from .protection import Protection

OUTSIDE_REQUEST = (
    "{name}() needs a request: call it inside a Dash callback, a layout function or a Flask "
    "view of an app protected by dash_enterprise_auth, not at import time or in a thread "
    "of your own"
)

# The protection of the app served by this process, for background callbacks,
# which run without a Flask request (set by protect(); the last app wins).
_process_protection: "Protection | None" = None


@dataclass
class Viewer:
    """The signed-in identity and, for cookie sessions, its server-side record.

    ``record`` is None for requests authenticated by an ``Authorization``
    header: those have no session to store data in.
    """

    identity: Identity
    record: SessionRecord | None = None


class _Anonymous:
    """Marks a request that the guard saw and found no viewer for."""


ANONYMOUS = _Anonymous()


def set_request_viewer(viewer: Viewer | None) -> None:
    g._dash_auth_viewer = viewer if viewer is not None else ANONYMOUS


def remember_protection(protection: "Protection") -> None:
    global _process_protection
    _process_protection = protection


def current_viewer(name: str) -> Viewer | None:
    """The viewer of the current request or callback; None when anonymous.

    Raises RuntimeError outside any request or callback, or when the app is
    not protected, so a misconfigured app fails loudly instead of serving
    everyone as nobody.
    """
    if has_request_context():
        viewer = getattr(g, "_dash_auth_viewer", None)
        if viewer is None:
            raise RuntimeError(
                f"{name}() found no dash_enterprise_auth guard on this request: protect the app "
                "(set DASH_AUTH_CONNECTOR, or call dash_enterprise_auth.protect(app))"
            )
        return None if viewer is ANONYMOUS else viewer
    cookies = _callback_cookies()
    if cookies is None or _process_protection is None:
        raise RuntimeError(OUTSIDE_REQUEST.format(name=name))
    return _process_protection.viewer_from_cookies(cookies)


def current_protection() -> "Protection":
    """The protection of the app serving this request (or, in a background callback, this process)."""
    if has_request_context():
        from flask import current_app

        protection = current_app.extensions.get("dash_enterprise_auth")
        if protection is not None:
            return protection
    if _process_protection is None:
        raise RuntimeError("this app is not protected by dash_enterprise_auth")
    return _process_protection


def _callback_cookies() -> dict[str, Any] | None:
    """The cookies of the request that triggered a (background) Dash callback."""
    from dash import callback_context
    from dash.exceptions import MissingCallbackContextException

    try:
        cookies = callback_context.cookies
    except (MissingCallbackContextException, AttributeError):  # no callback running; or an old Dash
        return None
    return dict(cookies) if cookies is not None else None
