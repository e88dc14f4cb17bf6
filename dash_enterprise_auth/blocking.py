"""Where the guard may not wait: on an ASGI server's event loop.

The ASGI middleware first answers each request on the loop itself, which is
cheap when everything it needs is already in memory (a session record this
process has seen and nobody changed since). Each place that would wait on the
session store, a provider, a slow hash or the app's own code calls
:func:`refuse_io` first; under
:func:`without_waiting` that raises :class:`WouldBlock` before anything was
done, and the middleware asks again on a thread, where the same call simply
goes on. The other way round, :func:`compute` brings a sign-in's CPU-only work
from its thread back to the loop, which runs it fastest.
"""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_on_loop: ContextVar[bool] = ContextVar("dash_enterprise_auth_on_loop", default=False)
# Set by the ASGI adapter on its sign-in threads: runs a function on the event loop's thread.
_loop_runner: ContextVar[Callable[..., Any] | None] = ContextVar("dash_enterprise_auth_loop_runner", default=None)


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


def compute(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)``, work that only needs the CPU (no I/O, no lock another thread may hold),
    on the event loop's thread when called from an ASGI server's sign-in thread, else here.

    Python runs one thread at a time: CPU-bound work on a thread makes the loop wait for its
    turn (up to the interpreter's switch interval) at each accept, read and write, so the
    worker's CPU sits idle between requests. On the loop itself it runs in one go. Only for
    work that ends in milliseconds: the loop serves nothing else meanwhile."""
    runner = _loop_runner.get()
    return func(*args) if runner is None else runner(func, *args)


def computing_on(runner: Callable[..., Any]) -> None:
    """Have :func:`compute` hand its work to ``runner`` in this context (a sign-in thread's)."""
    _loop_runner.set(runner)
