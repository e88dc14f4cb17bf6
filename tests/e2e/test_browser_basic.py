"""The basic connector as a person meets it: examples/app.py in headless Chromium.

Demo users (examples/demo-users.json): alice/wonderland is an analyst and may
use the app; bob/builder signs in fine but is not in the allowed group.
"""
import re
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

LOGIN = "/_dash-auth/login"
SIGNED_OUT = "/_dash-auth/signed-out"


def at_path(app, path: str) -> re.Pattern:
    """Matches a URL of ``app`` whose path is exactly ``path`` (any query)."""
    return re.compile(rf"^{re.escape(app.url + path)}(\?.*)?$")


def sign_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_visitor_is_sent_to_a_sign_in_page_with_labelled_fields(
    browser_page, example_app, screenshot
):
    page = browser_page
    page.goto(example_app.url + "/")

    expect(page).to_have_url(at_path(example_app, LOGIN))
    assert "next" in parse_qs(urlsplit(page.url).query), page.url
    username = page.get_by_label("Username")
    expect(username).to_have_attribute("id", "username")
    expect(username).to_have_attribute("name", "username")
    password = page.get_by_label("Password")
    expect(password).to_have_attribute("id", "password")
    expect(password).to_have_attribute("name", "password")
    expect(password).to_have_attribute("type", "password")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in-page")


def test_analyst_signs_in_and_the_app_greets_them_by_name(
    browser_page, example_app, screenshot
):
    page = browser_page
    page.goto(example_app.url + "/")

    sign_in(page, "alice", "wonderland")

    expect(page).to_have_url(at_path(example_app, "/"))
    expect(page.locator("#greeting")).to_have_text("Hello alice")
    expect(page.locator("#graph .main-svg").first).to_be_visible()  # plotly.js loads last
    screenshot(page, "signed-in-app")


def test_logout_signs_out_and_the_app_asks_to_sign_in_again(browser_page, example_app):
    page = browser_page
    page.goto(example_app.url + "/")
    sign_in(page, "alice", "wonderland")
    expect(page.locator("#greeting")).to_have_text("Hello alice")

    logout = page.locator("a.dash-logout-btn")
    expect(logout).to_have_text("Logout")
    logout.click()

    expect(page).to_have_url(at_path(example_app, SIGNED_OUT))
    expect(page.locator("body")).to_contain_text(re.compile("signed out", re.I))

    page.go_back(wait_until="load")
    # The page that comes back may reload itself into sign-in (its callbacks get 401s) while
    # the person opens the app again: either navigation must end on the sign-in page.
    page.wait_for_load_state("networkidle")
    page.goto(example_app.url + "/")
    expect(page).to_have_url(at_path(example_app, LOGIN))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Hello alice")).to_have_count(0)


def test_wrong_password_shows_an_alert_and_stays_on_the_sign_in_page(
    browser_page, example_app
):
    page = browser_page
    page.goto(example_app.url + "/")

    sign_in(page, "alice", "nope")

    expect(page.get_by_role("alert")).to_be_visible()
    expect(page).to_have_url(at_path(example_app, LOGIN))
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.get_by_text("Hello alice")).to_have_count(0)


def test_user_outside_the_allowed_groups_gets_403_with_a_way_to_sign_out(
    browser_page, example_app
):
    page = browser_page
    page.goto(example_app.url + "/")

    with page.expect_navigation() as navigation:
        sign_in(page, "bob", "builder")

    assert navigation.value.status == 403, (navigation.value.url, navigation.value.status)
    expect(page.locator("body")).to_contain_text("bob")
    sign_out = re.compile(r"sign ?out|log ?out", re.I)
    expect(
        page.get_by_role("link", name=sign_out).or_(page.get_by_role("button", name=sign_out))
    ).to_be_visible()
