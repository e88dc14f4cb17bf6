"""Is a request from this app's own pages? Used to stop cross-site sign-in and sign-out.

Browsers say so in ``Sec-Fetch-Site``; older ones send ``Origin`` on POSTs and
a ``Referer`` on links. A request with none of these is not from a browser
page and cannot carry a cross-site attack.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

from .settings import Secret
from .web import Request


def _same_origin_url(url: str, request: Request) -> bool:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" == request.host_url.rstrip("/")


def is_cross_site(request: Request) -> bool:
    """True when a browser says the request comes from another site's page."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == "null" or not _same_origin_url(origin, request)
    return False


def is_same_origin_navigation(request: Request) -> bool:
    """True only when the browser positively says this came from our own page."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    referer = request.headers.get("Referer")
    return referer is not None and _same_origin_url(referer, request)


class FormToken:
    """A CSRF token bound to one session record, for the sign-out confirmation form."""

    MAX_AGE = 3600

    def __init__(self, secret_key: Secret) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key.reveal(), salt="dash-enterprise-auth.form")

    def issue(self, record_key: str) -> str:
        return self._serializer.dumps(record_key[:16])

    def valid(self, token: str | None, record_key: str) -> bool:
        if not token or len(token) > 512:
            return False
        try:
            return self._serializer.loads(token, max_age=self.MAX_AGE) == record_key[:16]
        except BadSignature:
            return False
