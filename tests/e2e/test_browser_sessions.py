"""Session behaviour only a browser shows: background callbacks, and a session ended elsewhere."""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.servers.app_server import ROOT, start_app


def sign_in(page, username="alice", password="wonderland"):
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture(scope="module")
def background_app(tmp_path_factory):
    state = tmp_path_factory.mktemp("background")
    env = {
        "DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": "examples/demo-users.json",
        "DASH_AUTH_ALLOWED_GROUPS": "analysts", "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
        "DASH_AUTH_SESSION_STORE": f"sqlite:///{state}/sessions.sqlite3",
        "BACKGROUND_CACHE_DIR": str(state / "cache"),
    }
    # one worker: Dash signs background-job handles with a per-process secret
    app = start_app("tests.apps.background_app:server", env, state / "app.log", workers=1)
    app.store_url = env["DASH_AUTH_SESSION_STORE"]
    yield app
    app.stop()


def test_background_callback_knows_the_viewer(browser_page, background_app):
    page = browser_page
    page.goto(background_app.url + "/")
    sign_in(page)
    page.get_by_role("button", name="Who am I?").click()
    answer = page.locator("#answer")
    expect(answer).to_have_text(re.compile(r"^Background hello alice \(analysts\) pid \d+$"), timeout=30_000)
    worker_pid = int(answer.inner_text().rsplit(" ", 1)[1])
    assert worker_pid != background_app.process.pid  # it really ran in another process


def test_session_revoked_elsewhere_reloads_the_page_into_sign_in(browser_page, background_app):
    page = browser_page
    page.goto(background_app.url + "/")
    sign_in(page)
    expect(page.get_by_role("button", name="Who am I?")).to_be_visible()
    revoke = subprocess.run(
        [sys.executable, "-m", "dash_enterprise_auth", "sessions", "revoke", "alice"],
        env={**os.environ, "DASH_AUTH_SESSION_STORE": background_app.store_url}, cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )
    assert re.match(r"revoked [1-9]\d* session\(s\) of alice", revoke.stdout), revoke.stderr
    page.get_by_role("button", name="Who am I?").click()  # the callback now answers 401
    expect(page).to_have_url(re.compile(r"/_dash-auth/login\?next="), timeout=15_000)
    expect(page.get_by_label("Username")).to_be_visible()
