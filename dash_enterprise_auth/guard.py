"""The guard: every request passes here before any view, callback or file of the app.

request ─► who is it (Authorization header, else session cookie)
        ─► decide(policy, identity, path)
        ─► admit │ sign in (page redirect, or 401 JSON for Dash and scripts) │ 403

A store or provider failure answers 503 and lets nobody through. A package error
raised later, in an app's callback or view (a store that refuses
``set_user_data``, a session ended meanwhile), gets the same answers, never a 500.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .audit import audit
from .errors import AuthenticationError, ConfigurationError, ServiceUnavailable, SessionEnded, SignInRequired
from .pages import api_error, wants_html
from .privacy import Decision, decide
from .protection import Protection
from .viewer import Viewer
from .web import Answer, Request

log = logging.getLogger("dash_enterprise_auth")


@dataclass
class Admit:
    """The request may go on, as ``viewer`` (None: anonymous). ``cookies`` are ``Set-Cookie``
    values to add to whatever the app answers."""

    viewer: Viewer | None
    cookies: list[str] = field(default_factory=list)


def check(protection: Protection, request: Request) -> Answer | Admit:
    """Admit the request, or the answer that stops it."""
    own_route = is_package_route(protection, request)
    try:
        viewer = _identify(protection, request, own_route)
    except ServiceUnavailable as exc:
        if own_route:
            return Admit(None)  # the package's pages report the outage themselves
        return _unavailable(protection, request, exc)
    except AuthenticationError as exc:  # bad Authorization header
        answer = api_error(exc.status, exc.user_message)
        if exc.status == 429:
            answer.headers["Retry-After"] = str(getattr(exc, "retry_after", 60))
        else:
            answer.headers["WWW-Authenticate"] = 'Basic realm="dash", charset="UTF-8"'
        return answer

    try:
        pages = protection.page_access.pages() if protection.page_access is not None else None
    except ConfigurationError as exc:  # a page registered after start-up with a bad rule
        log.error("dash-enterprise-auth: refusing %s: %s", request.path, exc)
        return protection.pages.problem(request, 500, "This app is misconfigured; its operator can read why "
                                        "in the server log.", "Misconfigured")
    decision = decide(protection.policy, viewer.identity if viewer else None, request.path, pages)
    if decision is Decision.ALLOW:
        return Admit(viewer)
    if decision is Decision.SIGN_IN:
        admitted, cookie = protection.share_links.admit(request)
        if admitted:
            return Admit(None, [cookie] if cookie else [])
        return ask_to_sign_in(protection, request)
    audit("forbidden", user=viewer.identity.username, client=request.client, outcome="refused", path=request.path)
    page = protection.page_access.page_name(request.path) if pages is not None else None
    if wants_html(request):
        return protection.pages.page(request, "forbidden.html", 403, viewer=viewer.identity, page=page,
                                     home_url=protection.prefixes.app_root(request),
                                     logout_url=protection.prefixes.package_url(request, "logout"))
    return api_error(403, f"Signed in as {viewer.identity.username}, who may not use this "
                          f"{'page' if page else 'app'}.")


def is_package_route(protection: Protection, request: Request) -> bool:
    return request.path.startswith(protection.prefixes.package_routes)


def answer_failure(protection: Protection, request: Request, exc: AuthenticationError) -> Answer:
    """The answer to a package error that escaped an app's callback or view: what the guard
    would have answered had it known before the view ran."""
    if isinstance(exc, ServiceUnavailable):
        return _unavailable(protection, request, exc)
    if isinstance(exc, SessionEnded):
        answer = ask_to_sign_in(protection, request)
        protection.clear_cookie(answer, request)
        return answer
    if isinstance(exc, SignInRequired):
        return ask_to_sign_in(protection, request)
    log.warning("dash-enterprise-auth: %s on %s: %s", type(exc).__name__, request.path, exc.log_detail)
    return protection.pages.problem(request, exc.status, exc.user_message, "Not allowed")


def ask_to_sign_in(protection: Protection, request: Request) -> Answer:
    sign_in_url = protection.prefixes.sign_in_url(request)
    if wants_html(request):
        return Answer.redirect(sign_in_url)
    answer = api_error(401, "Not signed in, or the session has ended. Sign in again.", sign_in_url=sign_in_url)
    # Scripts get the standard challenge; browsers (which send Sec-Fetch-Mode) get no popup.
    if protection.accepts_passwords and "Sec-Fetch-Mode" not in request.headers:
        answer.headers["WWW-Authenticate"] = 'Basic realm="dash", charset="UTF-8"'
    return answer


def _unavailable(protection: Protection, request: Request, exc: ServiceUnavailable) -> Answer:
    log.error("dash-enterprise-auth: refusing %s: %s", request.path, exc.log_detail)
    audit("service_unavailable", user=None, client=request.client, outcome="refused", reason=exc.log_detail)
    return protection.pages.problem(request, 503, exc.user_message, "Sign-in unavailable")


def _identify(protection: Protection, request: Request, own_route: bool) -> Viewer | None:
    if not own_route:
        from_header = protection.viewer_from_header(request)
        if from_header is not None:
            return from_header
    return protection.viewer_from_cookie(request)
