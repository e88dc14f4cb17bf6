"""The plain values the core works on: an incoming request and the answer to it.

The guard, the session layer and every package route read a :class:`Request`
and return an :class:`Answer`. They never touch Flask, Starlette or Quart:
the WSGI adapter (``flask_adapter``) and the ASGI middleware (``asgi``) only
translate, so a rule is written once and holds on every Dash backend.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping
from urllib.parse import parse_qsl

from werkzeug.datastructures import Headers
from werkzeug.http import dump_cookie, parse_cookie

# Headers of every page the package renders: never cached, never framed, no third-party anything.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class Request:
    """What the core sees of a request. ``path`` is the route path (without ``script_root``,
    the mount point a reverse proxy or the ASGI server adds in front of the app).
    ``headers`` is the server's own mapping, read with ``get`` and ``in`` by any case of a
    name (never copied: the guard runs on every request)."""

    method: str
    path: str
    query_string: str = ""
    headers: Mapping[str, str] = field(default_factory=Headers)
    cookies: Mapping[str, str] | CookieHeader = field(default_factory=dict)
    form: Mapping[str, str] = field(default_factory=dict)
    client: str = ""
    scheme: str = "http"
    host: str = "localhost"
    script_root: str = ""

    @cached_property
    def args(self) -> dict[str, str]:
        """The query parameters; the first value of a repeated one, as Flask's ``args.get``."""
        args: dict[str, str] = {}
        for name, value in parse_qsl(self.query_string, keep_blank_values=True):
            args.setdefault(name, value)
        return args

    def value(self, name: str) -> str | None:
        """A query parameter, else a form field (Flask's ``request.values``)."""
        found = self.args.get(name)
        return found if found is not None else self.form.get(name)

    @property
    def is_secure(self) -> bool:
        return self.scheme in ("https", "wss")

    @property
    def host_url(self) -> str:
        """``scheme://host/`` as the browser reached this server."""
        return f"{'https' if self.is_secure else 'http'}://{self.host}/"


class CookieHeader:
    """A request's cookies, looked up in its ``Cookie`` header by name (the first of repeated
    ones, as werkzeug does). Only the package's own cookies are ever read, so the header is
    not parsed whole on every request; a quoted value, which the package never sets, goes to
    werkzeug's parser."""

    def __init__(self, header: str) -> None:
        self.header = header

    def get(self, name: str, default: str | None = None) -> str | None:
        prefix = name + "="
        for part in self.header.split(";"):
            part = part.strip()
            if part.startswith(prefix):
                value = part[len(prefix):]
                return parse_cookie(self.header).get(name, default) if value.startswith('"') else value
        return default


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the sign-in form, SAML's POST binding)."""
    form: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8"):
        form.setdefault(name, value)
    return form


@dataclass
class Answer:
    """The response the core decided on: status, headers (cookies included) and body."""

    status: int = 200
    body: bytes = b""
    headers: Headers = field(default_factory=Headers)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> "Answer":
        return cls(status, b"", Headers({"Location": location, "Content-Type": "text/html; charset=utf-8"}))

    @classmethod
    def json(cls, status: int, data: Mapping[str, Any]) -> "Answer":
        return cls(status, json.dumps(data).encode(), Headers({"Content-Type": "application/json",
                                                                "Cache-Control": "no-store"}))

    @classmethod
    def html(cls, status: int, text: str) -> "Answer":
        return cls(status, text.encode(), Headers({"Content-Type": "text/html; charset=utf-8", **PAGE_HEADERS}))

    def set_cookie(self, name: str, value: str, *, path: str, secure: bool, max_age: int | None = None) -> None:
        """Every cookie of the package is HttpOnly and SameSite=Lax."""
        self.headers.add("Set-Cookie", dump_cookie(name, value, max_age=max_age, path=path, secure=secure,
                                                   httponly=True, samesite="Lax"))

    def delete_cookie(self, name: str, *, path: str, secure: bool) -> None:
        self.headers.add("Set-Cookie", dump_cookie(name, "", max_age=0, expires=0, path=path, secure=secure,
                                                   httponly=True, samesite="Lax"))
