"""The SAML connector as a person meets it: examples/app.py, SimpleSAMLphp, headless Chromium."""
from __future__ import annotations

import re
import secrets
from typing import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.test_browser_basic import at_path
from tests.servers.app_server import RunningApp, free_port, start_app
from tests.servers.saml_idp import SamlIdp


@pytest.fixture(scope="module")
def idp_and_app(tmp_path_factory) -> Iterator[tuple[SamlIdp, RunningApp]]:
    state = tmp_path_factory.mktemp("saml-app")
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    idp = SamlIdp(state / "idp", f"{app_url}/_dash-auth/saml/metadata", f"{app_url}/_dash-auth/callback/saml",
                  f"{app_url}/_dash-auth/saml/sls").start()
    env = {
        "DASH_AUTH_CONNECTOR": "saml",
        "DASH_AUTH_SAML_IDP_METADATA_URL": idp.metadata_url,
        "DASH_AUTH_ALLOWED_GROUPS": "analysts",
        "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(36),
        "DASH_AUTH_SESSION_STORE": f"sqlite:///{state / 'sessions.sqlite3'}",
    }
    app = start_app("examples.app:server", env, state / "app.log", port=port)
    try:
        yield idp, app
    finally:
        app.stop()
        idp.stop()


def test_sign_in_at_the_idp_use_the_app_and_log_out_of_both(browser_page, idp_and_app, screenshot):
    idp, app = idp_and_app
    page = browser_page
    page.goto(app.url + "/")
    expect(page).to_have_url(re.compile("^" + re.escape(idp.url)))
    page.locator("input[name=username]").fill("alice")
    page.locator("input[name=password]").fill("alice-password")
    screenshot(page, "saml-idp-sign-in")
    page.locator("input[name=password]").press("Enter")

    expect(page).to_have_url(at_path(app, "/"))  # the IdP's page posted the response to the ACS
    expect(page.locator("#greeting")).to_have_text("Hello alice")

    page.locator("a.dash-logout-btn").click()  # single logout: through the IdP and back
    expect(page).to_have_url(at_path(app, "/_dash-auth/signed-out"))
    page.goto(app.url + "/")
    expect(page.locator("input[name=password]")).to_be_visible()  # the IdP asks again
