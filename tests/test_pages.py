"""Access per page in a multi-page Dash app, over real HTTP, on every backend.

examples/pages_app (home: the app-wide rule, any signed-in person; finance: group finance; HR: carol
only, one page per person through ``path_template``; about: public; a menu from
``accessible_pages()``) and tests/apps/marked_pages (dash-auth's ``public_callback`` and
``protected_callback`` inside a restricted page, a callback of the app module) run as deployed:
gunicorn, uvicorn or hypercorn with two workers, protected only by ``DASH_AUTH_*`` variables.
People: alice (groups analysts, finance), bob (contractors), carol (hr).

Every callback of those apps prints a line when it runs, so "refused and never ran" is read in the
server's log, not assumed from the status code.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from .servers.app_server import ROOT, RunningApp, start_app
from websockets.sync.client import connect

from .test_backends import BACKENDS, assert_no_traceback, ws_callback

EXAMPLE = ROOT / "examples/pages_app"
MARKED = ROOT / "tests/apps/marked_pages"
PASSWORDS = {"alice": "wonderland", "bob": "builder", "carol": "c4r0l-secret"}
NAVIGATE = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "same-origin"}
ROUTER = ".._pages_content.children..._pages_store.data.."
PAGE_MARKERS = {"home": "home-news", "finance": "revenue", "hr": "salary", "about": "about-text"}


def env_for(backend: str, folder: Path, **extra: str) -> dict[str, str]:
    return {"DASH_BACKEND": backend, "DASH_AUTH_CONNECTOR": "basic",
            "DASH_AUTH_USERS_FILE": str(EXAMPLE / "users.json"), "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
            "DASH_AUTH_SESSION_STORE": f"sqlite:///{folder}/sessions.sqlite3", **extra}


class Portal:
    def __init__(self, app: RunningApp) -> None:
        self.app = app
        self.url = app.url

    def client(self, username: str | None = None) -> requests.Session:
        session = requests.Session()
        if username is not None:
            answer = session.post(self.url + "/_dash-auth/login",
                                  data={"username": username, "password": PASSWORDS[username]},
                                  headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False, timeout=15)
            assert answer.status_code == 302, answer.text[:300]
        return session

    def load(self, session: requests.Session, path: str) -> requests.Response:
        return session.get(self.url + path, headers=NAVIGATE, allow_redirects=False, timeout=15)

    def navigate(self, session: requests.Session, pathname: str) -> requests.Response:
        """What Dash Pages asks when a dcc.Link is followed: its router callback."""
        body = {"output": ROUTER,
                "outputs": [{"id": "_pages_content", "property": "children"},
                            {"id": "_pages_store", "property": "data"}],
                "inputs": [{"id": "_pages_location", "property": "pathname", "value": pathname},
                           {"id": "_pages_location", "property": "search", "value": ""}],
                "changedPropIds": ["_pages_location.pathname"]}
        return session.post(self.url + "/_dash-update-component", json=body, timeout=15)

    def click(self, session: requests.Session, button: str, output: str) -> requests.Response:
        body = {"output": f"{output}.children", "outputs": {"id": output, "property": "children"},
                "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
                "changedPropIds": [f"{button}.n_clicks"]}
        return session.post(self.url + "/_dash-update-component", json=body, timeout=15)


def dash_config(html: str) -> dict[str, Any]:
    found = re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', html, re.S)
    assert found, html[:300]
    return json.loads(found.group(1))


def ids_in(tree: Any) -> set[str]:
    text = json.dumps(tree)
    return set(re.findall(r'"id": "([^"]+)"', text))


@pytest.fixture(scope="module", params=list(BACKENDS))
def portal(request, tmp_path_factory) -> Iterator[Portal]:
    folder = tmp_path_factory.mktemp(f"pages-{request.param}")
    env = env_for(request.param, folder, DASH_AUTH_PRIVACY="authorized")
    app = start_app("app:server", env, folder / "server.log", server=BACKENDS[request.param], cwd=EXAMPLE)
    yield Portal(app)
    app.stop()
    assert_no_traceback(app.log())


@pytest.fixture(scope="module", params=list(BACKENDS))
def marked(request, tmp_path_factory) -> Iterator[Portal]:
    folder = tmp_path_factory.mktemp(f"marked-{request.param}")
    env = env_for(request.param, folder, DASH_AUTH_ALLOWED_GROUPS="analysts")
    # One worker: Dash 4.4.1 adds the callbacks of dash.callback to the app at a worker's first HTTP
    # request, so a WebSocket callback reaching a worker that has served none fails with a KeyError
    # (Dash's defect); the WebSocket test makes that first request itself.
    app = start_app("app:server", env, folder / "server.log", server=BACKENDS[request.param], cwd=MARKED,
                    workers=1)
    yield Portal(app)
    app.stop()
    assert_no_traceback(app.log())


# -- direct loads -----------------------------------------------------------------------------------

@pytest.mark.parametrize("who, path, expected", [
    (None, "/", "sign-in"), (None, "/about", 200), (None, "/finance", "sign-in"), (None, "/hr/alice", "sign-in"),
    (None, "/money", "sign-in"),
    ("bob", "/", 200), ("bob", "/about", 200), ("bob", "/finance", 403), ("bob", "/hr/bob", 403),
    ("bob", "/money", 403),
    ("alice", "/finance", 200), ("alice", "/money", "redirect"), ("alice", "/hr/alice", 403),
    ("carol", "/hr/alice", 200), ("carol", "/hr/zoe", 200), ("carol", "/finance", 403), ("carol", "/", 200),
])
def test_a_page_url_follows_the_page_rule(portal, who, path, expected):
    answer = portal.load(portal.client(who), path)
    if expected == "sign-in":
        assert answer.status_code == 302
        assert answer.headers["Location"].endswith("/_dash-auth/login?next=" + path)
    elif expected == "redirect":  # redirect_from: Dash's own redirect, then the page's rule
        assert answer.status_code in (301, 302, 307, 308)
        assert answer.headers["Location"].endswith("/finance")
    else:
        assert answer.status_code == expected, answer.text[:300]
    if expected == 403:
        assert "You do not have access to this page" in answer.text
        assert f"signed in as <strong>{who}</strong>" in answer.text
        for marker in PAGE_MARKERS.values():
            assert marker not in answer.text


def test_a_refused_dash_request_for_a_page_is_json(portal):
    answer = portal.client("bob").get(portal.url + "/finance", headers={"Accept": "application/json"}, timeout=15)
    assert answer.status_code == 403
    assert answer.json() == {"error": "Signed in as bob, who may not use this page."}


# -- what the page HTML and the layout carry -----------------------------------------------------------

@pytest.mark.parametrize("who, path, visible", [
    (None, "/about", {"about"}),
    ("bob", "/", {"home", "about"}),
    ("alice", "/finance", {"home", "finance", "about"}),
    ("carol", "/hr/alice", {"home", "hr", "about"}),
])
def test_the_page_html_holds_only_the_layouts_of_pages_the_viewer_may_open(portal, who, path, visible):
    answer = portal.load(portal.client(who), path)
    assert answer.status_code == 200
    config = dash_config(answer.text)
    ids = ids_in(config["validation_layout"])
    for page, marker in PAGE_MARKERS.items():
        assert (marker in ids) is (page in visible), (page, sorted(ids))
        if page not in visible:
            assert marker not in answer.text
    assert "_pages_content" in ids  # the shell is there for Dash's own checks
    # Made with no viewer: nobody's name is in anybody's page.
    assert "Signed in as" not in json.dumps(config["validation_layout"])


@pytest.mark.parametrize("who, menu", [
    (None, ["about"]),
    ("bob", ["home", "about"]),
    ("alice", ["home", "finance", "about"]),
    ("carol", ["home", "hr", "about"]),
])
def test_the_menu_from_accessible_pages_shows_each_viewer_their_pages(portal, who, menu):
    layout = portal.client(who).get(portal.url + "/_dash-layout", timeout=15)
    assert layout.status_code == 200
    links = re.findall(r'"id": "menu-(\w+)"', json.dumps(layout.json()))
    assert links == menu  # registry order


# -- in-app navigation (the Pages router callback) ------------------------------------------------------

@pytest.mark.parametrize("who, pathname, shown", [
    (None, "/about", "about"), (None, "/finance", "sign in"), (None, "/", "sign in"), (None, "/hr/bob", "sign in"),
    ("bob", "/", "home"), ("bob", "/finance", "no access"), ("bob", "/hr/bob", "no access"),
    ("alice", "/finance", "finance"), ("alice", "/hr/alice", "no access"),
    ("carol", "/hr/alice", "hr"), ("carol", "/finance", "no access"),
])
def test_in_app_navigation_shows_a_page_only_to_viewers_it_is_open_to(portal, who, pathname, shown):
    answer = portal.navigate(portal.client(who), pathname)
    assert answer.status_code == 200, answer.text[:300]
    content = answer.json()["response"]["_pages_content"]["children"]
    text = json.dumps(content)
    for page, marker in PAGE_MARKERS.items():
        assert (marker in text) is (page == shown), (page, text[:300])
    if shown == "no access":
        assert "No access" in text and f"signed in as {who}" in text
    if shown == "sign in":
        assert "Sign in to open this page" in text
        assert f"/_dash-auth/login?next={pathname}" in text.replace("\\u002f", "/")


# -- callbacks of a page ------------------------------------------------------------------------------

@pytest.mark.parametrize("who, button, output, expected", [
    (None, "export", "exported", 401), ("bob", "export", "exported", 403), ("carol", "export", "exported", 403),
    ("alice", "export", "exported", 200),
    (None, "reviews-button", "reviews", 401), ("alice", "reviews-button", "reviews", 403),
    ("carol", "reviews-button", "reviews", 200),
])
def test_a_page_callback_runs_only_for_viewers_the_page_is_open_to(portal, who, button, output, expected):
    before = portal.app.log()
    answer = portal.click(portal.client(who), button, output)
    assert answer.status_code == expected, answer.text[:300]
    ran = portal.app.log()[len(before):]
    side_effect = "finance report exported by" if button == "export" else "hr reviews read by"
    if expected == 200:
        assert f"{side_effect} {who}" in ran
    else:
        assert side_effect not in ran  # refused before it ran: no side effect
        assert "error" in answer.json()


def test_a_public_page_and_its_callbacks_work_without_signing_in(portal):
    anonymous = portal.client()
    answer = portal.click(anonymous, "whoami-button", "whoami")
    assert answer.status_code == 200
    assert answer.json()["response"]["whoami"]["children"] == "You are an anonymous visitor"
    signed_in = portal.click(portal.client("bob"), "whoami-button", "whoami")
    assert signed_in.json()["response"]["whoami"]["children"] == "You are bob"


def test_the_app_stays_closed_to_anonymous_viewers_elsewhere(portal):
    anonymous = portal.client()
    assert portal.load(anonymous, "/_dash-auth/health").status_code == 200
    # An unknown path is not a page: the app-wide rule.
    assert portal.load(anonymous, "/no-such-page").status_code == 302


# -- marks and the app module ---------------------------------------------------------------------------

@pytest.mark.parametrize("who, button, output, expected", [
    # public_callback in a restricted page: anyone, even anonymous.
    (None, "ticker-button", "ticker", 200), ("bob", "ticker-button", "ticker", 200),
    # protected_callback(groups=["contractors"]): its groups decide, not the page's rule.
    ("bob", "contract-button", "contract", 200), ("alice", "contract-button", "contract", 204),
    (None, "contract-button", "contract", 204),
    # A plain callback of the page: the page's rule.
    ("alice", "secret-button", "secret", 200), ("bob", "secret-button", "secret", 403),
    (None, "secret-button", "secret", 401),
    # A callback of the app module: the app-wide rule (group analysts), even beside a public page.
    ("alice", "app-button", "app-note", 200), ("carol", "app-button", "app-note", 403),
    (None, "app-button", "app-note", 401),
])
def test_callback_marks_win_over_the_page_rule_and_app_callbacks_follow_the_app_rule(
        marked, who, button, output, expected):
    before = marked.app.log()
    answer = marked.click(marked.client(who), button, output)
    assert answer.status_code == expected, answer.text[:300]
    ran = marked.app.log()[len(before):]
    name = {"ticker-button": "ticker", "contract-button": "contract", "secret-button": "secret",
            "app-button": "app callback"}[button]
    assert (f"{name} run by {who}" in ran) is (expected == 200), ran


def test_the_public_page_opens_the_shell_to_anonymous_viewers_only_as_far_as_it_needs(marked):
    anonymous = marked.client()
    assert marked.load(anonymous, "/").status_code == 200
    assert anonymous.get(marked.url + "/_dash-layout", timeout=15).status_code == 200
    assert marked.load(anonymous, "/vault").status_code == 302


@pytest.mark.parametrize("marked", ["fastapi", "quart"], indirect=True)  # Flask serves no sockets
def test_over_a_websocket_a_page_callback_never_runs_for_viewers_the_page_refuses(marked):
    def over_socket(who: str | None, button: str, output: str) -> dict:
        session = marked.client(who)
        cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
        body = {"output": f"{output}.children", "outputs": {"id": output, "property": "children"},
                "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
                "changedPropIds": [f"{button}.n_clicks"]}
        with connect(marked.url.replace("http://", "ws://") + "/_dash-ws-callback", origin=marked.url,
                     additional_headers={"Cookie": cookie} if cookie else {}, open_timeout=15) as socket:
            return ws_callback(socket, body, secrets.token_hex(4))

    assert marked.load(marked.client(), "/").status_code == 200  # the worker's first request (see above)
    before = marked.app.log()
    assert over_socket("alice", "secret-button", "secret")["status"] == "ok"
    # Refused as "no update": Dash shows callback errors nowhere outside debug mode over a socket.
    assert over_socket("bob", "secret-button", "secret") == {"status": "prevent_update"}
    # The public lobby opens the socket to anonymous visitors; the page's callbacks stay closed.
    assert over_socket(None, "secret-button", "secret") == {"status": "prevent_update"}
    assert over_socket(None, "ticker-button", "ticker")["status"] == "ok"
    ran = marked.app.log()[len(before):]
    assert "secret run by alice" in ran and "ticker run by None" in ran
    assert "secret run by bob" not in ran and "secret run by None" not in ran


# -- bad rules stop start-up ------------------------------------------------------------------------------

@pytest.mark.parametrize("folder, message", [
    ("typo_pages", "page 'typo_pages.vault': dash.register_page got the unknown keyword "
                   "allowed_group=['finance'] (did you mean allowed_groups?)"),
    ("string_pages", "page 'string_pages.vault': allowed_groups= takes a list of names, "
                     "e.g. allowed_groups=['finance'], not 'finance'"),
])
def test_a_bad_page_rule_stops_start_up_naming_the_page_and_the_keyword(tmp_path, folder, message):
    env = {**os.environ, **env_for("flask", tmp_path, DASH_AUTH_ALLOWED_GROUPS="analysts"), "PAGES_FOLDER": folder}
    started = subprocess.run([sys.executable, "-c", "import app"], cwd=MARKED, env=env, capture_output=True,
                             text=True, timeout=60)
    assert started.returncode != 0
    assert message in started.stderr
