"""The package's own responses: HTML pages for people, JSON for scripts and Dash.

Templates live in ``templates/dash_auth/``; an app overrides any of them by
shipping a file of the same name in its own ``templates/dash_auth/`` folder.
They are rendered with Jinja2 directly, so a page looks the same on every
Dash backend.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from jinja2 import BaseLoader, ChoiceLoader, Environment, PackageLoader, TemplateNotFound, select_autoescape

from .urls import Prefixes
from .web import Answer, Request


def wants_html(request: Request) -> bool:
    """A browser navigating to a page, as opposed to Dash's fetches or a script."""
    mode = request.headers.get("Sec-Fetch-Mode")
    if mode is not None:
        return mode == "navigate"
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


def api_error(status: int, message: str, **extra: Any) -> Answer:
    return Answer.json(status, {"error": message, **extra})


class _AppTemplates(BaseLoader):
    """The app's own ``templates/`` folder, looked up at each render (it may be set late)."""

    def __init__(self, folder: Callable[[], str | None]) -> None:
        self.folder = folder

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        folder = self.folder()
        path = os.path.join(folder, *template.split("/")) if folder else None
        if path is None or not os.path.isfile(path):
            raise TemplateNotFound(template)
        with open(path, encoding="utf-8") as file:
            source = file.read()
        mtime = os.path.getmtime(path)
        return source, path, lambda: os.path.isfile(path) and os.path.getmtime(path) == mtime


class Pages:
    """Renders the package's pages, preferring the app's copies of its templates."""

    def __init__(self, app_templates: Callable[[], str | None], app_title: Callable[[], str],
                 prefixes: Prefixes) -> None:
        self.app_title = app_title
        self.prefixes = prefixes
        self.env = Environment(
            loader=ChoiceLoader([_AppTemplates(app_templates), PackageLoader("dash_enterprise_auth", "templates")]),
            autoescape=select_autoescape(["html"]), auto_reload=True,
        )

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> Answer:
        text = self.env.get_template(f"dash_auth/{template}").render(
            app_title=self.app_title(), static_url=self.prefixes.package_url(request, "static/"), **context)
        return Answer.html(status, text)

    def problem(self, request: Request, status: int, message: str, title: str, **extra: Any) -> Answer:
        """An error a person reads as a page and a script reads as JSON."""
        if wants_html(request):
            return self.page(request, "message.html", status, title=title, message=message, **extra)
        return api_error(status, message)
