"""Kerberos single sign-on as a person meets it: headless Chromium holding a real ticket from the suite's
MIT KDC (``KRB5CCNAME`` in its environment, as after ``kinit`` or a domain logon), allowed to answer
Negotiate for ``localhost`` (``--auth-server-allowlist``), opens the app and sees "Hello alice"
without any form. The app is tests/apps/connectors_app.py on Flask (gunicorn) and FastAPI (uvicorn).

Chromium 156 delegates credentials only for hosts in the ``auth.negotiate_delegate_whitelist``
preference of its profile's Local State (no command-line switch does it), so the delegation test
starts it on a profile folder with that file written first.

The first Negotiate challenge of a fresh Chromium process goes unanswered (it answers the next one;
in this suite, every time): the challenge page reloads itself once, so the person never sees it.
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import BrowserContext, expect, sync_playwright

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.servers.app_server import RunningApp, start_app
from tests.servers.negotiate_service import negotiate_get
from tests.test_kerberos import klist
from tests.test_spnego import person

BACKENDS = {"flask": "gunicorn", "fastapi": "uvicorn"}
NEEDED = "Kerberos sign-in needed"


@pytest.fixture(scope="module", params=list(BACKENDS))
def spnego_app(request, kdc, tmp_path_factory) -> Iterator[RunningApp]:
    backend = request.param
    state = tmp_path_factory.mktemp(f"spnego-{backend}")
    env = {"DASH_BACKEND": backend, "DASH_AUTH_CONNECTOR": "spnego", "DASH_AUTH_KRB5_REALM": kdc.realm,
           "DASH_AUTH_KRB5_KEYTAB": str(kdc.http_keytab), "DASH_AUTH_ALLOWED_USERS": "alice",
           "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
           "DASH_AUTH_SESSION_STORE": f"sqlite:///{state / 'sessions.sqlite3'}",
           "BACKGROUND_CACHE_DIR": str(state / "cache"), **kdc.env}
    app = start_app("tests.apps.connectors_app:server", env, state / "app.log", server=BACKENDS[backend])
    app.url = app.url.replace("127.0.0.1", "localhost")  # the browser asks a ticket for HTTP@localhost
    try:
        yield app
    finally:
        app.stop()
        assert "Traceback" not in app.log(), app.log()[-3000:]


@contextmanager
def chromium(profile: Path, ccache: Path | None, kdc, delegate: bool = False) -> Iterator[BrowserContext]:
    """Chromium on its own profile, with ``ccache`` as its tickets (none: an empty cache), allowed to
    answer Negotiate for localhost and, with ``delegate``, to delegate credentials there."""
    profile.mkdir(parents=True, exist_ok=True)
    if delegate:
        (profile / "Local State").write_text(json.dumps({"auth": {"negotiate_delegate_whitelist": "localhost"}}))
    env = {**os.environ, **kdc.env, "KRB5CCNAME": f"FILE:{ccache or profile / 'no-tickets'}"}
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, env=env,
            args=[*CHROMIUM_ARGS, "--auth-server-allowlist=localhost"])
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


def test_a_browser_with_a_ticket_reaches_hello_alice_without_any_form(spnego_app, kdc, tmp_path):
    person(kdc, "alice", tmp_path / "people")
    with chromium(tmp_path / "profile", tmp_path / "people" / "alice.ccache", kdc) as context:
        page = context.pages[0] if context.pages else context.new_page()
        seen: list[str] = []
        page.on("response", lambda r: seen.append(f"{r.status} {r.url}"))
        page.goto(spnego_app.url + "/")
        expect(page.locator("#greeting")).to_contain_text("Hello alice")
        assert page.url == spnego_app.url + "/"
        assert page.locator("input[type=password]").count() == 0
        # the browser's token answered a challenge: the sign-in route sent it on to the app
        assert any(line.startswith("302 ") and "/_dash-auth/login?" in line for line in seen), seen
        ticket = context.request.get(spnego_app.url + "/ccache")
        assert ticket.status == 409 and "delegated no Kerberos credentials" in ticket.text()


def test_a_browser_without_a_ticket_gets_a_clear_401_page(spnego_app, kdc, tmp_path):
    with chromium(tmp_path / "profile", None, kdc) as context:
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(spnego_app.url + "/")
        expect(page.get_by_role("heading")).to_have_text(NEEDED)
        assert page.url.endswith("&negotiate=again")  # its one reload, answered no better
        expect(page.get_by_role("link", name="Try again")).to_be_visible()
        assert page.locator("form").count() == 0
        assert context.request.get(spnego_app.url + "/_dash-layout").status == 401  # no session


def test_a_delegating_browser_leaves_a_usable_ticket_cache(spnego_app, kdc, negotiate_service, tmp_path):
    person(kdc, "alice", tmp_path / "people")
    with chromium(tmp_path / "profile", tmp_path / "people" / "alice.ccache", kdc, delegate=True) as context:
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(spnego_app.url + "/")
        expect(page.locator("#greeting")).to_contain_text("Hello alice")
        ticket = context.request.get(spnego_app.url + "/ccache")
        assert ticket.status == 200, ticket.text()
        ccache = ticket.body()
    folder = tmp_path / "delegated"
    folder.mkdir()
    listing = klist(ccache, folder)
    assert f"Default principal: alice@{kdc.realm}" in listing and f"krbtgt/{kdc.realm}@{kdc.realm}" in listing
    answer = negotiate_get(negotiate_service.url, folder / "cc")
    assert answer.status_code == 200 and answer.json()["principal"] == f"alice@{kdc.realm}"
