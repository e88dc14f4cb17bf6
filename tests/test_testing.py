"""dash_enterprise_auth.testing gives app authors a signed-in test client on every backend."""
from __future__ import annotations

import asyncio

import pytest

from dash_enterprise_auth.testing import session_cookie, signed_in_client

from .conftest import UPDATE_GREETING


@pytest.mark.parametrize("backend", ["flask", "fastapi"])
def test_signed_in_client_carries_a_live_session(make_app, backend):
    app = make_app({"backend": backend})
    allowed = signed_in_client(app, "dora", groups=["analysts"]).post("/_dash-update-component", json=UPDATE_GREETING)
    assert allowed.status_code == 200 and "Hello dora" in allowed.text
    outsider = signed_in_client(app, "eve", groups=["outsiders"])
    assert outsider.post("/_dash-update-component", json=UPDATE_GREETING).status_code == 403


def test_signed_in_client_on_quart_is_its_async_test_client(make_app):
    app = make_app({"backend": "quart"})

    async def greet() -> tuple[int, str]:
        client = signed_in_client(app, "dora", groups=["analysts"])
        answer = await client.post("/_dash-update-component", json=UPDATE_GREETING)
        return answer.status_code, await answer.get_data(as_text=True)

    status, body = asyncio.run(greet())
    assert status == 200 and "Hello dora" in body


def test_session_cookie_serves_any_client(make_app):
    app = make_app()
    name, value = session_cookie(app, "dora", groups=["analysts"])
    client = app.server.test_client()
    client.set_cookie(name, value)
    assert "Hello dora" in client.post("/_dash-update-component", json=UPDATE_GREETING).get_data(as_text=True)

