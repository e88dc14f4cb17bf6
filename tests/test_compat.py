"""dash-auth users migrate by changing one import."""
from __future__ import annotations

import dash
import pytest
from dash import Input, Output, html

import dash_enterprise_auth as auth
from dash_enterprise_auth import BasicAuth, check_groups, list_groups, protected_callback

from .conftest import UPDATE_GREETING


def build(tmp_path, monkeypatch, **kwargs):
    monkeypatch.setenv("DASH_AUTH_SESSION_STORE", f"sqlite:///{tmp_path}/s.sqlite3")
    app = dash.Dash(__name__)
    app.layout = html.Div([html.Div(id="greeting"), html.Div("NYC", id="city"), html.Div(id="admin")])

    @app.callback(Output("greeting", "children"), Input("city", "children"))
    def greet(_):
        return f"Hello {auth.get_username()} {list_groups()} {check_groups(['admins'])}"

    basic = BasicAuth(app, secret_key="s" * 40, **kwargs)
    return app, basic


def login(client, username, password):
    return client.post("/_dash-auth/login", data={"username": username, "password": password, "next": "/"})


def greeting(client):
    return client.post("/_dash-update-component", json=UPDATE_GREETING).get_json()["response"]["greeting"][
        "children"]


def test_basic_auth_with_a_dict_of_plain_pairs(tmp_path, monkeypatch):
    app, _ = build(tmp_path, monkeypatch, username_password_list={"hello": "world"},
                   user_groups={"hello": ["admins"]})
    client = app.server.test_client()
    assert login(client, "hello", "wrong").status_code == 401
    assert login(client, "hello", "world").status_code == 302
    assert greeting(client) == "Hello hello ['admins'] True"


def test_basic_auth_with_a_list_of_pairs_and_group_function(tmp_path, monkeypatch):
    app, _ = build(tmp_path, monkeypatch, username_password_list=[("a", "1"), ("b", "2")],
                   user_groups=lambda user: ["admins"] if user == "a" else ["staff"])
    client = app.server.test_client()
    login(client, "b", "2")
    assert greeting(client) == "Hello b ['staff'] False"


def test_basic_auth_with_auth_func(tmp_path, monkeypatch):
    app, _ = build(tmp_path, monkeypatch, auth_func=lambda u, p: p == u[::-1])
    client = app.server.test_client()
    assert login(client, "abc", "abc").status_code == 401
    assert login(client, "abc", "cba").status_code == 302


def test_basic_auth_needs_exactly_one_source_of_users(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="exactly one"):
        BasicAuth(dash.Dash(__name__))


def test_public_routes_are_open(tmp_path, monkeypatch):
    app, _ = build(tmp_path, monkeypatch, username_password_list={"u": "p"}, public_routes=["/open/<x>"])

    @app.server.route("/open/<x>")
    def open_page(x):
        return x

    assert app.server.test_client().get("/open/yes").data == b"yes"
    assert app.server.test_client().get("/_dash-layout").status_code == 401


def test_is_authorized_hook_can_refuse_a_sign_in(tmp_path, monkeypatch):
    app, basic = build(tmp_path, monkeypatch, username_password_list={"ok": "pw", "banned": "pw"})

    @basic.is_authorized_hook
    def not_banned(data):
        return data["username"] != "banned"

    client = app.server.test_client()
    refused = login(client, "banned", "pw")
    assert refused.status_code == 401 and b"not allowed to use this app" in refused.data
    assert login(client, "ok", "pw").status_code == 302


def test_object_methods_of_dash_auth_work(tmp_path, monkeypatch):
    app, basic = build(tmp_path, monkeypatch, username_password_list={"u": "p"})

    @app.server.route("/who")
    def who():
        basic.set_user_data({"k": 1})
        return {"name": basic.get_username(), "k": basic.get_user_data()["k"]}

    client = app.server.test_client()
    login(client, "u", "p")
    assert client.get("/who").get_json() == {"name": "u", "k": 1}


def test_protected_callback_runs_only_for_the_groups_and_otherwise_leaves_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("DASH_AUTH_SESSION_STORE", f"sqlite:///{tmp_path}/s.sqlite3")
    app = dash.Dash(__name__)
    app.layout = html.Div([html.Div("x", id="trigger"), html.Div("unchanged", id="secret")])

    @protected_callback(Output("secret", "children"), Input("trigger", "children"), groups=["admins"])
    def reveal(_):
        return "the secret"

    BasicAuth(app, {"boss": "pw", "temp": "pw"}, user_groups={"boss": ["admins"], "temp": ["staff"]},
              secret_key="s" * 40)
    body = {"output": "secret.children", "outputs": {"id": "secret", "property": "children"},
            "inputs": [{"id": "trigger", "property": "children", "value": "x"}],
            "changedPropIds": ["trigger.children"], "state": []}
    boss, temp = app.server.test_client(), app.server.test_client()
    login(boss, "boss", "pw")
    login(temp, "temp", "pw")
    assert boss.post("/_dash-update-component", json=body).get_json()["response"]["secret"][
        "children"] == "the secret"
    assert temp.post("/_dash-update-component", json=body).status_code == 204  # PreventUpdate


def test_group_helpers_outside_a_request_say_not_signed_in():
    assert list_groups() is None and check_groups(["x"]) is None


def test_check_groups_check_types(make_app):
    from dash_enterprise_auth.testing import signed_in_client

    app = make_app()
    results = {}

    @app.server.route("/checks")
    def checks():
        results.update(
            one=check_groups(["admins", "x"]), all=check_groups(["admins", "analysts"], check_type="all_of"),
            none=check_groups(["admins"], check_type="none_of"), anyone=check_groups(),
        )
        with pytest.raises(ValueError):
            check_groups(["a"], check_type="some_of")
        return "ok"

    signed_in_client(app, "carol", groups=["admins", "analysts"]).get("/checks")
    assert results == {"one": True, "all": True, "none": False, "anyone": True}
