"""The guard: every request passes here before any view runs.

request ─► who is it (Authorization header, else session cookie)
        ─► decide(policy, identity, path)
        ─► allow │ sign in (page redirect, or 401 JSON for Dash and scripts) │ 403

A store or provider failure answers 503 and lets nobody through. A package error
raised later, in an app's callback or view (a store that refuses
``set_user_data``, a session ended meanwhile), gets the same answers, never a 500.
"""
from __future__ import annotations

import logging

import flask
from flask import Request, Response, request

from .audit import audit
from .errors import AuthenticationError, ServiceUnavailable, SessionEnded
from .pages import api_error, page, problem, wants_html
from .privacy import Decision, decide
from .protection import Protection
from .viewer import Viewer, set_request_viewer

log = logging.getLogger("dash_enterprise_auth")


def install_guard(server: flask.Flask, protection: Protection) -> None:
    server.before_request_funcs.setdefault(None, []).insert(0, lambda: guard(protection))
    server.register_error_handler(AuthenticationError, lambda exc: answer_failure(protection, exc))


def answer_failure(protection: Protection, exc: AuthenticationError) -> Response:
    """The answer to a package error that escaped an app's callback or view: what the guard
    would have answered had it known before the view ran."""
    if isinstance(exc, ServiceUnavailable):
        return _unavailable(protection, exc)
    if isinstance(exc, SessionEnded):
        response = _ask_to_sign_in(protection)
        protection.clear_cookie(response, request)
        return response
    log.warning("dash-enterprise-auth: %s on %s: %s", type(exc).__name__, request.path, exc.log_detail)
    return problem(request, exc.status, exc.user_message, "Not allowed", protection.title())


def guard(protection: Protection) -> Response | None:
    req = request._get_current_object()  # one proxy lookup instead of one per use
    own_route = req.path.startswith(protection.prefixes.package_route(""))
    try:
        viewer = _identify(protection, req, own_route)
    except ServiceUnavailable as exc:
        set_request_viewer(None)
        if own_route:
            return None  # the package's pages report the outage themselves
        return _unavailable(protection, exc)
    except AuthenticationError as exc:  # bad Authorization header
        set_request_viewer(None)
        response = api_error(exc.status, exc.user_message)
        if exc.status == 429:
            response.headers["Retry-After"] = str(getattr(exc, "retry_after", 60))
        else:
            response.headers["WWW-Authenticate"] = 'Basic realm="dash", charset="UTF-8"'
        return response

    set_request_viewer(viewer)
    decision = decide(protection.policy, viewer.identity if viewer else None, req.path)
    if decision is Decision.ALLOW:
        return None
    if decision is Decision.SIGN_IN:
        return None if protection.share_links.admit(req) else _ask_to_sign_in(protection)
    audit("forbidden", user=viewer.identity.username, client=request.remote_addr, outcome="refused",
          path=request.path)
    if wants_html(request):
        return page(
            "forbidden.html", 403, app_title=protection.title(), viewer=viewer.identity,
            logout_url=protection.prefixes.package_url(request, "logout"),
        )
    return api_error(403, f"Signed in as {viewer.identity.username}, who may not use this app.")


def _unavailable(protection: Protection, exc: ServiceUnavailable) -> Response:
    log.error("dash-enterprise-auth: refusing %s: %s", request.path, exc.log_detail)
    audit("service_unavailable", user=None, client=request.remote_addr, outcome="refused",
          reason=exc.log_detail)
    return problem(request, 503, exc.user_message, "Sign-in unavailable", protection.title())


def _identify(protection: Protection, req: Request, own_route: bool) -> Viewer | None:
    if not own_route:
        from_header = protection.viewer_from_header(req)
        if from_header is not None:
            return from_header
    return protection.viewer_from_cookie(req)


def _ask_to_sign_in(protection: Protection) -> Response:
    sign_in_url = protection.prefixes.sign_in_url(request)
    if wants_html(request):
        return flask.redirect(sign_in_url, 302)
    response = api_error(401, "Not signed in, or the session has ended. Sign in again.",
                         sign_in_url=sign_in_url)
    # Scripts get the standard challenge; browsers (which send Sec-Fetch-Mode) get no popup.
    if protection.accepts_passwords and "Sec-Fetch-Mode" not in request.headers:
        response.headers["WWW-Authenticate"] = 'Basic realm="dash", charset="UTF-8"'
    return response
