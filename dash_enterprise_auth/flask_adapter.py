"""The WSGI adapter: the guard and the package's routes on a Flask server (Dash's Flask backend).

A ``before_request`` function, first in line, turns Flask's request into a
plain :class:`~dash_enterprise_auth.web.Request`, asks the guard, and either
answers (refusals, the package's own routes) or lets Flask go on with the
viewer set for the rest of the request. No policy lives here.
"""
from __future__ import annotations

from typing import Any

import flask

from . import routes
from .admissions import COOKIE_HEADER_MAX_LENGTH
from .errors import AuthenticationError
from .guard import Admit, answer_failure, check, is_package_route
from .protection import Protection
from .viewer import Seen, forget, show
from .web import Answer, CookieHeader, Request

_TOKEN = "_dash_auth_viewer_token"


def install(server: flask.Flask, protection: Protection) -> None:
    server.before_request_funcs.setdefault(None, []).insert(0, lambda: _before(protection))
    server.register_error_handler(AuthenticationError, lambda exc: _failure(protection, exc))
    server.teardown_request_funcs.setdefault(None, []).append(_teardown)


def plain_request(req: flask.Request) -> Request:
    """The request without its body (the guard reads none; the package's routes add the form)."""
    return Request(
        method=req.method, path=req.path, query_string=req.query_string.decode("latin-1"),
        # The Cookie header itself: Flask's ``req.cookies`` finds it by walking every header.
        headers=req.headers, cookies=CookieHeader(req.environ.get("HTTP_COOKIE", "")),
        client=req.remote_addr or "", scheme=req.scheme, host=req.host, script_root=req.script_root,
    )


def flask_response(answer: Answer) -> flask.Response:
    return flask.Response(answer.body, answer.status, headers=answer.headers)


def admission_key(environ: dict[str, Any]) -> tuple | None:
    """What the guard's check reads of a request to find its session (see ``admissions``); None
    when no admission applies: no cookie or a very long one, an ``Authorization`` header."""
    cookie = environ.get("HTTP_COOKIE")
    if not cookie or len(cookie) > COOKIE_HEADER_MAX_LENGTH or "HTTP_AUTHORIZATION" in environ:
        return None
    return cookie, environ.get("wsgi.url_scheme"), environ.get("SCRIPT_NAME")


def _before(protection: Protection) -> flask.Response | None:
    req = flask.request._get_current_object()  # one proxy lookup instead of one per use
    key, path = admission_key(req.environ), req.environ.get("PATH_INFO", "")
    seen = protection.admissions.seen(key, path)
    if seen is not None:  # admitted before, and nothing has changed since
        setattr(flask.g, _TOKEN, show(seen))
        return None
    request = plain_request(req)
    outcome = check(protection, request)
    if isinstance(outcome, Answer):
        return flask_response(outcome)
    seen = Seen(protection, outcome.viewer, request.script_root)
    setattr(flask.g, _TOKEN, show(seen))
    own_route = is_package_route(protection, request)
    if outcome.cookies:
        _add_cookies(outcome)
    elif not own_route:
        protection.admissions.remember(key, path, seen)
    if own_route:
        if req.method == "POST":
            request.form = req.form.to_dict()
        return flask_response(routes.handle(protection, request, outcome.viewer))
    return None


def _add_cookies(outcome: Admit) -> None:
    @flask.after_this_request
    def add(response: flask.Response) -> flask.Response:
        for cookie in outcome.cookies:
            response.headers.add("Set-Cookie", cookie)
        return response


def _failure(protection: Protection, exc: AuthenticationError) -> flask.Response:
    return flask_response(answer_failure(protection, plain_request(flask.request), exc))


def _teardown(_exc: Any) -> None:
    token = flask.g.pop(_TOKEN, None)
    if token is not None:
        forget(token)
