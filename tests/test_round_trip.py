"""Sign-in through an identity provider: the state the core keeps between redirect and callback."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from dash_enterprise_auth.install import installed_on

from .clients import client_of, make_app_on_every_backend  # noqa: F401  (a fixture: every test on every backend)
from .conftest import UPDATE_GREETING
from .round_trip_connector import PROVIDER, RoundTripConnector

CALLBACK = "/_dash-auth/callback/roundtrip"


@pytest.fixture
def connector():
    return RoundTripConnector()


@pytest.fixture
def app(make_app, connector):
    return make_app(connector=connector)


def go_to_provider(client, next_url="/reports"):
    """Open the sign-in route; return the provider's query parameters."""
    response = client.get(f"/_dash-auth/login?next={next_url}")
    assert response.status_code == 302 and response.headers["Location"].startswith(PROVIDER)
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def come_back(client, params, user="alice", **extra):
    query = {"state": params["state"], "code": f"{user}.{params['nonce']}", **extra}
    return client.get(CALLBACK, query_string=query)


def signed_in(client):
    return client.post("/_dash-update-component", json=UPDATE_GREETING).status_code == 200


def test_page_load_goes_to_the_provider_and_back_to_the_page(app, connector):
    client = client_of(app)
    first = client.get("/", headers={"Accept": "text/html"})
    assert first.headers["Location"] == "/_dash-auth/login?next=/"
    params = go_to_provider(client)
    assert params["redirect_uri"] == "http://localhost/_dash-auth/callback/roundtrip"
    back = come_back(client, params)
    assert back.status_code == 302 and back.headers["Location"] == "/reports"
    assert signed_in(client)


def test_state_is_single_use(app):
    client = client_of(app)
    params = go_to_provider(client)
    assert come_back(client, params).status_code == 302
    replay = client_of(app)
    replay.set_cookie("dash-auth-state", params["state"])
    response = come_back(replay, params)
    assert response.status_code == 400 and b"expired or was already used" in response.data
    assert not signed_in(replay)


@pytest.mark.parametrize("state", ["", "made-up", "x" * 1000])
def test_missing_or_unknown_state_is_refused(app, state):
    client = client_of(app)
    params = go_to_provider(client)
    response = come_back(client, {**params, "state": state})
    assert response.status_code == 400 and not signed_in(client)


def test_callback_in_another_browser_is_refused(app):
    params = go_to_provider(client_of(app))
    other = client_of(app)  # never started a sign-in: no state cookie
    response = come_back(other, params)
    assert response.status_code == 400 and b"another browser" in response.data
    assert not signed_in(other)


def test_provider_error_is_a_refusal_page_with_a_way_to_retry(app):
    client = client_of(app)
    params = go_to_provider(client)
    response = come_back(client, params, error="access_denied")
    assert response.status_code == 401 and b"access_denied" in response.data and b"Try again" in response.data
    assert not signed_in(client)


def test_code_for_another_sign_in_is_refused(app):
    client = client_of(app)
    params = go_to_provider(client)
    response = come_back(client, {**params, "nonce": "not-this-one"})
    assert response.status_code == 401 and not signed_in(client)


def test_connector_bug_refuses_the_sign_in_without_a_500(make_app):
    app = make_app(connector=RoundTripConnector(crash=True))
    client = client_of(app)
    response = come_back(client, go_to_provider(client))
    assert response.status_code == 401 and b"could not be processed" in response.data
    assert not signed_in(client)


def test_connector_bug_when_starting_a_sign_in_is_the_outage_page_not_a_500(make_app):
    app = make_app(connector=RoundTripConnector(crash_at_login=True))
    response = client_of(app).get("/_dash-auth/login?next=/", headers={"Accept": "text/html"})
    assert response.status_code == 503 and b"unavailable" in response.data and b"Traceback" not in response.data


def test_expired_round_trip_is_refused(app, monkeypatch):
    import time

    client = client_of(app)
    params = go_to_provider(client)
    later = time.time() + 601
    monkeypatch.setattr(time, "time", lambda: later)
    assert come_back(client, params).status_code == 400


def test_next_from_the_round_trip_cannot_leave_the_site(app):
    client = client_of(app)
    params = go_to_provider(client, next_url="//evil.example")
    assert come_back(client, params).headers["Location"] == "/"


def test_authorized_hooks_can_refuse_after_the_round_trip(app):
    installed_on(app.server).hooks.append(lambda data: data["username"] != "mallory")
    client = client_of(app)
    response = come_back(client, go_to_provider(client), user="mallory")
    assert response.status_code == 401 and b"not allowed to use this app" in response.data
    assert not signed_in(client)


def test_password_form_is_not_offered_by_redirect_connectors(app):
    response = client_of(app).post("/_dash-auth/login", data={"username": "a", "password": "b"})
    assert response.status_code == 405


def test_callback_of_another_connector_is_404(app):
    assert client_of(app).get("/_dash-auth/callback/saml").status_code == 404
