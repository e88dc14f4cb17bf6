"""The plotly connector (dash-auth's PlotlyAuth flow) against the local stand-in for the Plotly server.

The Plotly cloud cannot be reached from here; tests.servers.plotly_server speaks
its documented endpoints and JSON shapes over real HTTP.
"""
from __future__ import annotations

import json
import re
from html import unescape
from typing import Any, Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import dash
import pytest
import requests

import dash_enterprise_auth as auth
from dash_enterprise_auth.errors import ConfigurationError
from dash_enterprise_auth.install import installed_on

from .conftest import IN_PROCESS_APP, UPDATE_GREETING
from .servers.plotly_server import PlotlyServer

HTML = {"Accept": "text/html", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}
APP = "sales-dashboard"
API_KEY = "alice-api-key"


@pytest.fixture
def plotly() -> Iterator[PlotlyServer]:
    server = PlotlyServer(
        users={"alice": {"password": "alice-pw", "email": "alice@example.org"},
               "bob": {"password": "bob-pw", "email": "bob@example.org"},
               "carol": {"password": "carol-pw", "email": "carol@example.org"}},
        files={APP: {"owner": "alice", "viewers": ["bob"], "world_readable": False, "share_key": "s3cr3t-link",
                     "share_key_enabled": False}},
        api_users={"alice": API_KEY},
    ).start()
    yield server
    server.stop()


def plotly_settings(server: PlotlyServer, **extra: Any) -> dict[str, Any]:
    return {"connector": "plotly", "plotly_domain": server.url, "plotly_app_name": APP, "plotly_username": "alice",
            "plotly_api_key": API_KEY, **extra}


def sign_in_at_plotly(app_client, username: str, password: str, cancel: bool = False):
    """Go to the stub's authorize page with requests, submit its form, hand the callback to the app."""
    return app_client.get(callback_from_plotly(app_client, username, password, cancel), headers=HTML)


def callback_from_plotly(app_client, username: str, password: str, cancel: bool = False) -> str:
    """The path and query Plotly sends the browser back to after its sign-in form."""
    started = app_client.get("/_dash-auth/login?next=/", headers=HTML)
    assert started.status_code == 302, started.get_data(as_text=True)[:300]
    http = requests.Session()
    page = http.get(started.headers["Location"], allow_redirects=False)
    assert page.status_code == 200, page.text[:300]
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    fields = {k: unescape(v) for k, v in fields.items()}
    action = urljoin(page.url, re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    button = {"cancel": "Cancel"} if cancel else {"allow": "Authorize"}
    back = http.post(action, data={**fields, "username": username, "password": password, **button},
                     allow_redirects=False)
    assert back.status_code == 302, back.text[:300]
    location = urlsplit(back.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == IN_PROCESS_APP
    return f"{location.path}?{location.query}"


def greeting(app_client) -> tuple[int, str]:
    response = app_client.post("/_dash-update-component", json=UPDATE_GREETING)
    return response.status_code, json.dumps(response.get_json()) if response.is_json else ""


def test_the_owner_and_people_the_file_is_shared_with_sign_in(make_app, plotly):
    app = make_app(**plotly_settings(plotly))
    for username in ("alice", "bob"):
        browser = app.server.test_client()
        answer = sign_in_at_plotly(browser, username, f"{username}-pw")
        assert answer.status_code == 302 and answer.headers["Location"] == "/"
        assert browser.get("/", headers=HTML).status_code == 200
        status, body = greeting(browser)
        assert status == 200 and f"Hello {username}" in body


def test_someone_the_file_is_not_shared_with_is_refused_without_a_session(make_app, plotly):
    app = make_app(**plotly_settings(plotly))
    browser = app.server.test_client()
    answer = sign_in_at_plotly(browser, "carol", "carol-pw")
    assert answer.status_code == 403 and "may not view this app" in answer.get_data(as_text=True)
    assert greeting(browser)[0] == 401


def test_the_app_registers_its_oauth_client_and_file_as_plotlyauth_did(make_app, plotly):
    app = make_app(**plotly_settings(plotly, plotly_app_name="new-app", plotly_sharing="secret",
                                     plotly_app_url="https://apps.corp/new-app"))
    sign_in_at_plotly(app.server.test_client(), "alice", "alice-pw")
    created = plotly.files["new-app"]
    assert created["owner"] == "alice" and created["share_key_enabled"] and not created["world_readable"]
    assert created["app_url"] == "https://apps.corp/new-app"
    (registered,) = [c for c in plotly.registered_clients() if c["name"] == "new-app"]
    assert registered["redirect_uris"] == f"{IN_PROCESS_APP}/_dash-auth/callback/plotly"
    assert registered["authorization_grant_type"] == "authorization-code" and registered["client_type"] == "public"


def test_the_authorization_request_uses_pkce(make_app, plotly):
    app = make_app(**plotly_settings(plotly))
    query = parse_qs(urlsplit(app.server.test_client().get("/_dash-auth/login?next=/", headers=HTML)
                              .headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    assert len(query["state"][0]) >= 32


def test_logout_revokes_the_token_at_plotly(make_app, plotly):
    app = make_app(**plotly_settings(plotly))
    browser = app.server.test_client()
    sign_in_at_plotly(browser, "bob", "bob-pw")
    issued = list(plotly.issued)
    assert browser.get("/_dash-auth/logout", headers=HTML).status_code == 302
    assert issued and plotly.revoked == issued[-1:]
    assert greeting(browser)[0] == 401


def test_public_sharing_admits_any_signed_in_plotly_user_and_no_anonymous_visitor(make_app, plotly):
    app = make_app(**plotly_settings(plotly, plotly_sharing="public"))
    visitor = app.server.test_client()
    assert visitor.get("/", headers=HTML).status_code == 302  # to sign-in, as with dash-auth 1.x
    assert greeting(visitor)[0] == 401
    carol = app.server.test_client()  # the file is not shared with her; it is world-readable
    assert sign_in_at_plotly(carol, "carol", "carol-pw").status_code == 302
    status, body = greeting(carol)
    assert status == 200 and "Hello carol" in body
    assert plotly.files[APP]["world_readable"]


def test_anonymous_sharing_is_the_explicit_way_to_open_the_app_to_anyone(make_app, plotly):
    app = make_app(**plotly_settings(plotly, plotly_sharing="anonymous"))
    visitor = app.server.test_client()
    assert visitor.get("/", headers=HTML).status_code == 200
    status, body = greeting(visitor)
    assert status == 200 and "Hello None" in body  # anonymous, as in any public app
    assert visitor.get("/_dash-auth/health").status_code == 200
    assert plotly.files[APP]["world_readable"]  # the health check brought the file in line with the sharing


def test_secret_sharing_admits_the_share_key_link_and_nothing_else(make_app, plotly):
    app = make_app(**plotly_settings(plotly, plotly_sharing="secret"))
    share_key = plotly.files[APP]["share_key"]
    stranger = app.server.test_client()
    assert stranger.get("/", headers=HTML).status_code == 302
    assert stranger.get("/?share_key=guess", headers=HTML).status_code == 302
    assert greeting(stranger)[0] == 401
    friend = app.server.test_client()
    assert friend.get(f"/?share_key={share_key}", headers=HTML).status_code == 200
    assert greeting(friend)[0] == 200  # the Dash requests that follow carry the link's cookie, not the key
    forged = app.server.test_client()
    forged.set_cookie("dash-auth-share", share_key)  # an unsigned cookie is worth nothing
    assert greeting(forged)[0] == 401
    assert sign_in_at_plotly(app.server.test_client(), "carol", "carol-pw").status_code == 403


def test_a_stray_request_to_the_callback_url_leaves_the_sign_in_to_its_browser(make_app, plotly):
    app = make_app(**plotly_settings(plotly))
    browser = app.server.test_client()
    callback = callback_from_plotly(browser, "bob", "bob-pw")
    scanner = app.server.test_client()  # a link scanner or prefetching proxy: not the browser that started it
    refused = scanner.get(callback, headers=HTML)
    assert refused.status_code == 400 and "another browser" in refused.get_data(as_text=True)
    assert greeting(scanner)[0] == 401
    assert browser.get(callback, headers=HTML).status_code == 302
    status, body = greeting(browser)
    assert status == 200 and "Hello bob" in body


def test_a_cancelled_sign_in_is_a_refusal_page(make_app, plotly):
    app = make_app(**plotly_settings(plotly))
    browser = app.server.test_client()
    answer = sign_in_at_plotly(browser, "bob", "bob-pw", cancel=True)
    assert answer.status_code == 401 and "cancelled or refused" in answer.get_data(as_text=True)


def test_plotly_down_gives_a_503_page(make_app, plotly):
    app = make_app(**plotly_settings(plotly))
    plotly.down()
    answer = app.server.test_client().get("/_dash-auth/login?next=/", headers=HTML)
    assert answer.status_code == 503 and "does not answer" in answer.get_data(as_text=True)
    assert app.server.test_client().get("/_dash-auth/health").status_code == 503


def test_privacy_comes_from_sharing_so_dash_auth_privacy_is_refused(make_app, plotly):
    with pytest.raises(ConfigurationError, match="DASH_AUTH_PRIVACY is not used with the plotly connector"):
        make_app(**plotly_settings(plotly, privacy="authorized"))


@pytest.mark.parametrize("settings, message", [
    ({"plotly_app_name": ""}, "DASH_AUTH_PLOTLY_APP_NAME is not set"),
    ({"plotly_api_key": ""}, "PLOTLY_USERNAME and PLOTLY_API_KEY"),
    ({"plotly_sharing": "friends"}, "DASH_AUTH_PLOTLY_SHARING='friends' is not valid"),
])
def test_bad_settings_stop_start_up(make_app, plotly, settings, message):
    with pytest.raises(ConfigurationError, match=message):
        make_app(**plotly_settings(plotly, **settings))


@pytest.mark.parametrize("prefix", ["DASH_AUTH_", ""])
def test_the_domain_keywords_win_over_either_variable(make_app, plotly, monkeypatch, prefix):
    # DASH_AUTH_PLOTLY_DOMAIN and dash-auth 1.x's PLOTLY_DOMAIN both spell plotly_domain=; the keyword
    # once set the second only, so the first, from the environment, won over protect()'s argument.
    for variable in ("PLOTLY_DOMAIN", "PLOTLY_API_DOMAIN"):
        monkeypatch.setenv(prefix + variable, "http://127.0.0.1:9")  # nothing answers there
    app = make_app(**plotly_settings(plotly, plotly_api_domain=plotly.url))
    connector = installed_on(app.server).connector
    assert (connector.domain, connector.api_domain) == (plotly.url.rstrip("/"), plotly.url.rstrip("/"))
    browser = app.server.test_client()
    assert sign_in_at_plotly(browser, "alice", "alice-pw").status_code == 302
    assert browser.get("/", headers=HTML).status_code == 200


@pytest.fixture
def plain_dash_app(plotly, monkeypatch, secret_key) -> dash.Dash:
    """An app as dash-auth 1.x users wrote it: Plotly's server and API credentials in the environment."""
    monkeypatch.setenv("PLOTLY_DOMAIN", plotly.url)
    monkeypatch.setenv("PLOTLY_USERNAME", "alice")
    monkeypatch.setenv("PLOTLY_API_KEY", API_KEY)
    app = dash.Dash(__name__)
    app.server.secret_key = secret_key
    app.layout = dash.html.Div("hello")
    return app


def test_plotlyauth_from_dash_auth_1_maps_onto_the_connector(plain_dash_app):
    plotly_auth = auth.PlotlyAuth(plain_dash_app, APP, "private", "https://apps.corp/sales")
    assert plotly_auth.protection.connector.name == "plotly"
    assert plotly_auth.protection.policy.level.value == "authorized"
    browser = plain_dash_app.server.test_client()
    assert browser.get("/", headers=HTML).status_code == 302
    assert sign_in_at_plotly(browser, "bob", "bob-pw").status_code == 302
    assert browser.get("/", headers=HTML).status_code == 200


def test_plotlyauth_public_still_asks_for_a_sign_in_as_dash_auth_1_did(plain_dash_app):
    auth.PlotlyAuth(plain_dash_app, APP, "public")
    visitor = plain_dash_app.server.test_client()
    assert visitor.get("/", headers=HTML).status_code == 302
    assert sign_in_at_plotly(visitor, "carol", "carol-pw").status_code == 302
    assert visitor.get("/", headers=HTML).status_code == 200
