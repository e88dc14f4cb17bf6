"""Who is looking at the page right now, and where that answer comes from.

The adapter of the request (Flask's ``before_request``, the ASGI middleware)
resolves the viewer once and puts it in a ``contextvars`` variable, which
Dash copies into every callback it runs: sync or ``async def``, on a thread
or on the event loop, over HTTP or a WebSocket. A background callback runs
in another process without that variable: the viewer is found again from
the session cookie Dash hands over in ``dash.callback_context.cookies``.
Anywhere else there is no viewer, and the public API raises instead of
guessing.
"""
from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .identity import Identity
from .stores import SessionRecord

if TYPE_CHECKING:
    from .protection import Protection

OUTSIDE_REQUEST = (
    "{name}() needs a request: call it inside a Dash callback, a layout function or a view "
    "of an app protected by dash_enterprise_auth, not at import time or in a thread "
    "of your own"
)

# The protection of the app served by this process, for background callbacks,
# which run without a request (set by protect(); the last app wins).
_process_protection: "Protection | None" = None


@dataclass
class Viewer:
    """The signed-in identity and, for cookie sessions, its server-side record.

    ``record`` is None for requests authenticated by an ``Authorization``
    header: those have no session to store data in.
    """

    identity: Identity
    record: SessionRecord | None = None


class Seen(NamedTuple):
    """What the guard found for the request being served: its app's protection and viewer, and
    where the server is mounted (for URLs the page needs). A tuple: one is made per request."""

    protection: "Protection"
    viewer: Viewer | None
    script_root: str = ""


_seen: ContextVar[Seen | None] = ContextVar("dash_enterprise_auth_viewer", default=None)


def see(protection: "Protection", viewer: Viewer | None, script_root: str = "") -> Token:
    """Record the viewer of the request the caller is serving; reset with :func:`forget`."""
    return _seen.set(Seen(protection, viewer, script_root))


def show(seen: Seen) -> Token:
    """:func:`see` with a ``Seen`` already made (by the check, for an earlier request: see
    ``admissions``)."""
    return _seen.set(seen)


def current_script_root() -> str:
    seen = _seen.get()
    return seen.script_root if seen is not None else ""


def forget(token: Token) -> None:
    try:
        _seen.reset(token)
    except ValueError:  # set in another context (a server that copies contexts): clear it here
        _seen.set(None)


def remember_protection(protection: "Protection") -> None:
    global _process_protection
    _process_protection = protection


def current_viewer(name: str) -> Viewer | None:
    """The viewer of the current request or callback; None when anonymous.

    Raises RuntimeError outside any request or callback, or when the app is
    not protected, so a misconfigured app fails loudly instead of serving
    everyone as nobody.
    """
    seen = _seen.get()
    if seen is not None:
        return seen.viewer
    cookies = _callback_cookies()
    if cookies is None or _process_protection is None:
        raise RuntimeError(OUTSIDE_REQUEST.format(name=name) + (
            "; if this is such a request, the app is not protected: set DASH_AUTH_CONNECTOR, or call "
            "dash_enterprise_auth.protect(app)" if _process_protection is None else ""))
    return _process_protection.viewer_from_cookies(cookies)


def seen_viewer() -> Viewer | None:
    """Like :func:`current_viewer`, but None (anonymous) outside any request or callback: for
    code Dash also runs at start-up, such as layout functions."""
    seen = _seen.get()
    if seen is not None:
        return seen.viewer
    cookies = _callback_cookies()
    if cookies is None or _process_protection is None:
        return None
    return _process_protection.viewer_from_cookies(cookies)


def current_protection() -> "Protection":
    """The protection of the app serving this request (or, in a background callback, this process)."""
    seen = _seen.get()
    if seen is not None:
        return seen.protection
    if _process_protection is None:
        raise RuntimeError("this app is not protected by dash_enterprise_auth")
    return _process_protection


def _callback_cookies() -> dict[str, Any] | None:
    """The cookies of the request that triggered a (background) Dash callback."""
    from dash import callback_context
    from dash.exceptions import MissingCallbackContextException

    try:
        cookies = callback_context.cookies
    except (MissingCallbackContextException, AttributeError, RuntimeError, LookupError):  # no callback running
        return None
    return dict(cookies) if cookies is not None else None
