"""The ASGI adapter: one middleware that guards a FastAPI- or Quart-backed Dash app (Dash >= 4.2).

It sits in front of everything the server answers (Dash's routes, ``/assets/``,
page paths, routes the app adds, ``hooks.route`` routes, the MCP endpoint and
WebSockets), because Dash's own request hooks cannot answer a request and do
not run for most of those. For each HTTP request it asks the guard, answers
refusals and the package's routes itself, and lets the rest through with the
viewer in the ``contextvars`` variable that Dash copies into every callback.

The guard first runs on the event loop, where most requests are answered
from memory (see ``blocking``); anything that can block (the session store, a
connector talking to its provider, Argon2) runs on a thread pool, so a slow
sign-in never holds the event loop: the guard's store checks and the sign-in
routes have pools of their own, so sign-ins waiting on a provider cannot
starve page loads. A sign-in's CPU-only work (python3-saml's validation,
``blocking.compute``) comes back to the loop's thread, where it does not
fight the loop for the interpreter. No policy lives here.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, MutableMapping

from werkzeug.datastructures import Headers

from . import routes
from .admissions import COOKIE_HEADER_MAX_LENGTH
from .blocking import computing_on, without_waiting
from .errors import AuthenticationError, ConfigurationError
from .guard import Admit, answer_failure, check, is_package_route
from .protection import Protection
from .viewer import Seen, Viewer, forget, see, show
from .web import Answer, CookieHeader, Request, parse_form

log = logging.getLogger("dash_enterprise_auth")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_FORM_BYTES = 2 * 1024 * 1024  # a SAML response is tens of kilobytes; nothing of ours is larger
SESSION_ENDED = 4001  # the close code after which Dash's WebSocket client does not reconnect
# What Dash's worker sends every 30 s on its own: no sign of a person, so it neither needs a
# session check nor may keep the session's idle timer going.
HEARTBEAT = '{"type":"heartbeat"}'

_GUARD_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dash-auth-guard")
_SIGN_IN_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="dash-auth-sign-in")


class GuardMiddleware:
    def __init__(self, app: App, protection: Protection, proxy_hops: int = 0) -> None:
        self.app = app
        self.protection = protection
        self.proxy_hops = proxy_hops

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Not a coroutine itself: a request admitted before, with nothing changed since (see
        ``admissions``), is handed to the app as it is, with no frame of ours around it. The
        viewer is set in the request's own context (servers run each request in a task of its
        own, with a copy of the context), so it needs no reset."""
        if scope["type"] == "http":
            scope = trust_proxies(scope, self.proxy_hops)
            key = admission_key(scope)
            seen = self.protection.admissions.seen(key, scope["path"])
            if seen is not None:
                show(seen)
                return self.app(scope, receive, send)
            return self._http(scope, key, receive, send)
        if scope["type"] == "websocket":
            return self._websocket(trust_proxies(scope, self.proxy_hops), receive, send)
        return self.app(scope, receive, send)  # lifespan

    async def _http(self, scope: Scope, key: tuple | None, receive: Receive, send: Send) -> None:
        request = plain_request(scope)
        # On the loop when memory suffices (a session record this process knows is current).
        outcome = without_waiting(check, self.protection, request)
        if outcome is None:
            outcome = await _in_pool(_GUARD_POOL, check, self.protection, request)
        if isinstance(outcome, Answer):
            return await send_answer(outcome, send)
        seen = Seen(self.protection, outcome.viewer, request.script_root)
        token = show(seen)
        try:
            if is_package_route(self.protection, request):
                return await self._package_route(request, outcome, receive, send)
            if not outcome.cookies:
                self.protection.admissions.remember(key, scope["path"], seen)
            await self.app(scope, receive, _with_cookies(send, outcome.cookies))
        finally:
            forget(token)

    async def _package_route(self, request: Request, outcome: Admit, receive: Receive, send: Send) -> None:
        if request.method == "POST":
            body = await _read_body(receive)
            if body is None:
                return await send_answer(Answer.json(413, {"error": "The request is too large."}), send)
            request.form = parse_form(body)
        answer = await _signing_in(routes.handle, self.protection, request, outcome.viewer)
        await send_answer(answer, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The handshake needs a live session; every message after it is checked again, so a
        session that ends (logout elsewhere, revocation, expiry) ends the socket with it."""
        request = plain_request(scope)
        outcome = without_waiting(check, self.protection, request)
        if outcome is None:
            outcome = await _in_pool(_GUARD_POOL, check, self.protection, request)
        if isinstance(outcome, Answer):
            return await _refuse_handshake(scope, outcome, send)
        watch = _SessionWatch(self.protection, scope, request, outcome, send)
        token = see(self.protection, outcome.viewer, request.script_root)
        try:
            await self.app(scope, watch.receive(receive), watch.send)
        finally:
            forget(token)


class _SessionWatch:
    """Re-checks the session of a WebSocket at each message from the browser."""

    def __init__(self, protection: Protection, scope: Scope, request: Request, outcome: Admit, send: Send) -> None:
        self.protection = protection
        self.request = request
        self.key, self.path = admission_key(scope), scope["path"]
        self.signed_in = outcome.viewer is not None and outcome.viewer.record is not None
        self._send = send
        self.closed = False

    def receive(self, receive: Receive) -> Receive:
        async def checked() -> Message:
            message = await receive()
            if message["type"] != "websocket.receive" or not self.signed_in or message.get("text") == HEARTBEAT:
                return message
            seen = self.protection.admissions.seen(self.key, self.path)
            if seen is None:
                outcome = without_waiting(check, self.protection, self.request)
                if outcome is None:
                    outcome = await _in_pool(_GUARD_POOL, check, self.protection, self.request)
                ended, viewer = self._verdict(outcome)
                if ended is not None:
                    self.closed = True
                    await self._send({"type": "websocket.close", "code": SESSION_ENDED, "reason": ended})
                    return {"type": "websocket.disconnect", "code": SESSION_ENDED}
                seen = Seen(self.protection, viewer, self.request.script_root)
                self.protection.admissions.remember(self.key, self.path, seen)
            show(seen)  # fresher user data for what follows
            return message
        return checked

    @staticmethod
    def _verdict(outcome: Answer | Admit) -> tuple[str | None, Viewer | None]:
        """(None, the viewer) while the session lives; else (why the socket must end, None). An
        unavailable store ends it too: nothing is served that the store cannot vouch for."""
        if isinstance(outcome, Answer) and outcome.status == 503:
            return "the session store is unavailable", None
        if isinstance(outcome, Answer) or outcome.viewer is None:
            return "the session has ended", None
        return None, outcome.viewer

    async def send(self, message: Message) -> None:
        if not self.closed:  # after our close, the app's late answers have nowhere to go
            await self._send(message)


def install(server: Any, protection: Protection, proxy_hops: int) -> None:
    """Put the guard in front of a FastAPI or Quart server, in place (servers load it once)."""
    if hasattr(server, "build_middleware_stack"):  # FastAPI/Starlette: outermost, whenever installed
        if getattr(server, "middleware_stack", None) is not None:  # built at the first request: too late
            raise ConfigurationError(
                "dash_enterprise_auth.protect() was called after this FastAPI app started serving, so "
                "it could not guard it: protect the app where it is created (or set DASH_AUTH_CONNECTOR)")
        build = server.build_middleware_stack
        server.build_middleware_stack = lambda: GuardMiddleware(build(), protection, proxy_hops)

        async def starlette_failure(request: Any, exc: AuthenticationError) -> Any:
            from starlette.responses import Response

            answer = answer_failure(protection, plain_request(request.scope), exc)
            return Response(answer.body, answer.status, headers=_header_dict(answer))

        server.add_exception_handler(AuthenticationError, starlette_failure)
    else:  # Quart
        server.asgi_app = GuardMiddleware(server.asgi_app, protection, proxy_hops)

        async def quart_failure(exc: AuthenticationError) -> Any:
            import quart

            answer = answer_failure(protection, plain_request(quart.request.scope), exc)
            return quart.Response(answer.body, answer.status, headers=list(answer.headers.items()))

        server.register_error_handler(AuthenticationError, quart_failure)


# -- translation --------------------------------------------------------------------------------

class ScopeHeaders:
    """An ASGI scope's headers by name, any case: the first value of a repeated header, except
    ``Cookie``, whose values are joined (HTTP/2 sends one per cookie). Indexed at the first
    lookup, values decoded only when asked: the guard reads two or three of a browser's twenty,
    once per request."""

    __slots__ = ("raw", "_index")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._index: dict[bytes, bytes] | None = None

    def get(self, name: str, default: Any = None) -> Any:
        index = self._index
        if index is None:
            index = self._index = {}
            for key, value in self.raw:
                key = key.lower()
                if key not in index:
                    index[key] = value
                elif key == b"cookie":
                    index[key] += b"; " + value
        value = index.get(name.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


def admission_key(scope: Scope) -> tuple | None:
    """What the guard's check reads of a request to find its session (see ``admissions``); None
    when no admission applies: no cookie or a very long one, several ``Cookie`` headers, an
    ``Authorization`` header."""
    cookie = None
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"cookie":
            if cookie is not None:
                return None
            cookie = value
        elif name == b"authorization":
            return None
    if cookie is None or len(cookie) > COOKIE_HEADER_MAX_LENGTH:
        return None
    return cookie, scope.get("scheme"), scope.get("root_path")


def plain_request(scope: Scope) -> Request:
    headers = ScopeHeaders(scope.get("headers", ()))
    root = scope.get("root_path", "") or ""
    path = scope.get("path", "/")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    client = scope.get("client")
    scheme = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
    server = scope.get("server")
    host = headers.get("Host") or (f"{server[0]}:{server[1]}" if server else "localhost")
    return Request(
        method=scope.get("method", "GET"), path=path,
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers, cookies=CookieHeader(headers.get("Cookie", "")),
        client=client[0] if client else "", scheme=scheme, host=host, script_root=root,
    )


async def send_answer(answer: Answer, send: Send) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def trust_proxies(scope: Scope, hops: int) -> Scope:
    """``X-Forwarded-For/-Proto/-Host/-Prefix`` as set by ``hops`` trusted reverse proxies, applied
    to the scope the app sees too (what werkzeug's ProxyFix does for the Flask backend)."""
    if hops <= 0:
        return scope
    headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())])

    def trusted(name: str) -> str | None:
        values = [v.strip() for v in ",".join(headers.getlist(name)).split(",") if v.strip()]
        return values[-hops] if len(values) >= hops else None

    scope = dict(scope)
    client, proto = trusted("X-Forwarded-For"), trusted("X-Forwarded-Proto")
    host, prefix = trusted("X-Forwarded-Host"), trusted("X-Forwarded-Prefix")
    if client:
        scope["client"] = (client, 0)
    if proto:
        secure = proto.lower() == "https"
        scope["scheme"] = ("wss" if secure else "ws") if scope["type"] == "websocket" else proto.lower()
    if host:
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"] + [
            (b"host", host.encode("latin-1"))]
    if prefix:
        prefix = "/" + prefix.strip("/")
        scope["root_path"] = prefix + scope.get("root_path", "")
        scope["path"] = prefix + scope["path"]
    return scope


async def _in_pool(pool: ThreadPoolExecutor, func: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(pool, lambda: func(*args))


async def _signing_in(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` on the sign-in pool, where ``blocking.compute`` hands its work back to
    this loop, in a context of its own (none of it stays with the thread)."""
    loop = asyncio.get_running_loop()

    def work() -> Any:
        computing_on(lambda f, *a: _run_on(loop, f, *a))
        return func(*args)
    return await loop.run_in_executor(_SIGN_IN_POOL, contextvars.Context().run, work)


def _run_on(loop: asyncio.AbstractEventLoop, func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` on ``loop``'s thread, from another thread; here instead when the loop has
    stopped before starting it (a server shutting down), so the caller never waits forever."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(func(*args))
            except BaseException as exc:
                future.set_exception(exc)
    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:  # closed
        return func(*args)
    while True:
        try:
            return future.result(timeout=1.0)
        except TimeoutError:
            if not loop.is_running() and future.cancel():
                return func(*args)


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None when it is larger than any form of ours."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _with_cookies(send: Send, cookies: list[str]) -> Send:
    if not cookies:
        return send

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()),
                                              *((b"set-cookie", c.encode("latin-1")) for c in cookies)]}
        await send(message)
    return sending


async def _refuse_handshake(scope: Scope, answer: Answer, send: Send) -> None:
    """A refused WebSocket gets the guard's HTTP answer where the server can send one (401, 403,
    503), else a close before accept, which the server turns into a 403."""
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
        await send({"type": "websocket.http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": answer.body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def _header_dict(answer: Answer) -> Any:
    from starlette.datastructures import MutableHeaders

    headers = MutableHeaders()
    for name, value in answer.headers.items():
        headers.append(name, value)
    return headers
