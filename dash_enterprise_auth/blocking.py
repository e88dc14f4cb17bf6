"""Where the guard may not wait: on an ASGI server's event loop.

The ASGI middleware first answers each request on the loop itself, which is
cheap when everything it needs is already in memory (a session record this
process has seen and nobody changed since). Each place that would wait on the
session store, a provider, a slow hash or the app's own code calls
:func:`refuse_io` first; under
:func:`without_waiting` that raises :class:`WouldBlock` before anything was
done, and the middleware asks again on a thread, where the same call simply
goes on.
"""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_on_loop: ContextVar[bool] = ContextVar("dash_enterprise_auth_on_loop", default=False)


class WouldBlock(Exception):
    """Answering needs I/O, which the event loop must not wait for."""


def refuse_io(what: str) -> None:
    """Raise WouldBlock when running under :func:`without_waiting`; otherwise nothing."""
    if _on_loop.get():
        raise WouldBlock(what)


def without_waiting(func: Callable[..., T], *args: Any) -> T | None:
    """``func(*args)`` where it may not wait: its result, or None when it would have to."""
    token = _on_loop.set(True)
    try:
        return func(*args)
    except WouldBlock:
        return None
    finally:
        _on_loop.reset(token)
