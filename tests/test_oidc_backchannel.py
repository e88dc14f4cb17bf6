"""OpenID Connect Back-Channel Logout 1.0 against the real OpenID provider (panva's oidc-provider).

The app under test runs under gunicorn (Flask), uvicorn (FastAPI) and hypercorn (Quart) with two
workers, on a port registered at the provider as the client's ``backchannel_logout_uri``: a person
who signs out at the provider has the provider POST a logout token there, and the app's session
ends. Tokens the provider would never send are made here: signed with a foreign key, unsigned,
HMAC with the client secret, or signed with the provider's own key (tests.servers.oidc_server
makes it) with a claim changed. Each is refused with 400 and ends nothing.
"""
from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
import requests
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from .conftest import IN_PROCESS_APP, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET
from .servers.app_server import RunningApp, free_port, start_app
from .servers.oidc_server import ACCOUNTS, OidcProvider, client, confirm_logout, get_at_provider, submit_login
from .servers.redis_server import RedisServer
from .test_backends import assert_no_traceback
from .test_backends_connectors import callback_body, update
from .test_install_extras import REGISTERED_HOST, Browser, oidc_settings
from .test_oidc import back_from_provider, has_session
from .test_oidc import oidc_settings as in_process_settings

BACKENDS = {"flask": "gunicorn", "fastapi": "uvicorn", "quart": "hypercorn"}
LABELS = {"flask": "Flask", "fastapi": "FastAPI", "quart": "Quart"}
APP = "tests.apps.connectors_app:server"
ROUTE = "/_dash-auth/backchannel-logout/oidc"
EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: The suite's people, and a few more analysts so that each test ends only its own person's sessions.
PEOPLE = [*ACCOUNTS, *({"sub": name, "username": name, "password": f"{name}-password", "email": f"{name}@example.org",
                        "name": name.title(), "groups": ["analysts"], "locked": False}
                       for name in ("carol", "dave", "erin", "frank"))]
PASSWORD = {p["username"]: p["password"] for p in PEOPLE}


# -- tokens ------------------------------------------------------------------------------------

def logout_token(provider: OidcProvider, key: dict | None = None, header: dict | None = None,
                 **changes: Any) -> str:
    """A logout token as the provider sends it to dash-app (``sub``, no ``sid`` unless given),
    changed by ``changes`` (None drops a claim); signed with ``key``, by default the provider's own."""
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": OIDC_CLIENT_ID, "iat": now, "exp": now + 120,
              "jti": secrets.token_urlsafe(16), "sub": "alice", "events": {EVENT: {}}, **changes}
    claims = {k: v for k, v in claims.items() if v is not None}
    key = key or provider.private_jwk()
    return jwt.encode({"alg": "RS256", "kid": key["kid"], "typ": "logout+jwt", **(header or {})}, claims,
                      RSAKey.import_key(key))


def unsigned(provider: OidcProvider, **claims: Any) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    now = int(time.time())
    body = {"iss": provider.issuer, "aud": OIDC_CLIENT_ID, "iat": now, "exp": now + 120,
            "jti": secrets.token_urlsafe(16), "events": {EVENT: {}}, **claims}
    return f"{part({'alg': 'none', 'typ': 'logout+jwt'})}.{part(body)}."


def foreign_key(kid: str = "attacker") -> dict:
    return RSAKey.generate_key(2048, {"kid": kid}, private=True).as_dict(private=True)


def bad_token(provider: OidcProvider, case: str, sub: str) -> str:
    """A token naming ``sub`` that must end nothing, made as ``case`` says."""
    now = int(time.time())
    return {
        "signed by a foreign key": lambda: logout_token(provider, foreign_key(), sub=sub),
        "signed by a foreign key with the provider's kid": lambda: logout_token(
            provider, foreign_key(provider.private_jwk()["kid"]), sub=sub),
        "alg none": lambda: unsigned(provider, sub=sub),
        "HS256 with the client secret": lambda: jwt.encode(
            {"alg": "HS256", "typ": "logout+jwt"},
            {"iss": provider.issuer, "aud": OIDC_CLIENT_ID, "iat": now, "exp": now + 120,
             "jti": secrets.token_urlsafe(16), "sub": sub, "events": {EVENT: {}}},
            OctKey.import_key(OIDC_CLIENT_SECRET), algorithms=["HS256"]),
        "expired": lambda: logout_token(provider, sub=sub, iat=now - 3600, exp=now - 3480),
        "issued long ago, with no exp": lambda: logout_token(provider, sub=sub, iat=now - 3600, exp=None),
        "issued in the future": lambda: logout_token(provider, sub=sub, iat=now + 3600, exp=now + 3720),
        "no iat": lambda: logout_token(provider, sub=sub, iat=None),
        "wrong audience": lambda: logout_token(provider, sub=sub, aud="other-app"),
        "another issuer": lambda: logout_token(provider, sub=sub, iss="https://evil.example"),
        "with a nonce": lambda: logout_token(provider, sub=sub, nonce="the-nonce"),
        "without events": lambda: logout_token(provider, sub=sub, events=None),
        "with another event": lambda: logout_token(provider, sub=sub, events={"urn:other:event": {}}),
        "event that is not an object": lambda: logout_token(provider, sub=sub, events={EVENT: "yes"}),
        "without sid and sub": lambda: logout_token(provider, sub=None),
        "without jti": lambda: logout_token(provider, sub=sub, jti=None),
        "a sub that is not a string": lambda: logout_token(provider, sub=["x", sub]),
        "not a JWT": lambda: "not.a.jwt",
        "garbage": lambda: "\u00e9" * 50,
        "too large": lambda: logout_token(provider, sub=sub, padding="x" * 20_000),
    }[case]()


BAD_CASES = ["signed by a foreign key", "signed by a foreign key with the provider's kid", "alg none",
             "HS256 with the client secret", "expired", "issued long ago, with no exp", "issued in the future",
             "no iat", "wrong audience", "another issuer", "with a nonce", "without events", "with another event",
             "event that is not an object", "without sid and sub", "without jti", "a sub that is not a string",
             "not a JWT", "garbage", "too large"]


# -- the apps: each backend, on a port registered at its own provider --------------------------

@dataclass
class Site:
    backend: str
    provider: OidcProvider
    app: RunningApp
    env: dict[str, str]
    kept: dict[str, Browser] = field(default_factory=dict)

    @property
    def logout_url(self) -> str:
        return self.app.url + ROUTE

    def post(self, data: Any, **kwargs: Any) -> requests.Response:
        """What the provider does: a form POST, server to server, no cookie."""
        return requests.post(self.logout_url, data=data, allow_redirects=False, timeout=30, **kwargs)

    def sign_in(self, username: str) -> Browser:
        """A browser signs ``username`` in at the provider (its own provider session, so its own sid)."""
        browser = Browser(self.app, REGISTERED_HOST)
        page = get_at_provider(browser.at_idp, browser.to_the_provider(self.provider.issuer))
        back = submit_login(browser.at_idp, page, username, PASSWORD[username])
        assert back.is_redirect, back.text[:500]
        answer = browser.back_at_the_app(back.headers["Location"])
        assert answer.status_code == 302 and answer.headers["Location"] == "/", (answer.status_code, answer.text[:300])
        assert browser.viewer()["username"] == username
        return browser

    def kept_session(self, username: str) -> Browser:
        """One sign-in of ``username`` for the whole module (its tests must not end it)."""
        if username not in self.kept:
            self.kept[username] = self.sign_in(username)
        return self.kept[username]


def signed_in(browser: Browser) -> bool:
    """The next Dash request: 200 with a session, 401 once it has ended."""
    status = update(browser, callback_body("greeting.children", "city", "children", "NYC")).status_code
    assert status in (200, 401), status
    return status == 200


def app_settings(provider: OidcProvider) -> dict[str, str]:
    return {**oidc_settings(provider), "DASH_AUTH_ALLOWED_GROUPS": "analysts,staff"}


def start_site(backend: str, folder: Path, env: dict[str, str] | None = None, *,
               backchannel_sid: bool = True) -> Site:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    provider = OidcProvider(folder / "oidc", clients=[client(
        OIDC_CLIENT_ID, f"http://{REGISTERED_HOST}/_dash-auth/callback/oidc",
        f"http://{REGISTERED_HOST}/_dash-auth/signed-out", OIDC_CLIENT_SECRET,
        backchannel_logout_uri=f"http://127.0.0.1:{port}{ROUTE}", backchannel_sid=backchannel_sid)],
        accounts=PEOPLE).start()
    env = {"DASH_BACKEND": backend, "DASH_AUTH_SESSION_STORE": f"sqlite:///{folder}/sessions.sqlite3",
           "BACKGROUND_CACHE_DIR": str(folder), "SIGNAL_DIR": str(folder),
           **app_settings(provider), **(env or {})}
    try:
        app = start_app(APP, env, folder / "server.log", server=BACKENDS[backend], workers=2, port=port)
    except BaseException:
        provider.stop()
        raise
    return Site(backend, provider, app, env)


def stop_site(site: Site) -> str:
    """Stop the app and its provider; the app's log, which must hold no traceback and no 500."""
    site.app.stop()
    site.provider.stop()
    log = site.app.log()
    assert_no_traceback(log)
    assert '" 500 ' not in log, log[-3000:]
    return log


@pytest.fixture(scope="module", params=list(BACKENDS))
def site(request, tmp_path_factory) -> Iterator[Site]:
    started = start_site(request.param, tmp_path_factory.mktemp(f"backchannel-{request.param}"))
    yield started
    log = stop_site(started)
    assert log.count(f"protecting Connectors ({LABELS[request.param]}) with the oidc") == 2, log[-3000:]


# -- signing out at the provider -----------------------------------------------------------------

def sign_out_at_the_provider(site: Site, browser: Browser) -> None:
    """The person presses "Sign out" at the provider (its end_session endpoint, no client named)."""
    page = get_at_provider(browser.at_idp, f"{site.provider.issuer}/session/end")
    done = confirm_logout(browser.at_idp, page)
    assert done.status_code == 200 and "Sign-out Success" in done.text, (done.status_code, done.text[:300])


def test_signing_out_at_the_provider_ends_the_session_of_that_sign_in(site):
    """The provider's logout token names the sid of alice's first sign-in: that session ends at the
    next Dash request (401), on whichever worker; her sign-in in another browser stays."""
    first, second = site.sign_in("alice"), site.sign_in("alice")
    sign_out_at_the_provider(site, first)
    assert "backchannel.success" in site.provider.log(), site.provider.log()[-2000:]
    assert not signed_in(first) and not signed_in(first)  # twice: both workers
    assert signed_in(second)
    assert '"event":"sign_out"' in site.app.log() and '"via":"backchannel"' in site.app.log()


def test_the_route_answers_post_only(site):
    answer = requests.get(site.logout_url, timeout=30)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST", answer.status_code


# -- tokens that end nothing ----------------------------------------------------------------------

@pytest.mark.parametrize("case", BAD_CASES)
def test_a_bad_logout_token_is_answered_400_and_ends_nothing(site, case):
    browser = site.kept_session("dave")
    answer = site.post({"logout_token": bad_token(site.provider, case, "dave")})
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    assert answer.json()["error"] == "invalid_request" and "Traceback" not in answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    assert signed_in(browser)
    assert "back-channel logout refused" in site.app.log()


@pytest.mark.parametrize("data, kwargs", [
    ({}, {}),
    ({"logout_token": ""}, {}),
    (None, {"json": {"logout_token": "x"}}),
    (b"logout_token=%ff%fe", {"headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
])
def test_a_post_without_a_usable_logout_token_is_answered_400(site, data, kwargs):
    answer = site.post(data, **kwargs)
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])


def test_a_logout_token_with_only_sub_ends_every_session_of_that_person_and_no_other(site):
    carol, carol_again, erin = site.sign_in("carol"), site.sign_in("carol"), site.sign_in("erin")
    answer = site.post({"logout_token": logout_token(site.provider, sub="carol")})
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    assert not signed_in(carol) and not signed_in(carol_again) and signed_in(erin)


def test_a_logout_token_with_an_unknown_sid_ends_nothing_even_with_a_sub(site):
    """sid is the narrower name: a token naming a provider session that is not here ends no other."""
    frank = site.sign_in("frank")
    answer = site.post({"logout_token": logout_token(site.provider, sub="frank", sid="not-a-session-here")})
    assert answer.status_code == 200 and signed_in(frank)


def test_a_replayed_logout_token_is_refused_and_ends_nothing(site):
    """The jti is remembered in the session store: the same token again, even after the person signed
    in again (and whichever worker gets it), is refused and leaves the new session alone."""
    token = logout_token(site.provider, sub="erin")
    erin = site.sign_in("erin")
    assert site.post({"logout_token": token}).status_code == 200 and not signed_in(erin)
    again = site.sign_in("erin")
    for _ in range(4):  # two workers: each sees the replay at least once, most likely
        replayed = site.post({"logout_token": token})
        assert replayed.status_code == 400, (replayed.status_code, replayed.text[:300])
    assert signed_in(again)
    assert "seen before (replay)" in site.app.log()


# -- across hosts, and with the store down ------------------------------------------------------

@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder).start()
    yield server
    server.stop()


def test_across_hosts_sharing_redis_a_logout_token_ends_sessions_everywhere_and_is_used_once(tmp_path, own_redis):
    """Two app servers (Flask and FastAPI, two workers each) sharing a Redis store: a logout token
    received by one ends alice's session started on the other; the same token sent to the first
    is a replay there too."""
    key = secrets.token_urlsafe(48)
    env = {"DASH_AUTH_SESSION_STORE": own_redis.url, "DASH_AUTH_SECRET_KEY": key}
    one = start_site("flask", tmp_path / "one", env)
    try:
        other_env = {**one.env, "DASH_BACKEND": "fastapi"}
        other_app = start_app(APP, other_env, tmp_path / "other.log", server="uvicorn", workers=2)
        other = Site("fastapi", one.provider, other_app, other_env)
        try:
            alice = one.sign_in("alice")
            token = logout_token(one.provider, sub="alice")
            assert other.post({"logout_token": token}).status_code == 200
            assert not signed_in(alice)
            again = one.sign_in("alice")
            assert one.post({"logout_token": token}).status_code == 400 and signed_in(again)
        finally:
            other_app.stop()
            assert_no_traceback(other_app.log())
    finally:
        stop_site(one)


def test_with_the_store_refusing_writes_a_logout_token_gets_503_ends_nothing_and_works_when_it_is_back(
        make_app, oidc_provider, own_redis):
    """Fail closed: the jti cannot be remembered, so nothing is ended and the answer is 503; the token is
    not spent, and the provider's retry is honoured once the store takes writes again."""
    app = make_app(**in_process_settings(oidc_provider), session_store=own_redis.url)
    browser = app.server.test_client()
    assert back_from_provider(browser, "alice")[0].status_code == 302 and has_session(browser)
    token = logout_token(oidc_provider, sub="alice")
    admin = redis.Redis.from_url(own_redis.url)
    try:
        admin.replicaof("127.0.0.1", "9")  # after a failover the app talks to a read-only replica
        down = app.server.test_client().post(ROUTE, data={"logout_token": token})
        assert down.status_code == 503 and down.headers["Cache-Control"] == "no-store", down.status_code
        assert has_session(browser)
        admin.replicaof("NO", "ONE")
        back = app.server.test_client().post(ROUTE, data={"logout_token": token})
        assert back.status_code == 200, back.get_data(as_text=True)
        assert not has_session(browser)
    finally:
        admin.replicaof("NO", "ONE")
        admin.close()


def test_the_in_process_route_is_open_to_a_cross_site_post_without_cookies(make_app, oidc_provider):
    """No origin or CSRF check stands in the way of the provider's server (whatever headers it sends);
    the signature is what counts."""
    app = make_app(**in_process_settings(oidc_provider))
    browser = app.server.test_client()
    back_from_provider(browser, "alice")
    answer = app.server.test_client().post(ROUTE, data={"logout_token": logout_token(oidc_provider, sub="alice")},
                                           headers={"Origin": "https://idp.example", "Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 200 and not has_session(browser)


def test_another_connector_has_no_back_channel_logout(make_app):
    app = make_app()  # the basic connector
    answer = app.server.test_client().post(ROUTE, data={"logout_token": "x"})
    assert answer.status_code == 404


def test_the_route_is_under_the_routes_prefix(make_app, oidc_provider):
    app = make_app({"routes_pathname_prefix": "/sales/", "requests_pathname_prefix": "/sales/"},
                   **in_process_settings(oidc_provider))
    answer = app.server.test_client().post("/sales" + ROUTE, data={"logout_token": "x"})
    assert answer.status_code == 400



def test_after_key_rotation_a_logout_token_refetches_the_keys_but_forged_kids_cannot_make_it_ask_again(
        make_app, make_oidc_provider):
    """A token signed with the provider's new key fetches its keys again; a flood of unknown kids
    afterwards is refused without asking the provider (here stopped: asking would answer 503)."""
    provider = make_oidc_provider(client(OIDC_CLIENT_ID, f"{IN_PROCESS_APP}/_dash-auth/callback/oidc",
                                         f"{IN_PROCESS_APP}/_dash-auth/signed-out", OIDC_CLIENT_SECRET))
    app = make_app(**in_process_settings(provider))
    browser = app.server.test_client()
    assert back_from_provider(browser, "alice")[0].status_code == 302 and has_session(browser)
    provider.rotate_keys()
    rotated = app.server.test_client().post(ROUTE, data={"logout_token": logout_token(provider, sub="alice")})
    assert rotated.status_code == 200 and not has_session(browser)
    provider.stop()
    for _ in range(3):
        forged = logout_token(provider, foreign_key(secrets.token_urlsafe(8)), sub="alice")
        assert app.server.test_client().post(ROUTE, data={"logout_token": forged}).status_code == 400


def test_a_provider_that_names_only_sub_ends_every_session_of_the_person_who_signed_out(tmp_path):
    """A client registered without backchannel_logout_session_required: ID tokens carry no sid and the
    provider's logout token names only sub, so signing out at the provider ends all of alice's
    sessions here, and nobody else's."""
    site = start_site("flask", tmp_path / "site", backchannel_sid=False)
    try:
        alice, alice_elsewhere, bob = site.sign_in("alice"), site.sign_in("alice"), site.sign_in("bob")
        sign_out_at_the_provider(site, alice)
        assert "backchannel.success" in site.provider.log()
        assert not signed_in(alice) and not signed_in(alice_elsewhere) and signed_in(bob)
    finally:
        stop_site(site)
