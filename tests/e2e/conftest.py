"""Fixtures for end-to-end tests in a real headless Chromium.

``launch_chromium`` is the one place that knows how to start the browser, so
the LDAP, SAML and OIDC browser tests can reuse it. It uses Debian's
``/usr/bin/chromium`` (no ``playwright install``, no network but loopback).
"""
from __future__ import annotations

import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.servers.app_server import RunningApp, start_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"

# Dash renders callbacks after the page loads; give slow CI machines time.
expect.set_options(timeout=15_000)


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Start headless Chromium through Playwright; close it on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A page in a fresh browser context: no cookies from other tests."""
    with launch_chromium() as browser:
        context = browser.new_context()
        context.set_default_timeout(15_000)
        page = context.new_page()
        try:
            yield page
        finally:
            context.close()


@pytest.fixture(scope="module")
def example_app(tmp_path_factory) -> Iterator[RunningApp]:
    """examples/app.py under gunicorn behind the basic connector and demo users."""
    state = tmp_path_factory.mktemp("example-app")
    env = {
        "DASH_AUTH_CONNECTOR": "basic",
        "DASH_AUTH_USERS_FILE": "examples/demo-users.json",
        "DASH_AUTH_ALLOWED_GROUPS": "analysts",
        "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
        "DASH_AUTH_SESSION_STORE": f"sqlite:///{state / 'sessions.sqlite3'}",
    }
    app = start_app("examples.app:server", env, state / "app.log")
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture
def screenshot():
    """``screenshot(page, name)`` saves a full-page PNG to tests/e2e/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)

    def save(page: Page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Print the log of every server a failing test used under its traceback."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, RunningApp):
                report.sections.append((f"server log: {name} ({value.url})", value.log()))
