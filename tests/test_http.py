"""The example app under gunicorn (two workers, one SQLite store), driven over real HTTP."""
from __future__ import annotations

import base64

import pytest
import requests

from .conftest import UPDATE_GREETING

LOGIN = "/_dash-auth/login"


@pytest.fixture
def url(example_server):
    return example_server.url


def browser_get(session, url, **kw):
    return session.get(url, headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"},
                       allow_redirects=False, timeout=10, **kw)


def sign_in(url, username="alice", password="wonderland", next_url="/", session=None):
    session = session or requests.Session()
    response = session.post(url + LOGIN, data={"username": username, "password": password, "next": next_url},
                            headers={"Origin": url, "Sec-Fetch-Site": "same-origin"},
                            allow_redirects=False, timeout=10)
    return session, response


def update(session, url):
    return session.post(url + "/_dash-update-component", json=UPDATE_GREETING, timeout=10)


def test_unauthenticated_page_load_redirects_to_sign_in_with_next(url):
    response = browser_get(requests.Session(), url + "/?tab=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/_dash-auth/login?next=/%3Ftab%3D2"


def test_sign_in_page_is_a_labelled_form_that_works_without_javascript(url):
    page = requests.get(url + LOGIN + "?next=/x", timeout=10)
    assert page.status_code == 200 and "<script" not in page.text
    for fragment in ('<label for="username">', 'id="username" name="username"', '<label for="password">',
                     'id="password" name="password" type="password"', 'name="next" value="/x"',
                     "Sales dashboard", 'method="post"'):
        assert fragment in page.text
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"


def test_sign_in_lands_on_the_requested_page_and_callbacks_see_the_user(url):
    session, response = sign_in(url, next_url="/?tab=2")
    assert response.status_code == 302 and response.headers["Location"] == "/?tab=2"
    assert update(session, url).json()["response"]["greeting"]["children"] == "Hello alice"


def test_session_is_shared_by_both_workers(url):
    session, _ = sign_in(url)
    # gunicorn spreads requests over its workers; every one must know the session
    assert all(update(session, url).status_code == 200 for _ in range(12))


def test_wrong_password_and_unknown_user_get_the_same_message(url):
    _, wrong_password = sign_in(url, password="nope")
    _, unknown_user = sign_in(url, username="zed", password="nope")
    assert wrong_password.status_code == unknown_user.status_code == 401
    for response in (wrong_password, unknown_user):
        assert 'role="alert"' in response.text
        assert "The username or password is incorrect." in response.text
        assert "Set-Cookie" not in response.headers


def test_user_outside_the_allowed_groups_gets_a_403_page_naming_them(url):
    session, response = sign_in(url, "bob", "builder")
    assert response.status_code == 302
    page = browser_get(session, url + "/")
    assert page.status_code == 403
    assert "bob" in page.text and "Sign out" in page.text and "/_dash-auth/logout" in page.text
    assert update(session, url).status_code == 403


def test_unauthenticated_dash_update_gets_401_json(url):
    response = update(requests.Session(), url)
    assert response.status_code == 401
    assert response.json()["sign_in_url"].startswith(LOGIN)


def test_index_page_carries_the_reload_on_401_script(url):
    session, _ = sign_in(url)
    page = browser_get(session, url + "/")
    assert '<script src="/_dash-auth/static/session.js"></script>' in page.text
    script = session.get(url + "/_dash-auth/static/session.js", timeout=10)
    assert script.status_code == 200 and "location.reload" in script.text


def test_logout_then_replaying_the_old_cookie_fails(url):
    session, _ = sign_in(url)
    stolen = dict(session.cookies)
    out = session.get(url + "/_dash-auth/logout", headers={"Sec-Fetch-Site": "same-origin"},
                      allow_redirects=False, timeout=10)
    assert out.status_code == 302 and out.headers["Location"] == "/_dash-auth/signed-out"
    replay = requests.post(url + "/_dash-update-component", json=UPDATE_GREETING, cookies=stolen, timeout=10)
    assert replay.status_code == 401


def test_cross_site_logout_link_only_shows_a_confirmation(url):
    session, _ = sign_in(url)
    page = session.get(url + "/_dash-auth/logout", headers={"Sec-Fetch-Site": "cross-site"},
                       allow_redirects=False, timeout=10)
    assert page.status_code == 200 and "Sign out?" in page.text and 'name="token"' in page.text
    assert update(session, url).status_code == 200  # still signed in
    forged = session.post(url + "/_dash-auth/logout", data={"token": "forged"},
                          headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False, timeout=10)
    assert forged.status_code == 403 and update(session, url).status_code == 200
    token = page.text.split('name="token" value="')[1].split('"')[0]
    confirmed = session.post(url + "/_dash-auth/logout", data={"token": token}, allow_redirects=False,
                             timeout=10)
    assert confirmed.status_code == 302 and update(session, url).status_code == 401


def test_cross_site_sign_in_form_post_is_refused(url):
    response = requests.post(url + LOGIN, data={"username": "alice", "password": "wonderland"},
                             headers={"Origin": "https://evil.example"}, allow_redirects=False, timeout=10)
    assert response.status_code == 403 and "Set-Cookie" not in response.headers


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example", "/\\evil.example",
                                    "http:/evil.example", "/\t/evil.example"])
def test_open_redirects_after_sign_in_are_refused(url, target):
    _, response = sign_in(url, next_url=target)
    assert response.status_code == 302 and response.headers["Location"] == "/"


@pytest.mark.parametrize("value", ["A" * 4000, "garbage", "x.y.z", "\x7f\x7f", "%00%ff"])
def test_garbage_tampered_and_oversized_cookies_are_refused_without_500(url, value):
    response = requests.post(url + "/_dash-update-component", json=UPDATE_GREETING,
                             cookies={"dash-auth-session": value}, timeout=10)
    # gunicorn itself answers 400 to header bytes HTTP forbids; the app answers 401
    assert response.status_code in (400, 401)


def test_tampered_cookie_is_refused(url):
    session, _ = sign_in(url)
    value = session.cookies["dash-auth-session"]
    # Change the session id, not the signature's last character: in unpadded base64 that
    # character also carries padding bits, so some changes decode to the same signature.
    forged = ("A" if value[0] != "A" else "B") + value[1:]
    response = requests.post(url + "/_dash-update-component", json=UPDATE_GREETING,
                             cookies={"dash-auth-session": forged}, timeout=10)
    assert response.status_code == 401


def test_scripts_can_use_http_basic(url):
    token = base64.b64encode(b"alice:wonderland").decode()
    response = requests.get(url + "/_dash-layout", headers={"Authorization": f"Basic {token}"}, timeout=10)
    assert response.status_code == 200
    bad = requests.get(url + "/_dash-layout", headers={"Authorization": "Basic %%%"}, timeout=10)
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"].startswith("Basic")


def test_health_answers_without_sign_in(url):
    response = requests.get(url + "/_dash-auth/health", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_audit_log_records_sign_ins_without_secrets(example_server):
    sign_in(example_server.url, password="definitely-wrong-pw")
    sign_in(example_server.url)
    log = example_server.log()
    assert '"event":"sign_in"' in log and '"event":"sign_in_failed"' in log
    assert "definitely-wrong-pw" not in log and "wonderland" not in log
