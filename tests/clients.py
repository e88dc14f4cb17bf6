"""One synchronous test client for a Dash app on any backend, answering like Flask's test client.

So an in-process behaviour test is written once and runs on Flask, FastAPI (Starlette's
TestClient) and Quart (its async test client, driven on a private event loop).
"""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

import flask
import pytest
from werkzeug.datastructures import Headers

BACKENDS = ("flask", "fastapi", "quart")


@pytest.fixture(name="make_app", params=BACKENDS)
def make_app_on_every_backend(request: Any, make_app: Any) -> Any:
    """conftest's ``make_app``, once per Dash backend: import it into a test module
    (``from .clients import make_app_on_every_backend``) and every test there runs on all three."""
    def build(dash_kwargs: dict | None = None, **settings: Any) -> Any:
        return make_app({**(dash_kwargs or {}), "backend": request.param}, **settings)
    return build


class Answer:
    """What a test reads of a response: ``status_code``, ``headers``, ``data``, ``get_json()``."""

    def __init__(self, status_code: int, headers: Headers, data: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.data = data

    def get_data(self, as_text: bool = False) -> Any:
        return self.data.decode() if as_text else self.data

    def get_json(self) -> Any:
        """The body as JSON, or None (Dash's FastAPI backend sends callback answers without a
        Content-Type, so the body decides)."""
        try:
            return json.loads(self.data)
        except ValueError:
            return None

    @property
    def text(self) -> str:
        return self.data.decode()


def client_of(app: Any) -> Any:
    server = app.server
    if isinstance(server, flask.Flask):
        return server.test_client()
    if hasattr(server, "build_middleware_stack"):
        return _StarletteClient(server)
    return _QuartClient(server)


class _StarletteClient:
    def __init__(self, server: Any) -> None:
        from starlette.testclient import TestClient

        self.client = TestClient(server, base_url="http://localhost", follow_redirects=False)

    def open(self, method: str, path: str, *, data: Any = None, json: Any = None, headers: Any = None,
             query_string: Any = None) -> Answer:
        path += "?" + urlencode(query_string) if query_string else ""
        response = self.client.request(method, path, data=data, json=json, headers=headers)
        return Answer(response.status_code, Headers(response.headers.multi_items()), response.content)

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.open("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Answer:
        return self.open("POST", path, **kwargs)

    def set_cookie(self, name: str, value: str, path: str = "/") -> None:
        for cookie in [c for c in self.client.cookies.jar if c.name == name]:  # replace, as Flask's client does
            self.client.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
        self.client.cookies.set(name, value if value.isascii() else quote(value),  # httpx sends ASCII only
                                domain="localhost.local", path=path)  # cookielib names the host so

    def get_cookie(self, name: str) -> Any:
        value = self.client.cookies.get(name)
        return SimpleNamespace(value=value) if value is not None else None


class _QuartClient:
    def __init__(self, server: Any) -> None:
        self.client = server.test_client()
        self.loop = asyncio.new_event_loop()

    def open(self, method: str, path: str, *, data: Any = None, json: Any = None, headers: Any = None,
             query_string: Any = None) -> Answer:
        async def call() -> Answer:
            body = {"form": data} if data is not None else {"json": json} if json is not None else {}
            response = await self.client.open(path, method=method, headers=headers, query_string=query_string,
                                              **body)
            return Answer(response.status_code, Headers(list(response.headers.items())), await response.get_data())
        return self.loop.run_until_complete(call())

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.open("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Answer:
        return self.open("POST", path, **kwargs)

    def set_cookie(self, name: str, value: str, path: str = "/") -> None:
        self.client.set_cookie("localhost", name, value, path=path)

    def get_cookie(self, name: str) -> Any:
        value = next((c.value for c in self.client.cookie_jar if c.name == name), None)
        return SimpleNamespace(value=value) if value is not None else None
