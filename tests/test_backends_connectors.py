"""Every connector and the rest of the API on the FastAPI (uvicorn) and Quart (hypercorn) backends.

tests/test_backends.py runs the basic connector on all three backends; this module signs in
through the other connectors, against the suite's real providers, on the ASGI backends, and
exercises what the basic suite does not: Kerberos tickets, background callbacks, and a
set_user_data() that the session store cannot honour. One unchanged app
(tests/apps/connectors_app.py), configured only through ``DASH_AUTH_*`` variables, served with
two workers, driven over real HTTP.

The person is tests.test_install_extras.Browser, with its settings helpers: redirect connectors
are reached with ``Host: localhost`` so the app builds the callback, ACS and SLS URLs the suite's
OpenID provider, SAML IdP and Plotly stand-in know.
"""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import psutil
import pytest
import redis
import requests
from lxml import etree

from dash_enterprise_auth.passwords import hash_password

from .conftest import SAML_SP_ACS_URL, SAML_SP_ENTITY_ID, SAML_SP_SLS_URL
from .servers.app_server import ROOT, RunningApp, start_app
from .servers.negotiate_service import negotiate_get
from .servers.oidc_server import get_at_provider
from .servers.oidc_server import submit_login as submit_oidc_login
from .servers.redis_server import RedisServer
from .test_backends import assert_no_traceback
from .test_faults import assert_refused_write, fill, save_note, small_disk  # noqa: F401  (small_disk: a fixture)
from .test_faults import sign_in as sign_in_as_alice
from .test_install_extras import (HTML, LOGIN, REGISTERED_HOST, Browser, assert_signed_in, basic_settings,
                                  ldap_settings, oidc_settings, plotly_server, plotly_settings,  # noqa: F401
                                  saml_settings)
from .test_kerberos import klist
from .test_saml import at_the_idp_until_back, local

BACKENDS = {"fastapi": "uvicorn", "quart": "hypercorn"}
LABELS = {"fastapi": "FastAPI", "quart": "Quart"}  # as the package's start-up line names them
APP = "tests.apps.connectors_app:server"
MD = "{urn:oasis:names:tc:SAML:2.0:metadata}"
#: People of the basic app's users file, all in the allowed group and at the KDC with these passwords.
KDC_PEOPLE = {"alice": "alice-password", "jsmith": "jsmith-password", "nina": "nina-password"}


# -- the apps ---------------------------------------------------------------------------------------

@dataclass
class Served:
    backend: str
    app: RunningApp
    folder: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.app.url

    def browser(self, host: str | None = None) -> Browser:
        return Browser(self.app, host)

    def signal(self, name: str) -> Path:
        return self.folder / "signals" / name


def serve(backend: str, settings: dict[str, str], folder: Path, store: str | None = None, workers: int = 2) -> Served:
    """The app on ``backend`` with ``settings``; sessions in SQLite in ``folder`` unless ``store``."""
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("cache", "signals"):
        (folder / sub).mkdir(exist_ok=True)
    env = {"DASH_BACKEND": backend, "DASH_AUTH_SESSION_STORE": store or f"sqlite:///{folder}/sessions.sqlite3",
           "BACKGROUND_CACHE_DIR": str(folder / "cache"), "SIGNAL_DIR": str(folder / "signals"), **settings}
    app = start_app(APP, env, folder / "server.log", server=BACKENDS[backend], workers=workers)
    return Served(backend, app, folder, env)


def running(backend: str, settings: dict[str, str], folder: Path) -> Iterator[Served]:
    """A module's app: stopped at the end, when its log must show both workers on the right backend
    and no traceback or 500."""
    served = serve(backend, settings, folder)
    yield served
    served.app.stop()
    log = served.app.log()
    assert log.count(f"protecting Connectors ({LABELS[backend]}) with the {settings['DASH_AUTH_CONNECTOR']}") == 2, \
        log[-3000:]
    assert_no_traceback(log)
    assert '" 500 ' not in log, log[-3000:]


def stop_hung(served: Served) -> None:
    """Stop an app whose worker may hang for good (it ignores SIGTERM): SIGKILL for this app's own
    processes, by id, then reap the server."""
    try:
        children = psutil.Process(served.app.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    served.app.process.kill()
    served.app.stop()


def kerberos_settings(folder: Path, kdc) -> dict[str, str]:
    """The basic connector (a users file with KDC_PEOPLE) and DASH_AUTH_KRB5_REALM: tickets at the form."""
    users = folder / "users.json"
    users.write_text(json.dumps({"users": {name: {"password_hash": hash_password(password), "groups": ["analysts"]}
                                           for name, password in KDC_PEOPLE.items()}}))
    return basic_settings(users, DASH_AUTH_KRB5_REALM=kdc.realm, **kdc.env)


@pytest.fixture(scope="module", params=list(BACKENDS))
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def ldap_app(backend, slapd, tmp_path_factory) -> Iterator[Served]:
    yield from running(backend, ldap_settings(slapd), tmp_path_factory.mktemp(f"ldap-{backend}"))


@pytest.fixture(scope="module")
def oidc_app(backend, oidc_provider, tmp_path_factory) -> Iterator[Served]:
    yield from running(backend, oidc_settings(oidc_provider), tmp_path_factory.mktemp(f"oidc-{backend}"))


@pytest.fixture(scope="module")
def saml_app(backend, saml_idp, saml_sp_keys, tmp_path_factory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp(f"saml-{backend}")
    yield from running(backend, saml_settings(saml_idp, saml_sp_keys, folder), folder)


@pytest.fixture(scope="module")
def plotly_app(backend, plotly_server, tmp_path_factory) -> Iterator[Served]:
    yield from running(backend, plotly_settings(plotly_server), tmp_path_factory.mktemp(f"plotly-{backend}"))


@pytest.fixture(scope="module")
def ldap_oidc_app(backend, slapd, oidc_provider, tmp_path_factory) -> Iterator[Served]:
    settings = {**ldap_settings(slapd), **oidc_settings(oidc_provider), "DASH_AUTH_CONNECTOR": "ldap,oidc",
                "DASH_AUTH_OIDC_DISPLAY_NAME": "Partners"}
    yield from running(backend, settings, tmp_path_factory.mktemp(f"ldap-oidc-{backend}"))


@pytest.fixture(scope="module")
def kerberos_app(backend, kdc, tmp_path_factory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp(f"basic-krb5-{backend}")
    yield from running(backend, kerberos_settings(folder, kdc), folder)


# -- what a person does -----------------------------------------------------------------------------

def hello(browser: Browser, username: str = "alice") -> dict:
    """The greeting callback, as the viewer sees it: "Hello <username>"."""
    viewer = browser.viewer()
    assert viewer["hello"] == f"Hello {username}" and viewer["username"] == username, viewer
    return viewer


def sign_in_with_the_form(served: Served, username: str) -> Browser:
    browser = served.browser()
    answer = browser.sign_in_with_the_form(username, KDC_PEOPLE[username])
    assert answer.status_code == 302 and answer.headers["Location"] == "/", (answer.status_code, answer.text[:300])
    hello(browser, username)
    return browser


def callback_body(output: str, input_id: str, prop: str, value) -> dict:
    """What Dash's renderer posts to _dash-update-component for one output and one input."""
    component, out_prop = output.rsplit(".", 1)
    return {"output": output, "outputs": {"id": component, "property": out_prop},
            "inputs": [{"id": input_id, "property": prop, "value": value}], "changedPropIds": [f"{input_id}.{prop}"],
            "state": []}


def update(browser: Browser, body: dict, **params: str) -> requests.Response:
    return browser.http.post(browser.app.url + "/_dash-update-component", params=params, json=body, timeout=60)


def children(answer: requests.Response, component: str):
    assert answer.status_code == 200, (answer.status_code, answer.text[:500])
    return answer.json()["response"][component]["children"]


def log_tail(served: Served) -> str:
    return served.app.log()[-4000:]


# -- 1. a real sign-in through each connector ---------------------------------------------------

def test_ldap_form_sign_in_then_hello(ldap_app):
    browser = ldap_app.browser()
    assert_signed_in(browser, browser.sign_in_with_the_form("alice", "alice-password"), "ldap")
    hello(browser)


def test_a_wrong_directory_password_is_refused_on_the_form(ldap_app):
    browser = ldap_app.browser()
    answer = browser.sign_in_with_the_form("alice", "not-her-password")
    assert answer.status_code == 401 and "incorrect" in answer.text, (answer.status_code, answer.text[:300])
    assert update(browser, callback_body("greeting.children", "city", "children", "NYC")).status_code == 401


def test_oidc_sign_in_at_the_provider_then_hello(oidc_app, oidc_provider):
    browser = oidc_app.browser(REGISTERED_HOST)
    at_provider = requests.Session()
    page = get_at_provider(at_provider, browser.to_the_provider(oidc_provider.issuer))
    assert page.status_code == 200, page.text[:500]
    back = submit_oidc_login(at_provider, page, "alice", "alice-password")
    assert back.is_redirect, back.text[:500]
    assert urlsplit(back.headers["Location"]).path == "/_dash-auth/callback/oidc"
    assert_signed_in(browser, browser.back_at_the_app(back.headers["Location"]), "oidc")
    hello(browser)


def test_with_ldap_and_oidc_listed_a_person_signs_in_by_either_method(ldap_oidc_app, oidc_provider):
    by_password = ldap_oidc_app.browser()
    page = by_password.get(LOGIN + "?next=/")
    assert page.status_code == 200 and 'name="password"' in page.text and "Sign in with Partners" in page.text
    assert_signed_in(by_password, by_password.sign_in_with_the_form("alice", "alice-password"), "ldap")
    hello(by_password)

    at_the_provider = ldap_oidc_app.browser(REGISTERED_HOST)
    started = at_the_provider.get(LOGIN + "/oidc?next=/")
    assert started.status_code == 302 and started.headers["Location"].startswith(oidc_provider.issuer)
    http = requests.Session()
    back = submit_oidc_login(http, get_at_provider(http, started.headers["Location"]), "alice", "alice-password")
    assert_signed_in(at_the_provider, at_the_provider.back_at_the_app(back.headers["Location"]), "oidc")
    hello(at_the_provider)


def test_saml_sp_metadata_names_the_entity_the_acs_and_the_sls(saml_app):
    answer = requests.get(saml_app.url + "/_dash-auth/saml/metadata", headers={"Host": REGISTERED_HOST}, timeout=30)
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    assert answer.headers["Content-Type"].startswith("application/samlmetadata+xml")
    root = etree.fromstring(answer.content)
    assert root.get("entityID") == SAML_SP_ENTITY_ID
    sp = root.find(f"{MD}SPSSODescriptor")
    assert sp.get("AuthnRequestsSigned") == "true"
    acs = sp.find(f"{MD}AssertionConsumerService")
    assert acs.get("Location") == SAML_SP_ACS_URL and acs.get("Binding").endswith("HTTP-POST")
    assert sp.find(f"{MD}SingleLogoutService").get("Location") == SAML_SP_SLS_URL


def test_saml_sign_in_through_the_acs_then_hello_then_sp_initiated_logout_through_the_sls(saml_app, saml_idp):
    browser = saml_app.browser(REGISTERED_HOST)
    assert_signed_in(browser, browser.sign_in_at_the_saml_idp(saml_idp), "saml")
    hello(browser)

    out = browser.get("/_dash-auth/logout")
    assert out.status_code == 302 and out.headers["Location"].startswith(saml_idp.slo_url), \
        (out.status_code, out.headers.get("Location"), log_tail(saml_app))
    assert update(browser, callback_body("greeting.children", "city", "children", "NYC")).status_code == 401
    back = at_the_idp_until_back(browser.at_idp, out.headers["Location"])
    assert urlsplit(back).path == "/_dash-auth/saml/sls" and "SAMLResponse" in back, back
    done = browser.get(local(back))
    assert done.status_code == 302 and done.headers["Location"] == "/_dash-auth/signed-out", \
        (done.status_code, done.text[:300], log_tail(saml_app))
    again = browser.at_idp.get(browser.to_the_provider(saml_idp.sso_url), timeout=30)
    assert 'name="password"' in again.text  # the IdP's session ended too


def test_a_tampered_saml_response_is_refused_and_the_next_one_signs_in(saml_app, saml_idp):
    """python3-saml validates on the event loop's thread (``blocking.compute``): its refusal
    still reaches the browser as a refusal, and the worker goes on validating."""
    for _ in range(2):  # both workers, most likely
        browser = saml_app.browser(REGISTERED_HOST)
        refused = browser.sign_in_at_the_saml_idp(
            saml_idp, change=lambda xml: re.sub(r"(<saml:NameID[^>]*>)[^<]+", r"\1mallory", xml, count=1))
        assert refused.status_code in (400, 401) and "Traceback" not in refused.text, \
            (refused.status_code, refused.text[:300], log_tail(saml_app))
        assert update(browser, callback_body("greeting.children", "city", "children", "NYC")).status_code == 401
    browser = saml_app.browser(REGISTERED_HOST)
    assert_signed_in(browser, browser.sign_in_at_the_saml_idp(saml_idp), "saml")
    hello(browser)
    assert_no_traceback(saml_app.app.log())


def consent_at_plotly(at_plotly: requests.Session, page: requests.Response, username: str, password: str) -> str:
    """Fill in the Plotly stand-in's sign-in and consent page; the Location back to the app."""
    assert page.status_code == 200, page.text[:500]
    fields = {k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                                                     page.text)}
    action = urljoin(page.url, re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    back = at_plotly.post(action, data={**fields, "username": username, "password": password, "allow": "Authorize"},
                          allow_redirects=False, timeout=30)
    assert back.status_code == 302, back.text[:500]
    return back.headers["Location"]


def test_plotly_sign_in_at_plotly_then_hello(plotly_app, plotly_server):
    browser = plotly_app.browser(REGISTERED_HOST)
    at_plotly = requests.Session()
    page = at_plotly.get(browser.to_the_provider(plotly_server.url), allow_redirects=False, timeout=30)
    answer = browser.back_at_the_app(consent_at_plotly(at_plotly, page, "alice", "alice-pw"))
    assert answer.status_code == 302 and answer.headers["Location"] == "/", (answer.text[:500], log_tail(plotly_app))
    viewer = hello(browser)
    assert viewer["connector"] == "plotly"


# -- 2. Kerberos tickets --------------------------------------------------------------------------

def test_a_form_sign_in_gives_a_real_ticket_cache_in_callbacks_and_routes(kerberos_app, kdc, negotiate_service,
                                                                          tmp_path):
    browser = kerberos_app.browser()
    viewer = assert_signed_in(browser, browser.sign_in_with_the_form("alice", "alice-password"), "basic")
    assert isinstance(viewer["kerberos_ticket_bytes"], int) and viewer["kerberos_ticket_bytes"] > 0, \
        (viewer, log_tail(kerberos_app))
    assert viewer["kerberos_ticket_expiry"], viewer

    from_callback = children(update(browser, callback_body("ticket.children", "city", "children", "NYC")), "ticket")
    assert not from_callback.startswith("unavailable"), from_callback
    route = browser.http.get(kerberos_app.url + "/ccache", timeout=30)
    assert route.status_code == 200 and route.headers["Content-Type"].startswith("application/octet-stream"), \
        (route.status_code, route.text[:300])
    for name, ccache in (("callback", base64.b64decode(from_callback)), ("route", route.content)):
        folder = tmp_path / name
        folder.mkdir()
        listing = klist(ccache, folder)
        assert f"Default principal: alice@{kdc.realm}" in listing and f"krbtgt/{kdc.realm}@{kdc.realm}" in listing, \
            (name, listing)
        answer = negotiate_get(negotiate_service.url, folder / "cc")  # and the ticket opens a Kerberized service
        assert answer.status_code == 200 and answer.json()["principal"] == f"alice@{kdc.realm}", (name, answer.text)


def test_no_ticket_for_an_anonymous_script_and_the_reason_after_logout(kerberos_app):
    assert requests.get(kerberos_app.url + "/ccache", timeout=30).status_code == 401
    browser = sign_in_with_the_form(kerberos_app, "alice")
    assert browser.http.get(kerberos_app.url + "/ccache", timeout=30).status_code == 200
    browser.get("/_dash-auth/logout")
    assert browser.http.get(kerberos_app.url + "/ccache", timeout=30).status_code == 401


@pytest.mark.parametrize("callback", ["use-ticket", "use-ticket-async"])
@pytest.mark.parametrize("how", ["file", "env"])
def test_kerberos_ccache_file_and_kerberos_ccache_in_sync_and_async_callbacks(kerberos_app, kdc, callback, how):
    """klist inside kerberos_ccache_file() (a private file) or kerberos_ccache() (KRB5CCNAME for the
    block only) finds alice's ticket; afterwards the file is gone and KRB5CCNAME is as before."""
    browser = sign_in_with_the_form(kerberos_app, "alice")
    seen = json.loads(children(update(browser, callback_body(f"{callback}-out.children", callback, "value", how)),
                               f"{callback}-out"))
    assert f"Default principal: alice@{kdc.realm}" in seen["klist"] and seen["where"].startswith("FILE:"), seen
    assert seen["KRB5CCNAME"] == (seen["where"] if how == "env" else seen["before"]), seen
    assert seen["after"] == seen["before"] and not Path(seen["where"].removeprefix("FILE:")).exists(), seen


@pytest.mark.parametrize("asgi", list(BACKENDS))
@pytest.mark.parametrize("how", ["env-hold", "env-hold-sync"])
def test_two_async_callbacks_awaiting_inside_kerberos_ccache_do_not_freeze_the_worker(asgi, how, kdc, tmp_path):
    """The blocks run one at a time per process. One worker here, so both callbacks share an event
    loop, as any two viewers of a busy worker do: with ``async with`` the second waits for the
    first off the loop; awaiting inside a plain ``with`` is refused with an error naming
    ``async with`` instead of freezing the worker."""
    served = serve(asgi, kerberos_settings(tmp_path, kdc), tmp_path / "app", workers=1)
    try:
        browser = sign_in_with_the_form(served, "alice")
        body = callback_body("use-ticket-async-out.children", "use-ticket-async", "value", how)
        answers: dict[int, object] = {}

        def call(i: int) -> None:
            try:
                answers[i] = browser.http.post(served.url + "/_dash-update-component", json=body, timeout=10).status_code
            except requests.RequestException as exc:
                answers[i] = type(exc).__name__

        threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        health = requests.get(served.url + "/_dash-auth/health", timeout=5).status_code
        assert health == 200, (answers, log_tail(served))
        if how == "env-hold":
            assert answers == {0: 200, 1: 200}, (answers, log_tail(served))
        else:
            assert sorted(answers.values()) == [200, 500], (answers, log_tail(served))  # the misuse fails alone
    finally:
        stop_hung(served)


def test_set_username_changes_the_name_shown_not_the_access(kerberos_app):
    browser = sign_in_with_the_form(kerberos_app, "alice")
    renamed = json.loads(children(update(browser, callback_body("renamed.children", "new-name", "value", "Alice L.")),
                                  "renamed"))
    assert renamed == {"username": "Alice L.", "preferred_username": "alice"}, renamed
    viewer = hello(browser, "Alice L.")  # kept with the session, on whichever worker answers
    assert viewer["groups"] == ["analysts"] and browser.get("/").status_code == 200


# -- 3. background callbacks --------------------------------------------------------------------

def end_id(browser: Browser) -> str:
    """The per-page-load token Dash puts in the page's config, echoed by the renderer as ``endId``."""
    page = browser.get("/")
    assert page.status_code == 200, page.text[:300]
    config = re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', page.text, re.S)
    return json.loads(config.group(1))["end_id"]


def background_answer(browser: Browser, clicks: int, seconds: float = 30) -> dict:
    """Click "Who am I?" as Dash's renderer does: the first POST starts the job and answers its signed
    cacheKey and job; then POST again with them (inputs nulled) until the answer has a ``response``."""
    token = end_id(browser)
    body = callback_body("answer.children", "ask", "n_clicks", clicks)
    started = update(browser, body, endId=token)
    assert started.status_code == 200, (started.status_code, started.text[:500])
    handles = started.json()
    assert {"cacheKey", "job"} <= set(handles) and "response" not in handles, handles
    body["inputs"][0]["value"] = None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        polled = update(browser, body, endId=token, cacheKey=handles["cacheKey"], job=handles["job"])
        assert polled.status_code == 200, (polled.status_code, polled.text[:500])
        if "response" in polled.json():
            return json.loads(children(polled, "answer"))
        time.sleep(0.2)
    raise AssertionError(f"no background answer within {seconds} s")


def test_a_background_callback_sees_the_signed_in_user(kerberos_app):
    """Each of two people in turn (other clicks, so other cache keys) gets their own name, from a job
    that ran in a process of its own (DiskcacheManager), neither the server nor one of its workers."""
    server = psutil.Process(kerberos_app.app.process.pid)
    for clicks, username in enumerate(("alice", "nina"), start=secrets.randbelow(10_000)):
        browser = sign_in_with_the_form(kerberos_app, username)
        answer = background_answer(browser, clicks)
        assert answer["hello"] == f"Background hello {username}" and answer["username"] == username, answer
        assert answer["groups"] == ["analysts"] and answer["clicks"] == clicks, answer
        assert answer["pid"] not in {server.pid, *(worker.pid for worker in server.children())}, answer


def test_a_background_callback_needs_a_session(kerberos_app):
    anonymous = kerberos_app.browser()
    body = callback_body("answer.children", "ask", "n_clicks", 1)
    assert update(anonymous, body).status_code == 401


# -- 4. set_user_data() that cannot be done ------------------------------------------------------

def revoke_with_the_cli(served: Served, username: str) -> None:
    result = subprocess.run([sys.executable, "-m", "dash_enterprise_auth", "sessions", "revoke", username],
                            env={**os.environ, "DASH_AUTH_SESSION_STORE": served.env["DASH_AUTH_SESSION_STORE"]},
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and f"revoked 1 session(s) of {username}" in result.stdout, \
        (result.stdout, result.stderr)


def log_out_from_another_request(served: Served, browser: Browser) -> None:
    """Another tab of the same browser: the same cookie, another connection."""
    other = requests.Session()
    other.cookies.update(browser.http.cookies)
    out = other.get(served.url + "/_dash-auth/logout", headers=HTML, allow_redirects=False, timeout=30)
    assert out.status_code == 302 and out.headers["Location"] == "/_dash-auth/signed-out", out.status_code


@pytest.mark.parametrize("callback, username, ended_by", [
    # A sync callback runs on the worker's event loop (Dash's ASGI dispatch), so its session is
    # ended from outside the server: the operator's CLI. The async one awaits, so another request
    # (a logout in another tab) can end it, whichever worker that request reaches.
    ("late-sync", "jsmith", "cli"),
    ("late-async", "nina", "logout"),
])
def test_set_user_data_on_a_session_ended_meanwhile_answers_401_json(kerberos_app, callback, username, ended_by):
    browser = sign_in_with_the_form(kerberos_app, username)
    token = secrets.token_hex(8)
    body = callback_body(f"{callback}-out.children", callback, "value", token)
    answers: dict[str, requests.Response] = {}
    running = threading.Thread(target=lambda: answers.setdefault("answer", update(browser, body)))
    running.start()
    deadline = time.monotonic() + 20
    while not kerberos_app.signal(f"{token}.started").exists():
        assert time.monotonic() < deadline and running.is_alive(), \
            (answers.get("answer") and answers["answer"].text[:300], log_tail(kerberos_app))
        time.sleep(0.05)
    if ended_by == "cli":
        revoke_with_the_cli(kerberos_app, username)
    else:
        log_out_from_another_request(kerberos_app, browser)
    kerberos_app.signal(f"{token}.go").touch()  # now the callback calls set_user_data()
    running.join(60)
    answer = answers["answer"]
    assert answer.status_code == 401, (answer.status_code, answer.text[:500], log_tail(kerberos_app))
    assert answer.headers["Content-Type"].startswith("application/json"), answer.headers
    assert answer.json()["sign_in_url"].startswith(LOGIN), answer.text
    assert "dash-auth-session=;" in answer.headers.get("Set-Cookie", ""), answer.headers
    # and the session did not come back
    assert update(browser, callback_body("greeting.children", "city", "children", "NYC")).status_code == 401


def test_set_user_data_on_a_live_session_is_kept(kerberos_app):
    browser = sign_in_with_the_form(kerberos_app, "alice")
    assert children(update(browser, callback_body("saved.children", "note", "value", "kept")), "saved") == "saved"
    assert browser.http.get(kerberos_app.url + "/note", timeout=30).json() == {"note": "kept"}


@pytest.mark.parametrize("asgi", list(BACKENDS))
def test_a_full_sqlite_disk_refusing_set_user_data_answers_503(asgi, tmp_path, small_disk):
    served = serve(asgi, basic_settings(), tmp_path / "app", store=f"sqlite:///{small_disk}/sessions.sqlite3")
    try:
        session, signed_in = sign_in_as_alice(served.url)
        assert signed_in.status_code == 302
        assert save_note(session, served.url, "before").status_code == 200
        filler = fill(small_disk)
        assert_refused_write(served.app, session, "database or disk is full")
        filler.unlink()
        assert session.get(served.url + "/note", timeout=15).json() == {"note": "before"}  # nothing half-stored
        assert save_note(session, served.url, "after").status_code == 200
    finally:
        served.app.stop()


@pytest.mark.parametrize("asgi", list(BACKENDS))
def test_a_read_only_redis_refusing_set_user_data_answers_503(asgi, tmp_path):
    redis_server = RedisServer(tmp_path / "redis-data")
    redis_server.folder.mkdir()
    redis_server.start()
    served = serve(asgi, basic_settings(), tmp_path / "app", store=redis_server.url)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        session, signed_in = sign_in_as_alice(served.url)
        assert signed_in.status_code == 302
        assert save_note(session, served.url, "before").status_code == 200
        admin.replicaof("127.0.0.1", "9")  # after a failover the app talks to a read-only replica
        assert_refused_write(served.app, session, "read only replica")
        admin.replicaof("NO", "ONE")
        assert session.get(served.url + "/note", timeout=15).json() == {"note": "before"}
        assert save_note(session, served.url, "after").status_code == 200
    finally:
        admin.close()
        served.app.stop()
        redis_server.stop()
