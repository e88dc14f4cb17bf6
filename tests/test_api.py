"""The public API as app code sees it, in callbacks and Flask views."""
from __future__ import annotations

import base64

import flask
import pytest

import dash_enterprise_auth as auth
from dash_enterprise_auth.testing import signed_in_client

from .conftest import UPDATE_GREETING, sign_in


def call(client, output="greeting.children", payload=None):
    return client.post("/_dash-update-component", json=payload or UPDATE_GREETING)


def test_get_username_outside_a_request_raises_a_clear_error():
    with pytest.raises(RuntimeError, match=r"get_username\(\) needs a request"):
        auth.get_username()
    with pytest.raises(RuntimeError, match=r"get_user_data\(\) needs a request"):
        auth.get_user_data()


def test_callback_sees_the_signed_in_username(make_app):
    client = make_app().server.test_client()
    sign_in(client, "alice")
    assert call(client).get_json()["response"]["greeting"]["children"] == "Hello alice"


def test_user_data_has_identity_fields_and_survives_requests(make_app):
    app = make_app()
    seen = {}

    @app.server.route("/remember", methods=["POST"])
    def remember():
        auth.set_user_data({"theme": "dark", "username": "mallory", "groups": ["admins"]})
        return "ok"

    @app.server.route("/me")
    def me():
        seen.update(auth.get_user_data())
        return "ok"

    client = app.server.test_client()
    sign_in(client, "alice")
    client.post("/remember")
    client.get("/me")
    assert seen["theme"] == "dark"
    assert seen["username"] == seen["preferred_username"] == "alice"  # identity fields stay the IdP's
    assert seen["groups"] == ["analysts"] and seen["email"] == "alice@example.com"
    assert seen["connector"] == "basic"


def test_set_user_data_refuses_what_json_cannot_hold(make_app):
    app = make_app()

    @app.server.route("/bad")
    def bad():
        with pytest.raises(TypeError, match="JSON-serialisable"):
            auth.set_user_data({"when": object()})
        return "ok"

    client = app.server.test_client()
    sign_in(client, "alice")
    assert client.get("/bad").status_code == 200


def test_set_username_changes_the_name_shown_but_not_who_is_allowed(make_app):
    app = make_app()

    @app.server.route("/rename")
    def rename():
        auth.set_username("Alice L.")
        return "ok"

    client = app.server.test_client()
    sign_in(client, "alice")
    client.get("/rename")
    assert call(client).get_json()["response"]["greeting"]["children"] == "Hello Alice L."


def test_anonymous_viewer_of_a_public_app_is_none(make_app):
    client = make_app(privacy="unauthorized").server.test_client()
    assert call(client).get_json()["response"]["greeting"]["children"] == "Hello None"


def test_logout_button_points_at_the_logout_route_under_the_request_prefix(make_app):
    make_app(dash_kwargs={"requests_pathname_prefix": "/team/app/", "routes_pathname_prefix": "/"})
    button = auth.create_logout_button(label="Sign out", style={"color": "red"})
    assert button.className == "dash-logout-frame"
    link = button.children
    assert (link.children, link.href, link.className) == ("Sign out", "/team/app/_dash-auth/logout",
                                                          "dash-logout-btn")
    assert link.style == {"color": "red"}
    assert auth.create_logout_button(logout_url="/elsewhere").children.href == "/elsewhere"


def test_logout_url_variable_overrides_the_button_target(make_app, monkeypatch):
    make_app()
    monkeypatch.setenv("DASH_LOGOUT_URL", "https://sso.example/logout")
    assert auth.create_logout_button().children.href == "https://sso.example/logout"


def test_kerberos_ticket_cache_without_kerberos_is_a_clear_error(make_app):
    app = make_app()

    @app.server.route("/ticket")
    def ticket():
        with pytest.raises(auth.KerberosTicketUnavailable, match="no Kerberos ticket exists for alice"):
            auth.get_kerberos_ticket_cache()
        return "ok"

    client = app.server.test_client()
    sign_in(client, "alice")
    assert client.get("/ticket").data == b"ok"


def test_http_basic_header_authenticates_scripts_without_a_session(make_app):
    client = make_app().server.test_client()
    good = base64.b64encode(b"alice:wonderland").decode()
    response = client.post("/_dash-update-component", json=UPDATE_GREETING,
                           headers={"Authorization": f"Basic {good}"})
    assert response.get_json()["response"]["greeting"]["children"] == "Hello alice"
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("header", ["Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(),
                                    "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
                                    "Basic " + base64.b64encode(b"alice:wrong").decode(), "Basic"])
def test_bad_basic_headers_are_401_json_never_500(make_app, header):
    response = make_app().server.test_client().get("/_dash-layout", headers={"Authorization": header})
    assert response.status_code == 401
    assert "error" in response.get_json() and "WWW-Authenticate" in response.headers


def test_testing_client_signs_a_user_in_without_any_provider(make_app):
    app = make_app()
    assert call(signed_in_client(app, "dora", groups=["analysts"])).get_json()["response"]["greeting"][
        "children"] == "Hello dora"
    assert call(signed_in_client(app, "eve", groups=["outsiders"])).status_code == 403


def test_plain_flask_app_is_protected_route_by_route(tmp_path, users_file, secret_key):
    server = flask.Flask("plain")

    @server.route("/api/data")
    def data():
        return {"user": auth.get_username()}

    @server.route("/status")
    def status():
        return "up"

    auth.protect(server, connector="basic", users_file=str(users_file), privacy="authorized",
                 secret_key=secret_key, session_store=f"sqlite:///{tmp_path}/s.sqlite3",
                 public_paths=["/status"])
    client = server.test_client()
    assert client.get("/status").data == b"up"
    assert client.get("/api/data").status_code == 401
    sign_in(client, "bob")
    assert client.get("/api/data").get_json() == {"user": "bob"}


def test_protecting_twice_is_a_no_op_and_conflicting_settings_are_refused(make_app):
    app = make_app()
    before = list(app.server.before_request_funcs[None])
    assert auth.protect(app) is app.server.extensions["dash_enterprise_auth"]
    assert app.server.before_request_funcs[None] == before
    with pytest.raises(auth.ConfigurationError, match="already protected"):
        auth.protect(app, privacy="unauthorized")


def test_every_dash_route_is_guarded(make_app):
    app = make_app()
    client = app.server.test_client()
    for path in ("/", "/_dash-layout", "/_dash-dependencies", "/assets/x.css", "/_reload-hash",
                 "/_dash-component-suites/dash/dcc/dash_core_components.js", "/_favicon.ico"):
        assert client.get(path).status_code == 401, path
    assert client.post("/_dash-update-component", json=UPDATE_GREETING).status_code == 401


def test_set_user_data_on_a_session_ended_meanwhile_is_not_reported_done(make_app):
    app = make_app()

    @app.server.route("/late-write")
    def late_write():
        app.server.extensions["dash_enterprise_auth"].store.delete_user("alice")  # signed out elsewhere
        with pytest.raises(auth.SessionEnded):
            auth.set_user_data({"saved": "no"})
        return "ok"

    @app.server.route("/late-write-unhandled")
    def late_write_unhandled():
        app.server.extensions["dash_enterprise_auth"].store.delete_user("alice")
        auth.set_user_data({"saved": "no"})
        return "reported done"

    client = app.server.test_client()
    sign_in(client, "alice")
    assert client.get("/late-write").data == b"ok"
    assert client.get("/_dash-layout").status_code == 401  # and it did not come back
    sign_in(client, "alice")
    answer = client.get("/late-write-unhandled")  # the app does not catch it: the guard's 401, not a 500
    assert answer.status_code == 401 and answer.json["sign_in_url"]
    assert "dash-auth-session=;" in answer.headers["Set-Cookie"]
