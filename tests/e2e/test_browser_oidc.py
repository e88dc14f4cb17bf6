"""The OIDC connector as a person meets it: examples/app.py, the real oidc-provider, headless Chromium."""
from __future__ import annotations

import re
import secrets
from typing import Iterator

import pytest
from playwright.sync_api import expect

from tests.conftest import OIDC_CLIENT_SECRET
from tests.e2e.test_browser_basic import at_path
from tests.servers.app_server import RunningApp, free_port, start_app
from tests.servers.oidc_server import OidcProvider, client


@pytest.fixture(scope="module")
def provider_and_app(tmp_path_factory) -> Iterator[tuple[OidcProvider, RunningApp]]:
    state = tmp_path_factory.mktemp("oidc-app")
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    provider = OidcProvider(state / "provider", [client(
        "browser-app", f"{app_url}/_dash-auth/callback/oidc", f"{app_url}/_dash-auth/signed-out",
        OIDC_CLIENT_SECRET)]).start()
    env = {
        "DASH_AUTH_CONNECTOR": "oidc",
        "DASH_AUTH_OIDC_ISSUER": provider.issuer,
        "DASH_AUTH_OIDC_CLIENT_ID": "browser-app",
        "DASH_AUTH_OIDC_CLIENT_SECRET": OIDC_CLIENT_SECRET,
        "DASH_AUTH_OIDC_SCOPES": "openid email profile groups",
        "DASH_AUTH_ALLOWED_GROUPS": "analysts",
        "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(36),
        "DASH_AUTH_SESSION_STORE": f"sqlite:///{state / 'sessions.sqlite3'}",
    }
    app = start_app("examples.app:server", env, state / "app.log", port=port)
    try:
        yield provider, app
    finally:
        app.stop()
        provider.stop()


def test_sign_in_at_the_provider_use_the_app_and_log_out_of_both(browser_page, provider_and_app, screenshot):
    provider, app = provider_and_app
    page = browser_page
    page.goto(app.url + "/")
    expect(page).to_have_url(re.compile("^" + re.escape(provider.issuer)))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password")
    screenshot(page, "oidc-provider-sign-in")
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(at_path(app, "/"))
    expect(page.locator("#greeting")).to_have_text("Hello alice")

    page.locator("a.dash-logout-btn").click()
    expect(page).to_have_url(re.compile("^" + re.escape(provider.issuer)))
    page.locator("#logout").click()  # the provider asks whether to sign out there too
    expect(page).to_have_url(at_path(app, "/_dash-auth/signed-out"))

    page.goto(app.url + "/")  # both sessions are gone: the provider asks for the password again
    expect(page.get_by_label("Password")).to_be_visible()
