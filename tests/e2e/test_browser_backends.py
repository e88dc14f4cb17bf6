"""The FastAPI and Quart backends as a person meets them: tests/apps/backend_app.py under uvicorn and
hypercorn (two workers each), headless Chromium.

The app runs with ``websocket_callbacks=True``: its callbacks travel over one WebSocket that Dash
keeps in a SharedWorker shared by all the tabs of a browser. Playwright sees neither that worker
nor its socket (``page.on("websocket")`` stays silent), so what went over the socket is read from
the page: Dash's own console lines ("[Dash] WebSocket connected", "... disconnected: <the close
reason the server sent>") and the absence of any POST to ``/_dash-update-component``.

When the session ends while the page is open (logout in another tab), the next message on the
socket makes the server close it with code 4001 and the reason "the session has ended"; the worker
tells every tab "disconnected", session.js asks ``_dash-layout`` whether the tab is still signed in,
and its 401 reloads the tab, which the server sends to sign-in.

The redirect connectors (OIDC with the real oidc-provider, SAML with SimpleSAMLphp) sign a person in
through the same ASGI middleware; each provider is started here with the exact URLs of the apps
(127.0.0.1 and a port chosen before the app starts), as the other e2e tests do.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import OIDC_CLIENT_SECRET
from tests.e2e.test_browser_basic import LOGIN, SIGNED_OUT, at_path, sign_in
from tests.servers.app_server import ROOT, RunningApp, free_port, start_app
from tests.servers.oidc_server import OidcProvider, client
from tests.servers.saml_idp import SamlIdp

BACKENDS = {"fastapi": "uvicorn", "quart": "hypercorn"}
UPDATE = "/_dash-update-component"
SLOW = 30_000  # a sign-in through a provider on a loaded 2-core machine


def serve(backend: str, folder, port: int | None = None, **settings: str) -> RunningApp:
    env = {"DASH_BACKEND": backend, "DASH_AUTH_ALLOWED_GROUPS": "analysts",
           "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
           "DASH_AUTH_SESSION_STORE": f"sqlite:///{folder}/sessions.sqlite3", **settings}
    # Quart: one worker. Dash 4.4.1 registers the component-suite paths a worker may serve only when
    # that worker renders the page, so with two, a script fetched from the other worker can get a 500
    # (DependencyException, "path requested is not valid") and the page stays on "Loading..." (Dash's
    # defect, seen in a fresh-clone run). tests/test_backends.py covers Quart with two workers.
    app = start_app("tests.apps.backend_app:server", env, folder / "server.log", server=BACKENDS[backend],
                    workers=1 if backend == "quart" else 2, port=port)
    app.backend = backend
    return app


@dataclass
class Traffic:
    """What one tab asked and heard: HTTP requests and answers (path only) and console lines."""

    app: RunningApp
    requests: list[tuple[str, str]] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, page: Page, app: RunningApp) -> "Traffic":
        traffic = cls(app)
        page.on("request", lambda r: traffic.requests.append((r.method, traffic.path(r.url))))
        page.on("response", lambda r: traffic.answers.append((r.status, traffic.path(r.url))))
        page.on("console", lambda m: traffic.console.append(m.text))
        return traffic

    def path(self, url: str) -> str:
        return url[len(self.app.url):] if url.startswith(self.app.url) else url

    def http_callbacks(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[1].startswith(UPDATE)]

    def mark(self) -> tuple[int, int]:
        return len(self.answers), len(self.console)


def assert_callbacks_went_over_the_socket(traffic: Traffic) -> None:
    assert "[Dash] WebSocket connected" in traffic.console, traffic.console
    assert traffic.http_callbacks() == [], traffic.http_callbacks()


def greeted(page: Page, username: str = "alice") -> None:
    expect(page.locator("#greeting")).to_have_text(f"Hello {username}")
    expect(page.locator("#async-greeting")).to_have_text(f"Async hello {username} ['analysts']")


# -- the basic connector: WebSocket callbacks, and a logout in another tab ------------------------

@pytest.fixture(scope="module", params=list(BACKENDS))
def basic_app(request, tmp_path_factory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp(f"browser-{request.param}")
    app = serve(request.param, folder, DASH_AUTH_CONNECTOR="basic",
                DASH_AUTH_USERS_FILE=str(ROOT / "examples/demo-users.json"))
    try:
        yield app
    finally:
        app.stop()


@pytest.mark.parametrize("logout_in_other_tab", ["button", "url"])
def test_logout_in_another_tab_sends_the_first_tab_to_sign_in_at_its_next_websocket_callback(
        browser_page, basic_app, logout_in_other_tab, screenshot):
    """``button``: the other tab shows the app too (a second renderer on the same SharedWorker) and
    its logout button is clicked; ``url``: the other tab only opens /_dash-auth/logout and confirms."""
    app, page = basic_app, browser_page
    traffic = Traffic.of(page, app)
    page.goto(app.url + "/")
    expect(page).to_have_url(at_path(app, LOGIN))
    sign_in(page, "alice", "wonderland")
    expect(page).to_have_url(at_path(app, "/"))
    greeted(page)
    assert_callbacks_went_over_the_socket(traffic)

    other = page.context.new_page()
    if logout_in_other_tab == "button":
        other_traffic = Traffic.of(other, app)
        other.goto(app.url + "/")
        greeted(other)
        assert_callbacks_went_over_the_socket(other_traffic)  # through the worker the first tab started
        other.locator("a.dash-logout-btn").click()
    else:  # a typed address is not same-origin: the package asks before signing out
        other.goto(app.url + "/_dash-auth/logout")
        other.get_by_role("button", name="Sign out").click()
    expect(other).to_have_url(at_path(app, SIGNED_OUT))
    # Nothing has told the first tab yet (no message has crossed its socket since the logout).
    assert page.url == app.url + "/"
    expect(page.locator("#greeting")).to_have_text("Hello alice")
    answers_before, console_before = traffic.mark()

    page.bring_to_front()
    page.locator("#city").click()
    page.get_by_role("option", name="MTL").click()  # re-runs the greeting callback over the socket

    expect(page).to_have_url(re.compile(re.escape(app.url + LOGIN) + r"\?next=/$"), timeout=SLOW)
    expect(page.get_by_label("Username")).to_be_visible()
    screenshot(page, f"{app.backend}-websocket-session-ended-{logout_in_other_tab}")
    after = traffic.console[console_before:]
    # The server closed the socket for the ended session. The reason sent with code 4001 usually reaches
    # the page; once in a fresh-clone run on Quart the page saw only "Connection closed" (the 4001 itself
    # is asserted with a real WebSocket client in tests/test_backends.py).
    assert any(line.startswith("[Dash] WebSocket disconnected:") for line in after), after
    assert (401, "/_dash-layout") in traffic.answers[answers_before:], traffic.answers[answers_before:]  # the probe
    assert traffic.http_callbacks() == []  # the 401 was session.js's probe, not a callback over HTTP

    sign_in(page, "alice", "wonderland")  # signing in again gives a working socket again
    expect(page).to_have_url(at_path(app, "/"))
    greeted(page)
    assert traffic.http_callbacks() == []


# -- redirect connectors on the ASGI backends -------------------------------------------------------

@pytest.fixture(scope="module")
def app_ports() -> dict[tuple[str, str], int]:
    """The port of each (connector, backend) app, known before the providers register it. One per app:
    pytest may start an app of one connector before it stops the other connector's."""
    return {(connector, backend): free_port() for connector in ("oidc", "saml") for backend in BACKENDS}


def app_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def oidc_provider(app_ports, tmp_path_factory) -> Iterator[OidcProvider]:
    clients = [client(f"{backend}-app", f"{app_url(port)}/_dash-auth/callback/oidc",
                      f"{app_url(port)}/_dash-auth/signed-out", OIDC_CLIENT_SECRET)
               for (connector, backend), port in app_ports.items() if connector == "oidc"]
    provider = OidcProvider(tmp_path_factory.mktemp("oidc-provider"), clients).start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module", params=list(BACKENDS))
def oidc_app(request, oidc_provider, app_ports, tmp_path_factory) -> Iterator[RunningApp]:
    backend = request.param
    app = serve(backend, tmp_path_factory.mktemp(f"oidc-{backend}"), port=app_ports["oidc", backend],
                DASH_AUTH_CONNECTOR="oidc", DASH_AUTH_OIDC_ISSUER=oidc_provider.issuer,
                DASH_AUTH_OIDC_CLIENT_ID=f"{backend}-app", DASH_AUTH_OIDC_CLIENT_SECRET=OIDC_CLIENT_SECRET,
                DASH_AUTH_OIDC_SCOPES="openid email profile groups")
    try:
        yield app
    finally:
        app.stop()


def test_oidc_sign_in_at_the_provider_use_the_app_and_log_out_of_both(browser_page, oidc_provider, oidc_app):
    provider, app, page = oidc_provider, oidc_app, browser_page
    traffic = Traffic.of(page, app)
    page.goto(app.url + "/")
    expect(page).to_have_url(re.compile("^" + re.escape(provider.issuer)))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password")
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(at_path(app, "/"), timeout=SLOW)
    expect(page.locator("#greeting")).to_have_text("Hello alice")
    expect(page.locator("#async-greeting")).to_contain_text("Async hello alice")  # groups from the provider
    assert_callbacks_went_over_the_socket(traffic)

    page.locator("a.dash-logout-btn").click()
    expect(page).to_have_url(re.compile("^" + re.escape(provider.issuer)), timeout=SLOW)
    page.locator("#logout").click()  # the provider asks whether to sign out there too
    expect(page).to_have_url(at_path(app, SIGNED_OUT), timeout=SLOW)
    page.goto(app.url + "/")  # both sessions are gone: the provider asks for the password again
    expect(page.get_by_label("Password")).to_be_visible()


@pytest.fixture(scope="module")
def saml_idp(app_ports, tmp_path_factory) -> Iterator[SamlIdp]:
    first, *others = [app_url(port) for (connector, _), port in app_ports.items() if connector == "saml"]
    idp = SamlIdp(tmp_path_factory.mktemp("saml-idp"), f"{first}/_dash-auth/saml/metadata",
                  f"{first}/_dash-auth/callback/saml", f"{first}/_dash-auth/saml/sls")
    for url in others:
        idp.add_sp(f"{url}/_dash-auth/saml/metadata", f"{url}/_dash-auth/callback/saml", f"{url}/_dash-auth/saml/sls")
    idp.start()
    try:
        yield idp
    finally:
        idp.stop()


@pytest.fixture(scope="module", params=list(BACKENDS))
def saml_app(request, saml_idp, app_ports, tmp_path_factory) -> Iterator[RunningApp]:
    backend = request.param
    app = serve(backend, tmp_path_factory.mktemp(f"saml-{backend}"), port=app_ports["saml", backend],
                DASH_AUTH_CONNECTOR="saml", DASH_AUTH_SAML_IDP_METADATA_URL=saml_idp.metadata_url)
    try:
        yield app
    finally:
        app.stop()


def test_saml_sign_in_at_the_idp_use_the_app_and_log_out_of_both(browser_page, saml_idp, saml_app):
    idp, app, page = saml_idp, saml_app, browser_page
    traffic = Traffic.of(page, app)
    page.goto(app.url + "/")
    expect(page).to_have_url(re.compile("^" + re.escape(idp.url)))
    page.locator("input[name=username]").fill("alice")
    page.locator("input[name=password]").fill("alice-password")
    page.locator("input[name=password]").press("Enter")

    expect(page).to_have_url(at_path(app, "/"), timeout=SLOW)  # the IdP's page posted the response to the ACS
    expect(page.locator("#greeting")).to_have_text("Hello alice")
    expect(page.locator("#async-greeting")).to_contain_text("Async hello alice")
    assert_callbacks_went_over_the_socket(traffic)

    page.locator("a.dash-logout-btn").click()  # single logout: through the IdP and back
    expect(page).to_have_url(at_path(app, SIGNED_OUT), timeout=SLOW)
    page.goto(app.url + "/")
    expect(page.locator("input[name=password]")).to_be_visible()  # the IdP asks again
