"""The server's own share of an ACS post, for bench/saml_acs.py.

The least any app must do with the IdP's POST: read the whole form and answer a 302 that sets a
cookie of a session cookie's size (any other request: an empty 200, for the readiness check).
Served by the same program, with the same workers, as the app (``wsgi`` under gunicorn, ``asgi``
under uvicorn or hypercorn), it shows what the server costs before the package or python3-saml
does anything.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

COOKIE = "dash-auth-session=" + "x" * 200 + "; Path=/; HttpOnly; SameSite=Lax"
HEADERS = [("Location", "/"), ("Set-Cookie", COOKIE), ("Content-Length", "0")]


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    if environ["REQUEST_METHOD"] != "POST":
        start_response("200 OK", [("Content-Length", "0")])
    else:
        start_response("302 Found", HEADERS)
    return [b""]


async def asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            done = message["type"] == "lifespan.shutdown"
            await send({"type": message["type"] + ".complete"})
            if done:
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False) and message["type"] == "http.request"
    post = scope["method"] == "POST"
    await send({"type": "http.response.start", "status": 302 if post else 200,
                "headers": [(k.lower().encode(), v.encode()) for k, v in (HEADERS if post else HEADERS[2:])]})
    await send({"type": "http.response.body", "body": b""})
