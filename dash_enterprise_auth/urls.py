"""URLs as the browser sees them, and the one rule for where ``next`` may point.

Dash serves routes under ``routes_pathname_prefix`` while browsers reach them
under ``requests_pathname_prefix`` (and a reverse proxy may add a script root).
Redirects here are always host-relative paths, so a forged Host header can
never turn them into a redirect to another site.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from urllib.parse import quote, urlsplit

from .web import Request


@dataclass(frozen=True)
class Prefixes:
    routes: str = "/"  # where the server routes them
    requests: str = "/"  # where the browser reaches them

    def external(self, request: Request, route_path: str) -> str:
        """The browser-facing path of a route path such as ``/_dash-auth/login``."""
        if not route_path.startswith(self.routes):
            return request.script_root + route_path  # a route of the server outside Dash's prefix
        return request.script_root + self.requests + route_path[len(self.routes):]

    def app_root(self, request: Request) -> str:
        return request.script_root + self.requests

    @cached_property
    def package_routes(self) -> str:
        """Where the package's own routes start (asked on every request)."""
        return self.package_route("")

    def package_route(self, name: str) -> str:
        """The route path of one of the package's own routes, e.g. ``login``."""
        return f"{self.routes}_dash-auth/{name}"

    def package_url(self, request: Request, name: str) -> str:
        return self.external(request, self.package_route(name))

    def current_url(self, request: Request) -> str:
        """The browser-facing path and query of this request, fit for ``next``."""
        query = request.query_string
        return self.external(request, request.path) + (f"?{query}" if query else "")

    def sign_in_url(self, request: Request, next_url: str | None = None) -> str:
        target = next_url if next_url is not None else self.current_url(request)
        return self.package_url(request, "login") + "?next=" + quote(target, safe="/")


def safe_next(value: str | None, fallback: str) -> str:
    """``value`` if it is a path on this origin, else ``fallback``.

    Refused: absolute and scheme-relative URLs (``//evil``), backslashes that
    browsers read as slashes (``/\\evil``), control characters and anything
    that does not start with a single ``/``.
    """
    if not value or len(value) > 2048 or not value.startswith("/"):
        return fallback
    if value.startswith("//") or "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return fallback
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return fallback
    return value
