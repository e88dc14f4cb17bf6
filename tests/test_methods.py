"""Several sign-in methods on one app (``DASH_AUTH_CONNECTOR=ldap,oidc``, ``basic,saml``, ``spnego,ldap``),
against the suite's real servers: slapd, oidc-provider, SimpleSAMLphp and the MIT KDC.

The same people exist everywhere: alice (groups analysts, staff) and bob (staff); the apps let
only analysts in, so each method must bring the groups that decide 200 against 403.
"""
from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests

from dash_enterprise_auth.errors import ConfigurationError
from dash_enterprise_auth.install import load_configuration

from .conftest import PASSWORDS as BASIC_PASSWORDS
from .conftest import UPDATE_GREETING
from .servers.kdc_server import KdcServer
from .servers.oidc_server import get_at_provider, submit_login
from .servers.saml_idp import auto_post_form
from .servers.saml_idp import submit_login as submit_saml_login
from .test_ldap import settings_for as ldap_settings
from .test_oidc import local, oidc_settings
from .test_saml import ACS, SP_ENTITY_ID, saml_settings
from .test_spnego import negotiate, person, token_for

HTML = {"Accept": "text/html", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}
LDAP_PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}


def greeting(client) -> tuple[int, str]:
    answer = client.post("/_dash-update-component", json=UPDATE_GREETING)
    text = json.dumps(answer.get_json()) if answer.is_json else answer.get_data(as_text=True)
    return answer.status_code, text


def form_sign_in(client, username: str, password: str):
    return client.post("/_dash-auth/login", data={"username": username, "password": password, "next": "/"},
                       headers={"Sec-Fetch-Site": "same-origin"})


def buttons(page: str) -> dict[str, str]:
    """The sign-in page's "Sign in with ..." buttons: label -> URL."""
    return {label: url.replace("&amp;", "&") for url, label in
            re.findall(r'<a class="dash-auth-button" href="([^"]+)">Sign in with ([^<]+)</a>', page)}


# -- the list itself -------------------------------------------------------------------------------

@pytest.mark.parametrize("names, message", [
    ("basic,ldap", "lists two password connectors (basic, ldap)"),
    ("oidc,oidc", "lists oidc twice"),
    ("plotly,basic", "the plotly connector decides who may view the app"),
    ("basic,nosuch", "DASH_AUTH_CONNECTOR='nosuch' is not valid"),
])
def test_a_list_that_cannot_work_stops_start_up(monkeypatch, tmp_path, users_file, oidc_provider, names, message):
    settings = {**oidc_settings(oidc_provider), "connector": names, "users_file": str(users_file),
                "secret_key": "k" * 40, "plotly_domain": "http://127.0.0.1:1", "plotly_client_id": "x",
                "plotly_app_name": "x", "plotly_username": "x", "plotly_api_key": "x",
                "ldap_url": "ldap://127.0.0.1:1", "ldap_user_base": "dc=x", "ldap_start_tls": "false"}
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_configuration(settings)


# -- ldap,oidc --------------------------------------------------------------------------------------

@pytest.fixture
def ldap_oidc(make_app, slapd, oidc_provider):
    return make_app(**{**ldap_settings(slapd), **oidc_settings(oidc_provider), "connector": "ldap,oidc",
                       "oidc_display_name": "Partners", "allowed_groups": ["analysts"]})


def test_the_sign_in_page_offers_the_password_form_and_a_button_per_provider(ldap_oidc):
    page = ldap_oidc.server.test_client().get("/_dash-auth/login?next=/reports", headers=HTML)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'name="password"' in text and 'name="next" value="/reports"' in text
    assert buttons(text) == {"Partners": "/_dash-auth/login/oidc?next=/reports"}


@pytest.mark.parametrize("who, expected", [("alice", 200), ("bob", 403)])
def test_with_ldap_and_oidc_each_method_signs_in_and_the_groups_rule_holds_for_both(ldap_oidc, who, expected):
    by_password = ldap_oidc.server.test_client()
    assert form_sign_in(by_password, who, LDAP_PASSWORDS[who]).status_code == 302
    status, text = greeting(by_password)
    assert status == expected and (f"Hello {who}" in text) is (expected == 200)

    at_provider = ldap_oidc.server.test_client()
    started = at_provider.get("/_dash-auth/login/oidc?next=/", headers=HTML)
    assert started.status_code == 302 and started.headers["Location"].startswith(ldap_oidc_issuer(started))
    http = requests.Session()
    back = submit_login(http, get_at_provider(http, started.headers["Location"]), who, f"{who}-password")
    answer = at_provider.get(local(back.headers["Location"]), headers=HTML)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    status, text = greeting(at_provider)
    assert status == expected and (f"Hello {who}" in text) is (expected == 200)


def ldap_oidc_issuer(started) -> str:
    return re.match(r"https?://[^/]+", started.headers["Location"]).group(0)


def test_logout_ends_an_oidc_session_at_the_provider_and_a_password_session_here(ldap_oidc):
    by_password = ldap_oidc.server.test_client()
    form_sign_in(by_password, "alice", LDAP_PASSWORDS["alice"])
    out = by_password.get("/_dash-auth/logout", headers=HTML)
    assert out.status_code == 302 and out.headers["Location"] == "/_dash-auth/signed-out"

    at_provider = ldap_oidc.server.test_client()
    started = at_provider.get("/_dash-auth/login/oidc?next=/", headers=HTML)
    http = requests.Session()
    back = submit_login(http, get_at_provider(http, started.headers["Location"]), "alice", "alice-password")
    at_provider.get(local(back.headers["Location"]), headers=HTML)
    out = at_provider.get("/_dash-auth/logout", headers=HTML)
    assert out.status_code == 302 and "/session/end" in out.headers["Location"]  # the provider's end_session
    assert greeting(at_provider)[0] == 401


def test_an_unknown_method_has_no_button_route(ldap_oidc):
    client = ldap_oidc.server.test_client()
    assert client.get("/_dash-auth/login/ldap", headers=HTML).status_code == 404
    assert client.get("/_dash-auth/login/saml", headers=HTML).status_code == 404


def test_scripts_keep_http_basic_with_the_listed_password_connector(ldap_oidc):
    client = ldap_oidc.server.test_client()
    answer = client.post("/_dash-update-component", json=UPDATE_GREETING,
                         headers={"Authorization": "Basic " + _basic("alice", LDAP_PASSWORDS["alice"])})
    assert answer.status_code == 200 and "Hello alice" in answer.get_data(as_text=True)


def _basic(username: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{username}:{password}".encode()).decode()


# -- basic,saml --------------------------------------------------------------------------------------

@pytest.fixture
def basic_saml(make_app, make_saml_idp):
    idp = make_saml_idp(sp_entity_id=SP_ENTITY_ID, sp_acs_url=ACS)
    return make_app(**{**saml_settings(idp), "connector": "basic,saml"})


@pytest.mark.parametrize("who, expected", [("alice", 200), ("bob", 403)])
def test_with_basic_and_saml_each_method_signs_in_and_the_groups_rule_holds_for_both(basic_saml, who, expected):
    by_password = basic_saml.server.test_client()
    assert form_sign_in(by_password, who, BASIC_PASSWORDS[who]).status_code == 302
    assert greeting(by_password)[0] == expected

    page = basic_saml.server.test_client().get("/_dash-auth/login", headers=HTML).get_data(as_text=True)
    assert buttons(page) == {"SAML single sign-on": "/_dash-auth/login/saml?next=/"}
    at_idp = basic_saml.server.test_client()
    started = at_idp.get("/_dash-auth/login/saml?next=/", headers=HTML)
    assert started.status_code == 302
    http = requests.Session()
    action, fields = auto_post_form(submit_saml_login(http, http.get(started.headers["Location"]), who,
                                                      f"{who}-password"))
    assert action == ACS
    answer = at_idp.post("/_dash-auth/callback/saml", data=fields,
                         headers={"Accept": "text/html", "Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    status, text = greeting(at_idp)
    assert status == expected and (f"Hello {who}" in text) is (expected == 200)


# -- spnego,ldap --------------------------------------------------------------------------------------

@pytest.fixture
def spnego_ldap(make_app, slapd, kdc):
    return make_app(**{**ldap_settings(slapd), "connector": "spnego,ldap", "krb5_realm": kdc.realm,
                       "krb5_keytab": str(kdc.http_keytab), "allowed_groups": ["analysts"]})


def test_a_browser_without_a_ticket_gets_the_challenge_with_the_password_form(spnego_ldap):
    page = spnego_ldap.server.test_client().get("/_dash-auth/login?next=/&negotiate=again", headers=HTML)
    text = page.get_data(as_text=True)
    assert page.status_code == 401 and page.headers["WWW-Authenticate"] == "Negotiate"
    assert "Kerberos sign-in needed" in text and "Other ways to sign in" in text and 'name="password"' in text


@pytest.mark.parametrize("who, expected", [("alice", 200), ("bob", 403)])
def test_a_kerberos_sign_in_takes_its_groups_from_the_directory(spnego_ldap, kdc, tmp_path, who, expected):
    client = spnego_ldap.server.test_client()
    token, _ = token_for(person(kdc, who, tmp_path / "people"))
    signed_in = negotiate(client, token)
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)[:300]
    status, text = greeting(client)
    assert status == expected and (f"Hello {who}" in text) is (expected == 200)


def test_the_directory_groups_reach_get_user_data(spnego_ldap, kdc, tmp_path):
    import dash_enterprise_auth as auth

    @spnego_ldap.server.route("/me")
    def me() -> Any:
        return auth.get_user_data()

    client = spnego_ldap.server.test_client()
    negotiate(client, token_for(person(kdc, "alice", tmp_path / "people"))[0])
    data = client.get("/me").get_json()
    assert data["connector"] == "spnego" and sorted(data["groups"]) == ["analysts", "staff"]
    assert data["email"] == "alice@example.org" and data["dn"].startswith("uid=alice,")


def test_a_kerberos_principal_without_a_directory_entry_is_refused(spnego_ldap, kdc: KdcServer, tmp_path):
    kdc.add_principal("ticket-only", "ticket-only-password")
    client = spnego_ldap.server.test_client()
    token, _ = token_for(person(kdc, "ticket-only", tmp_path / "people", "ticket-only-password"))
    answer = negotiate(client, token)
    assert answer.status_code in (401, 403)
    assert "no entry in this app&#39;s directory" in answer.get_data(as_text=True)
    assert greeting(client)[0] == 401


def test_with_spnego_and_ldap_the_password_form_still_signs_in(spnego_ldap):
    client = spnego_ldap.server.test_client()
    assert form_sign_in(client, "alice", LDAP_PASSWORDS["alice"]).status_code == 302
    assert greeting(client)[0] == 200


def test_spnego_with_ldap_needs_the_ldap_service_account(make_app, slapd, kdc):
    settings = {**{k: v for k, v in ldap_settings(slapd).items() if not k.startswith("ldap_bind")},
                "ldap_user_dn_template": "uid={username},ou=people,dc=example,dc=org"}  # binds with no search
    with pytest.raises(ConfigurationError, match="set DASH_AUTH_LDAP_BIND_DN"):
        make_app(**{**settings, "connector": "spnego,ldap", "krb5_realm": kdc.realm,
                    "krb5_keytab": str(kdc.http_keytab)})
