"""Access per page as a person meets it: examples/pages_app in headless Chromium, on every backend.

In-app navigation (a dcc.Link) goes through Dash Pages' router callback, never a page load, so
what the browser shows there is the router's answer: the page, or a no-access message in its
place. The menu comes from ``accessible_pages()``.
"""
from __future__ import annotations

import secrets
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser_basic import LOGIN, at_path, sign_in
from tests.servers.app_server import ROOT, RunningApp, start_app

BACKENDS = {"flask": "gunicorn", "fastapi": "uvicorn", "quart": "hypercorn"}
EXAMPLE = ROOT / "examples/pages_app"


@pytest.fixture(scope="module", params=list(BACKENDS))
def portal(request, tmp_path_factory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp(f"portal-{request.param}")
    env = {"DASH_BACKEND": request.param, "DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": "users.json",
           "DASH_AUTH_PRIVACY": "authorized", "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
           "DASH_AUTH_SESSION_STORE": f"sqlite:///{folder}/sessions.sqlite3"}
    # Quart: one worker (Dash 4.4.1 serves a component suite only from the worker that rendered the
    # page; see tests/e2e/test_browser_backends.py).
    app = start_app("app:server", env, folder / "server.log", server=BACKENDS[request.param], cwd=EXAMPLE,
                    workers=1 if request.param == "quart" else 2)
    yield app
    app.stop()


def menu(page: Page) -> list[str]:
    expect(page.locator("#menu")).to_be_visible()
    return page.locator("#menu a").all_inner_texts()


def test_an_anonymous_visitor_reads_the_public_page_and_uses_its_callback(browser_page, portal):
    page = browser_page
    page.goto(portal.url + "/about")
    expect(page.locator("#about-text")).to_be_visible()
    assert menu(page) == ["About"]
    page.get_by_role("button", name="Who am I?").click()
    expect(page.locator("#whoami")).to_have_text("You are an anonymous visitor")
    expect(page).to_have_url(at_path(portal, "/about"))  # nothing sent the visitor to sign in


def test_each_viewer_sees_a_menu_of_the_pages_they_may_open(browser_page, portal):
    page = browser_page
    page.goto(portal.url + "/")
    sign_in(page, "alice", "wonderland")
    expect(page.locator("#home-news")).to_be_visible()
    assert menu(page) == ["Home", "Finance", "About"]
    page.locator("#menu-finance").click()
    expect(page.locator("#revenue")).to_be_visible()
    page.get_by_role("button", name="Export the report").click()
    expect(page.locator("#exported")).to_have_text("Report exported (1)")


def test_in_app_navigation_to_a_forbidden_page_shows_no_access_in_place_of_the_page(browser_page, portal):
    page = browser_page
    page.goto(portal.url + "/")
    sign_in(page, "bob", "builder")
    expect(page.locator("#home-news")).to_be_visible()
    assert menu(page) == ["Home", "About"]
    # A link bob's menu does not offer, followed in-app (as a stale bookmark link in the page would be).
    page.evaluate("""() => { window.history.pushState({}, '', '/finance');
                            window.dispatchEvent(new PopStateEvent('popstate')); }""")
    no_access = page.locator(".dash-auth-no-access")
    expect(no_access).to_contain_text("No access")
    expect(no_access).to_contain_text("signed in as bob")
    expect(page.locator("#revenue")).to_have_count(0)
    assert "12.4" not in page.content()


def test_an_anonymous_visitor_following_a_link_to_a_private_page_is_offered_to_sign_in(browser_page, portal):
    page = browser_page
    page.goto(portal.url + "/about")
    expect(page.locator("#about-text")).to_be_visible()
    page.evaluate("""() => { window.history.pushState({}, '', '/finance');
                            window.dispatchEvent(new PopStateEvent('popstate')); }""")
    expect(page.locator(".dash-auth-no-access")).to_contain_text("Sign in to open this page")
    page.get_by_role("link", name="Sign in").last.click()
    expect(page).to_have_url(at_path(portal, LOGIN))
    sign_in(page, "alice", "wonderland")
    expect(page).to_have_url(at_path(portal, "/finance"))
    expect(page.locator("#revenue")).to_be_visible()


def test_a_direct_load_of_a_forbidden_page_is_the_403_page(browser_page, portal):
    page = browser_page
    page.goto(portal.url + "/hr/alice")
    sign_in(page, "bob", "builder")
    expect(page.get_by_role("heading", name="You do not have access to this page")).to_be_visible()
    expect(page.locator("#salary")).to_have_count(0)
    page.get_by_role("link", name="Go to the app's home page").click()
    expect(page.locator("#home-news")).to_be_visible()
