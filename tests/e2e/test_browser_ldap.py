"""The LDAP connector as a person meets it: examples/app.py under gunicorn, a real slapd, headless Chromium."""
from __future__ import annotations

import secrets
from typing import Iterator

import pytest
from playwright.sync_api import expect

from tests.servers.app_server import RunningApp, start_app
from tests.servers.slapd_server import PASSWORDS
from tests.test_ldap import env_for

from tests.e2e.test_browser_basic import LOGIN, at_path, sign_in


@pytest.fixture(scope="module")
def ldap_app(slapd, tmp_path_factory) -> Iterator[RunningApp]:
    state = tmp_path_factory.mktemp("ldap-app")
    env = {
        "DASH_AUTH_CONNECTOR": "ldap",
        "DASH_AUTH_ALLOWED_GROUPS": "analysts",
        "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(36),
        "DASH_AUTH_SESSION_STORE": f"sqlite:///{state / 'sessions.sqlite3'}",
        **env_for(slapd),
    }
    app = start_app("examples.app:server", env, state / "app.log")
    try:
        yield app
    finally:
        app.stop()


def test_an_analyst_from_the_directory_signs_in_and_an_outsider_is_refused(browser_page, ldap_app, screenshot):
    page = browser_page
    page.goto(ldap_app.url + "/")
    expect(page).to_have_url(at_path(ldap_app, LOGIN))

    sign_in(page, "ALICE", PASSWORDS["alice"])  # the directory's spelling wins
    expect(page).to_have_url(at_path(ldap_app, "/"))
    expect(page.locator("#greeting")).to_have_text("Hello alice")
    screenshot(page, "ldap-signed-in")

    page.locator("a.dash-logout-btn").click()
    expect(page).to_have_url(at_path(ldap_app, "/_dash-auth/signed-out"))
    page.goto(ldap_app.url + "/")
    sign_in(page, "bob", PASSWORDS["bob"])  # in "staff", not in "analysts"
    expect(page.get_by_role("heading")).to_contain_text("access")
    assert page.evaluate("() => fetch('/').then(r => r.status)") == 403
    screenshot(page, "ldap-forbidden")
