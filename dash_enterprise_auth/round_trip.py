"""The state of a sign-in at an identity provider, from the redirect out to the callback.

The core makes a random, single-use state value, keeps the connector's pending
data in the session store under a hash of it (so every worker and host can
finish the sign-in), and, for connectors that bind the browser, sets it in a
short-lived SameSite cookie: a callback carrying someone else's state, a
replayed one or an expired one is refused before the connector sees it.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import replace

from .connectors import Connector, Identity, ProviderRequest, RedirectConnector
from .errors import Replayed, SignInExpired, WrongBrowser
from .protection import Protection
from .web import Answer, Request

PENDING_TTL = 600  # seconds a person has to finish signing in at the provider
STATE_COOKIE = "dash-auth-state"
MAX_STATE_LENGTH = 256


def _pending_key(state: str) -> str:
    return "state:" + hashlib.sha256(state.encode()).hexdigest()


def provider_request(protection: Protection, request: Request, connector: Connector) -> ProviderRequest:
    name = connector.name
    callback = request.host_url.rstrip("/") + protection.prefixes.package_url(request, f"callback/{name}")
    return ProviderRequest(
        method=request.method,
        args=dict(request.args),
        form=dict(request.form) if request.method == "POST" else {},
        callback_url=callback,
        client=request.client,
    )


def start(protection: Protection, request: Request, next_url: str, connector: RedirectConnector) -> Answer:
    """Send the browser to the provider, remembering where it wants to go afterwards."""
    state = secrets.token_urlsafe(32)
    redirect = connector.login(provider_request(protection, request, connector), state)
    protection.store.put_pending(
        _pending_key(state), {"connector": connector.name, "next": next_url, "data": dict(redirect.pending)},
        PENDING_TTL,
    )
    answer = Answer.redirect(redirect.url)
    if connector.binds_browser:
        answer.set_cookie(STATE_COOKIE, state, max_age=PENDING_TTL, path=protection.prefixes.app_root(request),
                          secure=request.is_secure)
    return answer


def finish(protection: Protection, request: Request, connector: RedirectConnector) -> tuple[Identity, str]:
    """The identity and the ``next`` path of a callback; AuthenticationError when refused."""
    state = request.value(connector.state_field) or ""
    usable = bool(state) and len(state) <= MAX_STATE_LENGTH
    # The browser binding is checked before the single-use state is taken: a stray use of the
    # callback URL (a link scanner, a prefetching proxy, a replayed leaked URL) must be refused
    # without spending the sign-in that the right browser is about to finish.
    if usable and connector.binds_browser and not hmac.compare_digest(request.cookies.get(STATE_COOKIE, ""), state):
        raise WrongBrowser(log_detail="state cookie missing or different")
    pending = protection.store.take_pending(_pending_key(state)) if usable else None
    if pending is None and connector.accepts_unsolicited():
        identity = connector.complete(provider_request(protection, request, connector), {})
        return used_once(protection, identity), protection.prefixes.app_root(request)
    if not usable:
        raise SignInExpired(log_detail="callback without a usable state")
    if pending is None or pending.get("connector") != connector.name:
        raise SignInExpired(log_detail="unknown, used or expired state")
    identity = connector.complete(provider_request(protection, request, connector), pending.get("data") or {})
    return used_once(protection, identity), str(pending.get("next") or protection.prefixes.app_root(request))


def used_once(protection: Protection, identity: Identity) -> Identity:
    """Refuse an identity whose one-time id (``private["once"]``: a SAML assertion id or a Kerberos
    authenticator's digest, and how long it is valid) was seen before, on any worker or host; then drop that id."""
    once = identity.private.get("once")
    if not once:
        return identity
    ttl = float(once.get("until", 0)) - time.time()
    if not once.get("id") or ttl <= 0:
        raise Replayed(log_detail="one-time id missing or already expired")
    if not protection.store.remember_once(f"{identity.connector}:{once['id']}", ttl):
        raise Replayed(log_detail=f"one-time id {str(once['id'])[:80]} seen before: replay")
    return replace(identity, private={k: v for k, v in identity.private.items() if k != "once"})


def forget_state(protection: Protection, request: Request, answer: Answer) -> None:
    answer.delete_cookie(STATE_COOKIE, path=protection.prefixes.app_root(request), secure=request.is_secure)
