"""The package's own responses: HTML pages for people, JSON for scripts and Dash.

Templates live in ``templates/dash_auth/``; an app overrides any of them by
shipping a file of the same name in its own ``templates/dash_auth/`` folder.
"""
from __future__ import annotations

from typing import Any

from flask import Request, Response, jsonify, render_template

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def wants_html(request: Request) -> bool:
    """A browser navigating to a page, as opposed to Dash's fetches or a script."""
    mode = request.headers.get("Sec-Fetch-Mode")
    if mode is not None:
        return mode == "navigate"
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


def page(template: str, status: int = 200, **context: Any) -> Response:
    response = Response(render_template(f"dash_auth/{template}", **context), status)
    response.headers.update(PAGE_HEADERS)
    return response


def api_error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify({"error": message, **extra})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def problem(request: Request, status: int, message: str, title: str, app_title: str,
            **extra: Any) -> Response:
    """An error a person reads as a page and a script reads as JSON."""
    if wants_html(request):
        return page("message.html", status, title=title, message=message, app_title=app_title, **extra)
    return api_error(status, message)
