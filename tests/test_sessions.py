"""Sessions through a protected app: rotation, timeouts, tampering, logout."""
from __future__ import annotations

import time

import flask
import pytest

from dash_enterprise_auth.session import COOKIE_NAME

from .clients import client_of, make_app_on_every_backend  # noqa: F401  (a fixture: every test on every backend)
from .conftest import UPDATE_GREETING, sign_in


def cookie(client) -> str | None:
    c = client.get_cookie(COOKIE_NAME)
    return c.value if c else None


def greeting(client):
    return client.post("/_dash-update-component", json=UPDATE_GREETING)


def test_sign_in_issues_a_new_session_id_every_time(make_app):
    app = make_app()
    client = client_of(app)
    sign_in(client, "alice")
    first = cookie(client)
    sign_in(client, "alice")
    second = cookie(client)
    assert first and second and first != second
    # the session replaced at the second sign-in is over
    other = client_of(app)
    other.set_cookie(COOKIE_NAME, first)
    assert greeting(other).status_code == 401


def test_cookie_is_httponly_samesite_lax_and_not_secure_over_http(make_app):
    response = sign_in(client_of(make_app()), "alice")
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header


def test_idle_timeout_ends_the_session(make_app, monkeypatch):
    app = make_app(session_idle_timeout=120)
    client = client_of(app)
    sign_in(client, "alice")
    assert greeting(client).status_code == 200
    later = time.time() + 121
    monkeypatch.setattr(time, "time", lambda: later)
    assert greeting(client).status_code == 401


def test_activity_keeps_the_session_alive_until_max_age(make_app, monkeypatch):
    app = make_app(session_idle_timeout=600, session_max_age=1500)
    client = client_of(app)
    sign_in(client, "alice")
    start = time.time()
    for minutes in (9, 18, 24):  # each request within the idle timeout of the previous
        monkeypatch.setattr(time, "time", lambda m=minutes: start + m * 60)
        assert greeting(client).status_code == 200, minutes
    monkeypatch.setattr(time, "time", lambda: start + 1501)
    assert greeting(client).status_code == 401


def test_tampered_cookie_is_no_session(make_app):
    app = make_app()
    client = client_of(app)
    sign_in(client, "alice")
    value = cookie(client)
    client.set_cookie(COOKIE_NAME, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert greeting(client).status_code == 401


def test_cookie_signed_with_another_key_is_no_session(make_app, tmp_path):
    first = make_app()
    client = client_of(first)
    sign_in(client, "alice")
    stolen = cookie(client)
    second = make_app(secret_key="another-key-" + "z" * 40)
    other = client_of(second)
    other.set_cookie(COOKIE_NAME, stolen)
    assert greeting(other).status_code == 401


@pytest.mark.parametrize("value", ["x" * 5000, "\x00\x01garbage", "a.b.c", "💥", ""])
def test_garbage_and_oversized_cookies_are_no_session_and_no_500(make_app, value):
    client = client_of(make_app())
    client.set_cookie(COOKIE_NAME, value)
    assert greeting(client).status_code == 401
    assert client.get("/", headers={"Accept": "text/html"}).status_code == 302


def test_logout_ends_the_session_for_every_copy_of_the_cookie(make_app):
    app = make_app()
    client = client_of(app)
    sign_in(client, "alice")
    copy = client_of(app)
    copy.set_cookie(COOKIE_NAME, cookie(client))
    response = client.get("/_dash-auth/logout", headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 302 and response.headers["Location"] == "/_dash-auth/signed-out"
    assert greeting(copy).status_code == 401


def test_session_survives_a_restart_of_the_app(make_app):
    client = client_of(make_app())
    sign_in(client, "alice")
    restarted = make_app()  # same store file and key, new process state
    again = client_of(restarted)
    again.set_cookie(COOKIE_NAME, cookie(client))
    assert greeting(again).get_json()["response"]["greeting"]["children"] == "Hello alice"



def jarless(app):
    """A client that sends the Cookie header a test writes (Flask's replaces it by its jar's)."""
    return app.server.test_client(use_cookies=False) if isinstance(app.server, flask.Flask) else client_of(app)


@pytest.mark.parametrize("header", ["theme=dark; {session}; _ga=GA1.2.3", "{session}", "  {session} ;x=1",
                                    'theme="a;b"; {session}', "{quoted}"])
def test_the_session_cookie_is_found_among_other_cookies(make_app, header):
    app = make_app()
    signer = client_of(app)
    sign_in(signer, "alice")
    value = cookie(signer)
    sent = header.format(session=f"{COOKIE_NAME}={value}", quoted=f'{COOKIE_NAME}="{value}"')
    answer = jarless(app).post("/_dash-update-component", json=UPDATE_GREETING, headers={"Cookie": sent})
    assert answer.status_code == 200 and "Hello alice" in answer.text


def test_of_two_session_cookies_the_first_counts(make_app):
    """As werkzeug reads cookies: a forged copy sent first is no session, even beside a real one."""
    app = make_app()
    signer = client_of(app)
    sign_in(signer, "alice")
    value = cookie(signer)
    client = jarless(app)
    forged = client.post("/_dash-update-component", json=UPDATE_GREETING,
                         headers={"Cookie": f"{COOKIE_NAME}=forged.value; {COOKIE_NAME}={value}"})
    assert forged.status_code == 401
    real = client.post("/_dash-update-component", json=UPDATE_GREETING,
                       headers={"Cookie": f"{COOKIE_NAME}={value}; {COOKIE_NAME}=forged.value"})
    assert real.status_code == 200
