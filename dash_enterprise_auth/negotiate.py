"""Signing in with HTTP Negotiate (RFC 4559): the sign-in route of a :class:`NegotiateConnector`.

GET ``/_dash-auth/login`` without ``Authorization: Negotiate`` answers ``401`` with
``WWW-Authenticate: Negotiate`` and a page; a browser holding a Kerberos ticket
for the app's host (and allowed to use it there by its policy) asks the same URL
again with its token, never showing that page. An accepted token starts a
session and sends the browser on to ``next``, with the acceptor's answer in
``WWW-Authenticate`` (mutual authentication). A token that does not sign anyone
in (garbage, truncated, forged, replayed, from a realm not allowed) gets the
page again, saying why, with no session.

The challenge page is where a person without a ticket lands; it is the one
place to offer other ways in. It loads itself once more (``&negotiate=again``,
a meta refresh, no script): a fresh Chromium process leaves the first
challenge it meets unanswered and answers the next one, so a person whose
browser has a ticket never reads it.
"""
from __future__ import annotations

import base64
import binascii
import logging
from typing import Any, Mapping, cast

from .audit import audit
from .blocking import refuse_io
from .connectors.base import NegotiateConnector
from .errors import AuthenticationError, ProviderRefused, ServiceUnavailable
from .pages import api_error, wants_html
from .protection import Protection
from .round_trip import used_once
from .web import Answer, Request

log = logging.getLogger("dash_enterprise_auth")

NEEDED = ("This app signs you in with your Kerberos (Windows domain) sign-in, and your browser did not offer "
          "it. Sign in to your computer's domain (or run kinit), check that your browser allows single sign-on "
          "to this site, then try again.")
FAILED = "Kerberos sign-in failed. Sign in to your computer's domain (or run kinit) and try again."
AGAIN = "negotiate"  # the query parameter of the challenge page's one reload
AGAIN_QUERY = f"&{AGAIN}=again"
#: Base64 of the largest token accepted (connectors refuse larger decoded tokens themselves).
MAX_HEADER = 96 * 1024


def sign_in(protection: Protection, request: Request, next_url: str, others: Mapping[str, Any]) -> Answer:
    """The sign-in route's answer to a GET: a challenge, a refusal, or a session and ``next_url``.
    ``others`` are the other methods the challenge page offers (the sign-in page's context)."""
    connector = cast(NegotiateConnector, protection.methods.negotiate)
    scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != connector.scheme.lower():
        again = None if request.args.get(AGAIN) else protection.prefixes.sign_in_url(request, next_url) + AGAIN_QUERY
        return challenge(protection, request, next_url, 401, "Kerberos sign-in needed", NEEDED, again, others)
    refuse_io("accepting a Negotiate token")
    try:
        token = _decode(value)
        negotiated = connector.accept(token, _host_name(request.host))
        identity = protection.from_directory(used_once(protection, negotiated.identity))
        session = protection.complete_sign_in(identity, request, via=connector.name, forwarded=negotiated.delegated)
    except ServiceUnavailable as exc:
        log.error("dash-enterprise-auth: %s", exc.log_detail)
        return protection.pages.problem(request, 503, exc.user_message, "Sign-in unavailable")
    except AuthenticationError as exc:
        return _refused(protection, request, next_url, exc, others)
    except Exception:  # a connector bug refuses the sign-in; it never becomes a 500
        log.exception("dash-enterprise-auth: the %s connector failed on a Negotiate token", connector.name)
        return _refused(protection, request, next_url, ProviderRefused(FAILED, log_detail="connector error"), others)
    answer = Answer.redirect(next_url)
    if negotiated.reply:
        answer.headers["WWW-Authenticate"] = f"{connector.scheme} {base64.b64encode(negotiated.reply).decode()}"
    protection.set_cookie(answer, request, session)
    return answer


def challenge(protection: Protection, request: Request, next_url: str, status: int, title: str,
              message: str, again_url: str | None = None, others: Mapping[str, Any] | None = None) -> Answer:
    """The page (or JSON for scripts) with ``WWW-Authenticate: Negotiate``: a browser with a ticket
    answers it unseen; anyone else reads why they are not signed in and may try again. The page
    loads ``again_url`` at once, when given."""
    connector = cast(NegotiateConnector, protection.methods.negotiate)
    retry = protection.prefixes.sign_in_url(request, next_url)
    if wants_html(request):
        answer = protection.pages.page(request, "negotiate.html", status, title=title, message=message,
                                       retry_url=retry, again_url=again_url, **(others or {}))
    else:
        answer = api_error(status, message, sign_in_url=retry)
    if status == 401:
        answer.headers["WWW-Authenticate"] = connector.scheme
    return answer


def _refused(protection: Protection, request: Request, next_url: str, exc: AuthenticationError,
             others: Mapping[str, Any]) -> Answer:
    audit("sign_in_failed", user=None, client=request.client, outcome="refused",
          via=protection.methods.negotiate.name if protection.methods.negotiate else "negotiate",
          reason=exc.log_detail or type(exc).__name__)
    return challenge(protection, request, next_url, exc.status, "Kerberos sign-in failed", exc.user_message,
                     others=others)


def _decode(value: str) -> bytes:
    value = value.strip()
    if not value or len(value) > MAX_HEADER:
        raise ProviderRefused(FAILED, log_detail=f"a Negotiate header of {len(value)} characters")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderRefused(FAILED, log_detail="a Negotiate header that is not base64") from None


def _host_name(host: str) -> str:
    """The host name the browser used (its ticket names it), without the port, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host
