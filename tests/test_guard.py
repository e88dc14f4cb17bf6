"""Guard behaviour a user notices: throttling, outages, proxies and path prefixes."""
from __future__ import annotations

import sqlite3

import pytest

from dash_enterprise_auth.session import SECURE_COOKIE_NAME

from .clients import client_of, make_app_on_every_backend  # noqa: F401  (a fixture: every test on every backend)
from .conftest import UPDATE_GREETING, sign_in


def test_password_guessing_is_throttled_per_account_even_for_the_right_password(make_app):
    client = client_of(make_app())
    for _ in range(10):
        assert sign_in(client, "alice", "guess").status_code == 401
    throttled = sign_in(client, "alice")
    assert throttled.status_code == 429
    assert b"Too many failed sign-in attempts" in throttled.data and int(throttled.headers["Retry-After"]) > 0
    assert sign_in(client, "carol").status_code == 302  # other accounts are not affected


def test_the_right_password_clears_the_accounts_failures(make_app):
    client = client_of(make_app())
    for _ in range(2):  # 9 + 9 typos, each run ended by the right password: never 10 in a row
        for _ in range(9):
            assert sign_in(client, "alice", "guess").status_code == 401
        assert sign_in(client, "alice").status_code == 302


def test_throttle_is_shared_by_apps_on_the_same_store(make_app):
    first, second = make_app(), make_app()  # two "workers" on one SQLite file
    for _ in range(10):
        sign_in(client_of(first), "alice", "guess")
    assert sign_in(client_of(second), "alice").status_code == 429


def test_per_address_limit_is_far_above_the_account_limit(make_app):
    client = client_of(make_app())
    for name in ("u%d" % i for i in range(12)):  # an office of people mistyping once each
        sign_in(client, name, "typo")
    assert sign_in(client, "alice").status_code == 302


def test_throttling_applies_to_basic_headers_too(make_app):
    import base64

    client = client_of(make_app())
    wrong = {"Authorization": "Basic " + base64.b64encode(b"carol:nope").decode()}
    for _ in range(10):
        assert client.get("/_dash-layout", headers=wrong).status_code == 401
    right = {"Authorization": "Basic " + base64.b64encode(b"carol:c4r0l-secret").decode()}
    response = client.get("/_dash-layout", headers=right)
    assert response.status_code == 429 and "Retry-After" in response.headers


def test_signed_in_viewer_opening_sign_in_goes_straight_to_next(make_app):
    client = client_of(make_app())
    sign_in(client, "alice")
    response = client.get("/_dash-auth/login?next=/reports")
    assert response.status_code == 302 and response.headers["Location"] == "/reports"


def test_sign_in_from_a_sibling_site_is_refused(make_app):
    client = client_of(make_app())
    response = sign_in(client, "alice", **{"Sec-Fetch-Site": "same-site"})
    assert response.status_code == 403 and "Set-Cookie" not in response.headers


def test_broken_session_store_answers_503_and_lets_nobody_in(make_app, tmp_path):
    app = make_app()
    client = client_of(app)
    sign_in(client, "alice")
    with sqlite3.connect(tmp_path / "sessions.sqlite3") as db:
        db.execute("DROP TABLE sessions")
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 503 and b"unavailable" in page.data and b"Traceback" not in page.data
    assert client.post("/_dash-update-component", json=UPDATE_GREETING).status_code == 503
    assert client.get("/_dash-auth/health").status_code == 503
    assert sign_in(client_of(app), "alice").status_code == 503


def test_behind_a_tls_proxy_cookies_are_secure_and_host_prefixed(make_app):
    client = client_of(make_app(proxy_hops=1))
    response = sign_in(client, "alice", **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "dash.corp"})
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(SECURE_COOKIE_NAME + "=") and "Secure" in cookie and "Path=/" in cookie


def test_forwarded_headers_are_ignored_without_proxy_hops(make_app):
    client = client_of(make_app())
    response = sign_in(client, "alice", **{"X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/evil"})
    assert "Secure" not in response.headers["Set-Cookie"] and response.headers["Location"] == "/"


def test_forwarded_prefix_is_honoured_in_redirects(make_app):
    client = client_of(make_app(proxy_hops=1))
    response = client.get("/", headers={"Accept": "text/html", "X-Forwarded-Prefix": "/sales"})
    assert response.headers["Location"] == "/sales/_dash-auth/login?next=/sales/"


def test_app_under_a_path_prefix(make_app):
    app = make_app(dash_kwargs={"url_base_pathname": "/team/"})
    client = client_of(app)
    first = client.get("/team/", headers={"Accept": "text/html"})
    assert first.headers["Location"] == "/team/_dash-auth/login?next=/team/"
    response = client.post("/team/_dash-auth/login",
                           data={"username": "alice", "password": "wonderland", "next": "/team/"})
    assert response.status_code == 302 and "Path=/team/" in response.headers["Set-Cookie"]
    assert client.post("/team/_dash-update-component", json=UPDATE_GREETING).status_code == 200
    out = client.get("/team/_dash-auth/logout", headers={"Sec-Fetch-Site": "same-origin"})
    assert out.headers["Location"] == "/team/_dash-auth/signed-out"


def test_forbidden_api_call_is_json(make_app):
    client = client_of(make_app())
    sign_in(client, "bob")
    response = client.post("/_dash-update-component", json=UPDATE_GREETING)
    assert response.status_code == 403 and "bob" in response.get_json()["error"]


@pytest.mark.parametrize("field", ["username", "password"])
def test_oversized_credentials_are_refused_quickly(make_app, field):
    client = client_of(make_app())
    data = {"username": "alice", "password": "wonderland", field: "x" * 100_000}
    assert client.post("/_dash-auth/login", data=data).status_code == 401


def test_app_templates_replace_the_package_pages(make_app, tmp_path):
    """The app's ``templates/dash_auth/`` folder: beside its assets (Flask: its template_folder)."""
    app = make_app(dash_kwargs={"assets_folder": str(tmp_path / "assets")})
    templates = tmp_path / "templates" / "dash_auth"
    templates.mkdir(parents=True)
    (templates / "login.html").write_text("<p>Corporate sign-in for {{ app_title }}</p>")
    if hasattr(app.server, "jinja_env"):  # Flask: where the app's own templates are configured
        app.server.template_folder = str(tmp_path / "templates")
    page = client_of(app).get("/_dash-auth/login")
    assert page.data == b"<p>Corporate sign-in for Test app</p>"


def test_health_reports_an_unreadable_users_file_without_details(make_app, tmp_path, users_file):
    import shutil

    own_file = tmp_path / "users.json"
    shutil.copy(users_file, own_file)
    client = client_of(make_app(users_file=str(own_file)))
    assert client.get("/_dash-auth/health").status_code == 200
    own_file.write_text("{not json")
    response = client.get("/_dash-auth/health")
    assert response.status_code == 503 and response.get_json() == {"error": "unavailable"}
