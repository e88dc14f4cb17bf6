"""A minimal redirect connector that exercises the core's sign-in round trip.

It stands in for no real provider: the real redirect protocols (OIDC, SAML)
are tested against real servers. The "provider" here is the test itself: it
reads where the browser was sent and comes back to the callback with the
state and a code, the way an OAuth provider would.
"""
from __future__ import annotations

import secrets
from typing import Any, Mapping
from urllib.parse import urlencode

from dash_enterprise_auth.connectors import Identity, ProviderRequest, Redirect, RedirectConnector
from dash_enterprise_auth.errors import AuthenticationError, InvalidCredentials

PROVIDER = "https://idp.example/authorize"


class RoundTripConnector(RedirectConnector):
    name = "roundtrip"

    def __init__(self, crash: bool = False, crash_at_login: bool = False) -> None:
        self.crash = crash
        self.crash_at_login = crash_at_login
        self.callback_urls: list[str] = []

    @classmethod
    def from_settings(cls, settings):
        return cls()

    def login(self, request: ProviderRequest, state: str) -> Redirect:
        if self.crash_at_login:
            raise KeyError("a bug in a connector")
        self.callback_urls.append(request.callback_url)
        nonce = secrets.token_hex(8)
        query = urlencode({"state": state, "nonce": nonce, "redirect_uri": request.callback_url})
        return Redirect(f"{PROVIDER}?{query}", pending={"nonce": nonce})

    def complete(self, request: ProviderRequest, pending: Mapping[str, Any]) -> Identity:
        if self.crash:
            raise KeyError("a bug in a connector")
        if "error" in request.args:
            raise AuthenticationError(f"The identity provider refused the sign-in ({request.args['error']}).")
        user, _, nonce = request.args.get("code", "").partition(".")
        if nonce != pending.get("nonce"):
            raise InvalidCredentials(log_detail="code for another sign-in")
        return Identity(username=user, groups=("analysts",), connector=self.name)
