"""Secret links: a visitor with the app's ``share_key`` sees it without signing in.

Only connectors that have such a key (Plotly's ``secret`` sharing) admit
one. The first page load carries ``?share_key=...``; the browser then gets an
HttpOnly cookie holding the key, signed with the app secret and as long-lived
as a session, so the Dash requests that follow (which carry no query) are
admitted too. The connector re-checks the key every time: when the owner
changes or disables it, the cookie stops working.
"""
from __future__ import annotations

from typing import Callable

from itsdangerous import BadSignature, TimestampSigner
from werkzeug.http import dump_cookie

from .blocking import refuse_io
from .settings import Secret
from .web import Request

COOKIE = "dash-auth-share"
MAX_KEY_LENGTH = 256


class ShareLinks:
    def __init__(self, admits: Callable[[str], bool], secret_key: Secret, max_age: int,
                 cookie_path: Callable[[Request], str]) -> None:
        self.admits = admits
        self.signer = TimestampSigner(secret_key.reveal(), salt="dash-enterprise-auth share link")
        self.max_age = max_age
        self.cookie_path = cookie_path

    def admit(self, request: Request) -> tuple[bool, str | None]:
        """Whether this anonymous request comes with a valid secret link (query or cookie), and
        the ``Set-Cookie`` value that keeps a link from the query for the requests that follow."""
        key = request.args.get("share_key", "")
        if key and len(key) <= MAX_KEY_LENGTH:
            refuse_io("asking the provider about a share key")
            if self.admits(key):
                signed = self.signer.sign(key).decode()
                return True, dump_cookie(COOKIE, signed, max_age=self.max_age, path=self.cookie_path(request),
                                         secure=request.is_secure, httponly=True, samesite="Lax")
        cookie = request.cookies.get(COOKIE, "")
        if not cookie or len(cookie) > 2 * MAX_KEY_LENGTH:
            return False, None
        try:
            key = self.signer.unsign(cookie, max_age=self.max_age).decode()
        except (BadSignature, UnicodeDecodeError):
            return False, None
        refuse_io("asking the provider about a share key")
        return self.admits(key), None
