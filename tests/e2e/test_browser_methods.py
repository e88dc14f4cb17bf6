"""Several sign-in methods on one app as people meet them, in headless Chromium: ``ldap,oidc`` (staff in
the directory, partners at an OpenID provider), ``basic,saml`` and ``spnego,ldap`` (a browser with a
Kerberos ticket is signed in without seeing anything; one without gets the password form).

examples/app.py lets only the group analysts in: alice is an analyst everywhere, bob nowhere.
"""
from __future__ import annotations

import re
import secrets
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import OIDC_CLIENT_SECRET
from tests.e2e.test_browser_basic import LOGIN, at_path
from tests.e2e.test_browser_spnego import chromium
from tests.servers.app_server import ROOT, RunningApp, free_port, start_app
from tests.servers.oidc_server import OidcProvider, client
from tests.servers.saml_idp import SamlIdp
from tests.test_install_extras import ldap_settings
from tests.test_spnego import person


def serve(state, port: int | None = None, **settings: str) -> RunningApp:
    env = {"DASH_AUTH_ALLOWED_GROUPS": "analysts", "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
           "DASH_AUTH_SESSION_STORE": f"sqlite:///{state / 'sessions.sqlite3'}", **settings}
    return start_app("examples.app:server", env, state / "app.log", port=port)


def with_the_form(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture(scope="module")
def ldap_oidc(slapd, tmp_path_factory) -> Iterator[tuple[OidcProvider, RunningApp]]:
    state = tmp_path_factory.mktemp("ldap-oidc")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    provider = OidcProvider(state / "provider", [client(
        "staff-and-partners", f"{url}/_dash-auth/callback/oidc", f"{url}/_dash-auth/signed-out",
        OIDC_CLIENT_SECRET)]).start()
    app = serve(state, port, **{**ldap_settings(slapd), "DASH_AUTH_CONNECTOR": "ldap,oidc",
                                "DASH_AUTH_OIDC_ISSUER": provider.issuer,
                                "DASH_AUTH_OIDC_CLIENT_ID": "staff-and-partners",
                                "DASH_AUTH_OIDC_CLIENT_SECRET": OIDC_CLIENT_SECRET,
                                "DASH_AUTH_OIDC_SCOPES": "openid email profile groups",
                                "DASH_AUTH_OIDC_DISPLAY_NAME": "Partners"})
    try:
        yield provider, app
    finally:
        app.stop()
        provider.stop()


def test_ldap_and_oidc_staff_use_the_form_and_partners_the_button(browser_page, ldap_oidc, screenshot):
    provider, app = ldap_oidc
    page = browser_page
    page.goto(app.url + "/")
    expect(page).to_have_url(at_path(app, LOGIN))
    screenshot(page, "sign-in-with-two-methods")
    with_the_form(page, "alice", "alice-password")  # the directory
    expect(page.locator("#greeting")).to_have_text("Hello alice")
    page.locator("a.dash-logout-btn").click()
    expect(page).to_have_url(at_path(app, "/_dash-auth/signed-out"))  # a directory session ends here

    page.goto(app.url + "/")
    page.get_by_role("link", name="Sign in with Partners").click()
    expect(page).to_have_url(re.compile("^" + re.escape(provider.issuer)))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#greeting")).to_have_text("Hello alice")
    page.locator("a.dash-logout-btn").click()  # an OIDC session ends at its provider too
    expect(page).to_have_url(re.compile("^" + re.escape(provider.issuer)))


def test_ldap_and_oidc_the_groups_rule_holds_for_both_methods(browser_page, ldap_oidc):
    provider, app = ldap_oidc
    page = browser_page
    page.goto(app.url + "/")
    with_the_form(page, "bob", "bob-password")
    expect(page.get_by_role("heading", name="You do not have access to this app")).to_be_visible()
    page.context.clear_cookies()
    page.goto(app.url + "/")
    page.get_by_role("link", name="Sign in with Partners").click()
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill("bob-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="You do not have access to this app")).to_be_visible()


@pytest.fixture(scope="module")
def basic_saml(tmp_path_factory) -> Iterator[tuple[SamlIdp, RunningApp]]:
    state = tmp_path_factory.mktemp("basic-saml")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    idp = SamlIdp(state / "idp", f"{url}/_dash-auth/saml/metadata", f"{url}/_dash-auth/callback/saml",
                  f"{url}/_dash-auth/saml/sls").start()
    app = serve(state, port, DASH_AUTH_CONNECTOR="basic,saml", DASH_AUTH_SAML_IDP_METADATA_URL=idp.metadata_url,
                DASH_AUTH_USERS_FILE=str(ROOT / "examples/demo-users.json"))
    try:
        yield idp, app
    finally:
        app.stop()
        idp.stop()


def test_basic_and_saml_sign_in_by_either_method(browser_page, basic_saml):
    idp, app = basic_saml
    page = browser_page
    page.goto(app.url + "/")
    with_the_form(page, "alice", "wonderland")  # the users file
    expect(page.locator("#greeting")).to_have_text("Hello alice")
    page.locator("a.dash-logout-btn").click()
    expect(page).to_have_url(at_path(app, "/_dash-auth/signed-out"))

    page.goto(app.url + "/")
    page.get_by_role("link", name="Sign in with SAML single sign-on").click()
    expect(page).to_have_url(re.compile("^" + re.escape(idp.url)))
    page.locator("input[name=username]").fill("alice")
    page.locator("input[name=password]").fill("alice-password")
    page.locator("input[name=password]").press("Enter")
    expect(page.locator("#greeting")).to_have_text("Hello alice")
    page.locator("a.dash-logout-btn").click()  # single logout through the IdP that signed her in
    expect(page).to_have_url(at_path(app, "/_dash-auth/signed-out"))


@pytest.fixture(scope="module")
def spnego_ldap(slapd, kdc, tmp_path_factory) -> Iterator[RunningApp]:
    state = tmp_path_factory.mktemp("spnego-ldap")
    app = serve(state, **{**ldap_settings(slapd), **kdc.env, "DASH_AUTH_CONNECTOR": "spnego,ldap",
                          "DASH_AUTH_KRB5_REALM": kdc.realm, "DASH_AUTH_KRB5_KEYTAB": str(kdc.http_keytab)})
    app.url = app.url.replace("127.0.0.1", "localhost")  # the browser asks a ticket for HTTP@localhost
    try:
        yield app
    finally:
        app.stop()


def test_spnego_and_ldap_a_browser_with_a_ticket_is_signed_in_silently(spnego_ldap, kdc, tmp_path):
    person(kdc, "alice", tmp_path / "people")
    with chromium(tmp_path / "profile", tmp_path / "people" / "alice.ccache", kdc) as context:
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(spnego_ldap.url + "/")
        expect(page.locator("#greeting")).to_have_text("Hello alice")
        assert page.locator("input[type=password]").count() == 0


def test_spnego_and_ldap_the_directory_groups_decide_for_a_ticket(spnego_ldap, kdc, tmp_path):
    person(kdc, "bob", tmp_path / "people")  # in the directory, but not an analyst
    with chromium(tmp_path / "profile", tmp_path / "people" / "bob.ccache", kdc) as context:
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(spnego_ldap.url + "/")
        expect(page.get_by_role("heading", name="You do not have access to this app")).to_be_visible()


def test_spnego_and_ldap_a_browser_without_a_ticket_gets_the_password_form(spnego_ldap, kdc, tmp_path):
    with chromium(tmp_path / "profile", None, kdc) as context:
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(spnego_ldap.url + "/")
        expect(page.get_by_role("heading", name="Other ways to sign in")).to_be_visible()
        with_the_form(page, "alice", "alice-password")
        expect(page.locator("#greeting")).to_have_text("Hello alice")
