"""The OIDC connector against a real OpenID provider (panva's oidc-provider) started by the fixtures."""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from dash_enterprise_auth.connectors.oidc import OidcConnector
from dash_enterprise_auth.errors import ConfigurationError, ProviderRefused
from dash_enterprise_auth.settings import Settings

from .conftest import IN_PROCESS_APP, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, UPDATE_GREETING
from .servers.oidc_server import (
    ACCOUNTS, OidcProvider, cancel_login, client, confirm_logout, get_at_provider, submit_login,
)
from .test_cli import cli

PASSWORD = {a["username"]: a["password"] for a in ACCOUNTS}
HTML = {"Accept": "text/html", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}


def oidc_settings(provider: OidcProvider, **extra: Any) -> dict[str, Any]:
    return {"connector": "oidc", "oidc_issuer": provider.issuer, "oidc_client_id": OIDC_CLIENT_ID,
            "oidc_client_secret": OIDC_CLIENT_SECRET, "oidc_scopes": "openid email profile groups", **extra}


def connector_for(provider: OidcProvider, **extra: Any) -> OidcConnector:
    settings = {k: v for k, v in oidc_settings(provider, **extra).items() if k != "connector"}
    return OidcConnector.from_settings(Settings.load(OidcConnector.options, settings, {}))


def local(url: str) -> str:
    """The path and query of an app URL, for Flask's test client."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == IN_PROCESS_APP, url
    return parts.path + ("?" + parts.query if parts.query else "")


def to_provider(app_client) -> str:
    started = app_client.get("/_dash-auth/login?next=/", headers=HTML)
    assert started.status_code == 302, started.get_data(as_text=True)
    return started.headers["Location"]


def back_from_provider(app_client, username: str, password: str | None = None, http=None):
    """Sign in at the provider with requests; return the app's answer to the callback."""
    http = http or requests.Session()
    page = get_at_provider(http, to_provider(app_client))
    back = submit_login(http, page, username, password or PASSWORD[username]) if page.status_code == 200 else page
    assert back.is_redirect, back.text[:500]
    return app_client.get(local(back.headers["Location"]), headers=HTML), back.headers["Location"]


def greeting(app_client) -> Any:
    response = app_client.post("/_dash-update-component", json=UPDATE_GREETING)
    return response.status_code, (response.get_json() or {}).get("response") if response.is_json else None


def has_session(app_client) -> bool:
    return greeting(app_client)[0] == 200


# -- the round trip ------------------------------------------------------------------------

def test_an_analyst_signs_in_at_the_provider_and_the_app_knows_her(make_app, oidc_provider):
    app = make_app(**oidc_settings(oidc_provider))
    browser = app.server.test_client()
    answer, _ = back_from_provider(browser, "alice")
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    assert browser.get("/", headers=HTML).status_code == 200
    status, body = greeting(browser)
    assert status == 200 and "Hello alice" in json.dumps(body)


def test_a_stray_request_to_the_callback_url_leaves_the_sign_in_to_its_browser(make_app, oidc_provider):
    app = make_app(**oidc_settings(oidc_provider))
    browser = app.server.test_client()
    http = requests.Session()
    back = submit_login(http, get_at_provider(http, to_provider(browser)), "alice", PASSWORD["alice"])
    callback = local(back.headers["Location"])
    scanner = app.server.test_client()  # a link scanner or prefetching proxy: not the browser that started it
    refused = scanner.get(callback, headers=HTML)
    assert refused.status_code == 400 and "another browser" in refused.get_data(as_text=True)
    assert not has_session(scanner)
    assert browser.get(callback, headers=HTML).status_code == 302
    status, body = greeting(browser)
    assert status == 200 and "Hello alice" in json.dumps(body)


def test_claims_are_configurable_with_dotted_paths(oidc_provider):
    connector = connector_for(oidc_provider, oidc_username_claim="email", oidc_name_claim="profile.display",
                              oidc_email_claim="email", oidc_groups_claim="realm_access.roles")
    identity = connector._identity({"sub": "a1", "iss": oidc_provider.issuer, "email": "alice@example.org",
                                    "profile": {"display": "Alice L."}, "realm_access": {"roles": ["analysts"]}},
                                   "id-token")
    assert (identity.username, identity.email, identity.display_name, identity.groups) == (
        "alice@example.org", "alice@example.org", "Alice L.", ("analysts",))
    assert identity.private == {"id_token": "id-token"} and "id_token" not in identity.public_dict()["attributes"]


def test_a_person_outside_the_allowed_groups_is_refused(make_app, oidc_provider):
    app = make_app(**oidc_settings(oidc_provider))
    browser = app.server.test_client()
    back_from_provider(browser, "bob")  # groups: staff
    assert browser.get("/", headers=HTML).status_code == 403


def test_the_authorization_request_uses_pkce_s256_a_nonce_and_the_exact_redirect_uri(make_app, oidc_provider):
    app = make_app(**oidc_settings(oidc_provider))
    query = parse_qs(urlsplit(to_provider(app.server.test_client())).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [f"{IN_PROCESS_APP}/_dash-auth/callback/oidc"]
    assert len(query["nonce"][0]) >= 32 and len(query["state"][0]) >= 32
    assert "code_verifier" not in query and query["response_type"] == ["code"]


def test_username_and_groups_come_from_userinfo_when_the_id_token_lacks_them(make_app, make_oidc_provider):
    provider = make_oidc_provider(client(OIDC_CLIENT_ID, f"{IN_PROCESS_APP}/_dash-auth/callback/oidc",
                                         f"{IN_PROCESS_APP}/_dash-auth/signed-out", OIDC_CLIENT_SECRET),
                                  claims_in_userinfo_only=True)
    app = make_app(**oidc_settings(provider))
    browser = app.server.test_client()
    back_from_provider(browser, "alice")
    assert browser.get("/", headers=HTML).status_code == 200  # in "analysts": the groups were read
    assert "Hello alice" in json.dumps(greeting(browser)[1])


# -- refusals: a page, and no session -----------------------------------------------------

def refused(app_client, response, status: int, text: str) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == status, body[:300]
    assert text in body and "Traceback" not in body
    assert not has_session(app_client)


def test_a_callback_without_or_with_a_wrong_state_is_refused(make_app, oidc_provider):
    app = make_app(**oidc_settings(oidc_provider))
    browser = app.server.test_client()
    http = requests.Session()
    back = submit_login(http, get_at_provider(http, to_provider(browser)), "alice", PASSWORD["alice"])
    code = parse_qs(urlsplit(back.headers["Location"]).query)["code"][0]
    refused(browser, browser.get(f"/_dash-auth/callback/oidc?code={code}", headers=HTML), 400, "sign in again")
    refused(browser, browser.get(f"/_dash-auth/callback/oidc?code={code}&state=forged", headers=HTML), 400,
            "sign in again")


def test_a_callback_replayed_or_a_code_used_twice_gives_no_session(make_app, oidc_provider):
    app = make_app(**oidc_settings(oidc_provider))
    browser = app.server.test_client()
    answer, callback = back_from_provider(browser, "alice")
    assert answer.status_code == 302
    attacker = app.server.test_client()
    refused(attacker, attacker.get(local(callback), headers=HTML), 400, "sign in again")
    # the same code with a fresh state: the provider says invalid_grant, the app shows a refusal page
    fresh = parse_qs(urlsplit(to_provider(attacker)).query)["state"][0]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    refused(attacker, attacker.get(f"/_dash-auth/callback/oidc?code={code}&state={fresh}", headers=HTML), 401,
            "did not sign you in")


def test_a_provider_error_answer_is_a_refusal_page(make_app, oidc_provider):
    app = make_app(**oidc_settings(oidc_provider))
    browser = app.server.test_client()
    http = requests.Session()
    back = cancel_login(http, get_at_provider(http, to_provider(browser)))
    assert "error=access_denied" in back.headers["Location"]
    refused(browser, browser.get(local(back.headers["Location"]), headers=HTML), 401, "cancelled or refused")


def test_a_callback_naming_another_issuer_is_refused(make_app, oidc_provider):
    app = make_app(**oidc_settings(oidc_provider))
    browser = app.server.test_client()
    http = requests.Session()
    back = submit_login(http, get_at_provider(http, to_provider(browser)), "alice", PASSWORD["alice"])
    mixed_up = back.headers["Location"].replace(f"iss={requests.utils.quote(oidc_provider.issuer, safe='')}",
                                                "iss=https%3A%2F%2Fevil.example")
    assert mixed_up != back.headers["Location"]
    refused(browser, browser.get(local(mixed_up), headers=HTML), 401, "did not sign you in")


class Blackhole:
    """Accepts connections and never answers: a provider that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._hold, daemon=True).start()

    def _hold(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return


@pytest.mark.parametrize("where", ["down", "hangs"])
def test_a_provider_that_is_down_or_hangs_gives_a_503_page_within_the_timeout(make_app, oidc_provider, where):
    issuer = "http://127.0.0.1:9" if where == "down" else Blackhole().url
    app = make_app(**{**oidc_settings(oidc_provider), "oidc_issuer": issuer, "oidc_timeout": 2})
    started = time.monotonic()
    answer = app.server.test_client().get("/_dash-auth/login?next=/", headers=HTML)
    assert answer.status_code == 503 and "does not answer" in answer.get_data(as_text=True)
    assert app.server.test_client().get("/_dash-auth/health").status_code == 503
    assert time.monotonic() - started < 10


# -- the ID token ----------------------------------------------------------------------------

def forge(provider: OidcProvider, key: dict | None = None, header: dict | None = None, **changes: Any) -> str:
    """An ID token as the provider would issue it to dash-app, changed; signed with ``key``
    (default: the provider's own private key)."""
    now = int(time.time())
    claims = {"iss": provider.issuer, "sub": "alice", "aud": OIDC_CLIENT_ID, "exp": now + 300, "iat": now,
              "nonce": "the-nonce", "preferred_username": "alice", **changes}
    claims = {k: v for k, v in claims.items() if v is not None}
    key = key or provider.private_jwk()
    return jwt.encode({"alg": "RS256", "kid": key["kid"], **(header or {})}, claims, RSAKey.import_key(key))


def unsigned(provider: OidcProvider) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'iss': provider.issuer, 'sub': 'alice', 'aud': OIDC_CLIENT_ID, 'exp': now + 300, 'iat': now, 'nonce': 'the-nonce'})}."


def foreign_key() -> dict:
    return RSAKey.generate_key(2048, {"kid": "attacker"}, private=True).as_dict(private=True)


def test_a_genuine_id_token_passes(oidc_provider):
    assert connector_for(oidc_provider).validate_id_token(forge(oidc_provider), "the-nonce")["sub"] == "alice"


@pytest.mark.parametrize("case", [
    "wrong nonce", "signed by another key", "alg none", "expired", "issued in the future", "wrong audience",
    "aud names another client, azp names us", "two audiences without azp", "another issuer", "no exp",
    "signed by another key with the provider's kid", "HS256 with the client secret",
])
def test_a_bad_id_token_is_refused(oidc_provider, case):
    now = int(time.time())
    token = {
        "wrong nonce": lambda: forge(oidc_provider, nonce="another-nonce"),
        "signed by another key": lambda: forge(oidc_provider, key=foreign_key()),
        "signed by another key with the provider's kid": lambda: forge(
            oidc_provider, key={**foreign_key(), "kid": oidc_provider.private_jwk()["kid"]}),
        "alg none": lambda: unsigned(oidc_provider),
        "expired": lambda: forge(oidc_provider, exp=now - 3600, iat=now - 7200),
        "issued in the future": lambda: forge(oidc_provider, iat=now + 3600, exp=now + 7200),
        "wrong audience": lambda: forge(oidc_provider, aud="other-app"),
        "aud names another client, azp names us": lambda: forge(oidc_provider, aud="other-app", azp=OIDC_CLIENT_ID),
        "two audiences without azp": lambda: forge(oidc_provider, aud=[OIDC_CLIENT_ID, "other-app"]),
        "another issuer": lambda: forge(oidc_provider, iss="https://evil.example"),
        "no exp": lambda: forge(oidc_provider, exp=None),
        "HS256 with the client secret": lambda: jwt.encode(
            {"alg": "HS256"}, {"iss": oidc_provider.issuer, "sub": "alice", "aud": OIDC_CLIENT_ID,
                               "exp": now + 300, "iat": now, "nonce": "the-nonce"},
            __import__("joserfc.jwk", fromlist=["OctKey"]).OctKey.import_key(OIDC_CLIENT_SECRET)),
    }[case]()
    with pytest.raises(ProviderRefused) as refusal:
        connector_for(oidc_provider).validate_id_token(token, "the-nonce")
    assert "ID token refused" in refusal.value.log_detail


def test_a_token_from_a_second_provider_is_refused_issuer_mix_up(oidc_provider, make_oidc_provider):
    other = make_oidc_provider(client(OIDC_CLIENT_ID, f"{IN_PROCESS_APP}/x", f"{IN_PROCESS_APP}/y"))
    with pytest.raises(ProviderRefused):
        connector_for(oidc_provider).validate_id_token(forge(other), "the-nonce")
    with pytest.raises(ProviderRefused):  # even when it claims to be our issuer: not our keys
        connector_for(oidc_provider).validate_id_token(forge(other, iss=oidc_provider.issuer), "the-nonce")


def test_after_key_rotation_an_unknown_kid_refetches_the_keys_once(make_app, make_oidc_provider):
    provider = make_oidc_provider(client(OIDC_CLIENT_ID, f"{IN_PROCESS_APP}/_dash-auth/callback/oidc",
                                         f"{IN_PROCESS_APP}/_dash-auth/signed-out", OIDC_CLIENT_SECRET))
    app = make_app(**oidc_settings(provider))
    first = app.server.test_client()
    assert back_from_provider(first, "alice")[0].status_code == 302
    provider.rotate_keys()
    time.sleep(0.1)
    second = app.server.test_client()
    assert back_from_provider(second, "alice")[0].status_code == 302 and has_session(second)


# -- logout ------------------------------------------------------------------------------------

def test_logout_ends_the_app_session_and_the_providers(make_app, oidc_provider):
    app = make_app(**oidc_settings(oidc_provider))
    browser = app.server.test_client()
    http = requests.Session()
    back_from_provider(browser, "alice", http=http)
    assert has_session(browser)
    out = browser.get("/_dash-auth/logout", headers=HTML)
    assert out.status_code == 302 and not has_session(browser)
    target = urlsplit(out.headers["Location"])
    query = parse_qs(target.query)
    assert out.headers["Location"].startswith(oidc_provider.issuer)
    assert query["post_logout_redirect_uri"] == [f"{IN_PROCESS_APP}/_dash-auth/signed-out"]
    assert query["id_token_hint"][0].count(".") == 2 and query["client_id"] == [OIDC_CLIENT_ID]
    done = confirm_logout(http, get_at_provider(http, out.headers["Location"]))
    assert done.headers["Location"].startswith(f"{IN_PROCESS_APP}/_dash-auth/signed-out")
    # the provider forgot alice: signing in again asks for the password
    again = get_at_provider(http, to_provider(app.server.test_client()))
    assert again.status_code == 200 and 'name="password"' in again.text


# -- configuration and check -------------------------------------------------------------------

@pytest.mark.parametrize("settings, message", [
    ({"oidc_issuer": ""}, "DASH_AUTH_OIDC_ISSUER is not set"),
    ({"oidc_issuer": "login.example.com"}, "DASH_AUTH_OIDC_ISSUER is not set"),
    ({"oidc_client_id": ""}, "DASH_AUTH_OIDC_CLIENT_ID is not set"),
    ({"oidc_scopes": "email profile"}, "must include openid"),
    ({"oidc_timeout": "0"}, "DASH_AUTH_OIDC_TIMEOUT='0' is not valid"),
])
def test_bad_settings_stop_start_up_naming_the_variable(oidc_provider, settings, message):
    with pytest.raises(ConfigurationError, match=message):
        connector_for(oidc_provider, **settings)


def test_a_discovery_document_for_another_issuer_is_refused(oidc_provider):
    connector = connector_for(oidc_provider, oidc_issuer=oidc_provider.issuer + "/")
    with pytest.raises(Exception) as refusal:
        connector.ping()
    assert "names issuer" in refusal.value.log_detail


def test_check_reports_discovery_keys_redirect_uri_and_clock_skew(oidc_provider):
    env = {"DASH_AUTH_CONNECTOR": "oidc", "DASH_AUTH_SECRET_KEY": "k" * 40, "DASH_AUTH_PRIVACY": "authorized",
           "DASH_AUTH_OIDC_ISSUER": oidc_provider.issuer, "DASH_AUTH_OIDC_CLIENT_ID": OIDC_CLIENT_ID,
           "DASH_AUTH_OIDC_CLIENT_SECRET": OIDC_CLIENT_SECRET}
    result = cli("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   oidc discovery" in result.stdout and "issuer matches" in result.stdout
    assert "ok   oidc JWKS" in result.stdout and "1 key(s)" in result.stdout
    assert "_dash-auth/callback/oidc" in result.stdout and "ok   oidc clock skew" in result.stdout
    assert "back-channel logout URI to register at the provider: " \
           "https://<app host><routes prefix>_dash-auth/backchannel-logout/oidc (supported)" in result.stdout
    assert OIDC_CLIENT_SECRET not in result.stdout + result.stderr
    down = cli("check", env={**env, "DASH_AUTH_OIDC_ISSUER": "http://127.0.0.1:9"})
    assert down.returncode == 1 and "FAIL oidc discovery" in down.stdout
