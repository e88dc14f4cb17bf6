"""What users get from the README's install commands: each extra alone, in a fresh venv, from a wheel.

The rest of the suite runs with the ``test`` extra, which installs every connector's
dependencies, so it cannot see a connector that needs another extra's package (the saml
connector once imported a module that imported Authlib, which only ``[oidc]`` and
``[plotly]`` install), nor a source tree that shadows the installed package (``python -m
dash_enterprise_auth`` from the repository root once failed with "No module named
'dash_enterprise_auth.connectors'"). Here every install of the README gets its own venv
(tests.servers.fresh_venv: built once per session, in parallel), runs a plain Dash app
configured only through ``DASH_AUTH_*`` variables against the suite's real servers, and a
person signs in through it.

The apps behind redirect connectors are reached with ``Host: localhost``, so they build the
callback, ACS and metadata URLs that the suite's OpenID provider and SAML IdP have registered
for in-process apps (``http://localhost/...``); cookies still go to 127.0.0.1.
"""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
from concurrent.futures import Future, ThreadPoolExecutor
from html import unescape
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urljoin, urlsplit

import pytest
import redis
import requests

from dash_enterprise_auth.passwords import hash_password

from .conftest import OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, SAML_SP_ACS_URL
from .servers.app_server import ROOT, RunningApp
from .servers.fresh_venv import EXTRAS, FreshVenv, build_wheelhouse, make_venv
from .servers.oidc_server import get_at_provider
from .servers.oidc_server import submit_login as submit_oidc_login
from .servers.plotly_server import PlotlyServer
from .servers.saml_idp import auto_post_form
from .servers.saml_idp import submit_login as submit_saml_login

LOGIN = "/_dash-auth/login"
DEMO_USERS = ROOT / "examples" / "demo-users.json"  # alice / wonderland in analysts
HTML = {"Accept": "text/html", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}
REGISTERED_HOST = "localhost"  # where the suite's OpenID provider and SAML IdP expect in-process apps
GREETING = {
    "output": "greeting.children", "outputs": {"id": "greeting", "property": "children"},
    "inputs": [{"id": "city", "property": "children", "value": "NYC"}], "changedPropIds": ["city.children"],
    "state": [],
}
#: The top-level package each extra is for: a venv must have its own and none of the others'
#: (Authlib serves both oidc and plotly).
EXTRA_MODULES = {"ldap": "ldap3", "saml": "onelogin", "oidc": "authlib", "plotly": "authlib", "redis": "redis",
                 "kerberos": "gssapi"}
PLOTLY_APP = "fresh-install-app"


# -- the venvs ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def fresh_venvs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str | None, Future]]:
    """One fresh venv per README install command (None: the plain install), built in parallel; a test
    waits only for its own (``fresh_venvs[extra].result()``), so an install that fails fails its tests."""
    folder = tmp_path_factory.mktemp("fresh-venvs")
    wheelhouse = build_wheelhouse(folder)
    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    futures = {extra: pool.submit(make_venv, folder / (extra or "plain"), wheelhouse, extra)
               for extra in (None, *EXTRAS)}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def venv_for(fresh_venvs: dict[str | None, Future], extra: str | None) -> FreshVenv:
    venv = fresh_venvs[extra].result()
    # The negative control: the venv has its extra's packages and none of the others', so a
    # connector that needs another extra cannot pass here by accident.
    modules = sorted(set(EXTRA_MODULES.values()))
    probe = f"import importlib.util as u\nfor m in {modules!r}: print(m, u.find_spec(m) is not None)"
    found = dict(line.split() for line in venv.run("-c", probe).stdout.splitlines() if line.strip())
    assert found == {m: str(m == EXTRA_MODULES.get(extra)) for m in modules}, f"{venv.requirement}: {found}"
    return venv


# -- the servers and settings -------------------------------------------------------------

@pytest.fixture(scope="module")
def plotly_server() -> Iterator[PlotlyServer]:
    server = PlotlyServer(users={"alice": {"password": "alice-pw", "email": "alice@example.org"}},
                          files={PLOTLY_APP: {"owner": "alice", "viewers": [], "world_readable": False}},
                          api_users={"alice": "alice-api-key"}).start()
    yield server
    server.stop()


def basic_settings(users_file: Path = DEMO_USERS, **extra: str) -> dict[str, str]:
    return {"DASH_AUTH_CONNECTOR": "basic", "DASH_AUTH_USERS_FILE": str(users_file),
            "DASH_AUTH_ALLOWED_GROUPS": "analysts", "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48), **extra}


def ldap_settings(slapd) -> dict[str, str]:
    return {"DASH_AUTH_CONNECTOR": "ldap", "DASH_AUTH_LDAP_URL": slapd.ldaps_url,
            "DASH_AUTH_LDAP_CA_FILE": str(slapd.ca_file), "DASH_AUTH_LDAP_BIND_DN": slapd.service_dn,
            "DASH_AUTH_LDAP_BIND_PASSWORD": slapd.service_password, "DASH_AUTH_LDAP_USER_BASE": slapd.base_dn,
            "DASH_AUTH_ALLOWED_GROUPS": "analysts", "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48)}


def oidc_settings(provider) -> dict[str, str]:
    return {"DASH_AUTH_CONNECTOR": "oidc", "DASH_AUTH_OIDC_ISSUER": provider.issuer,
            "DASH_AUTH_OIDC_CLIENT_ID": OIDC_CLIENT_ID, "DASH_AUTH_OIDC_CLIENT_SECRET": OIDC_CLIENT_SECRET,
            "DASH_AUTH_OIDC_SCOPES": "openid email profile groups", "DASH_AUTH_ALLOWED_GROUPS": "analysts",
            "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48)}


def plotly_settings(server: PlotlyServer) -> dict[str, str]:
    return {"DASH_AUTH_CONNECTOR": "plotly", "DASH_AUTH_PLOTLY_DOMAIN": server.url,
            "DASH_AUTH_PLOTLY_APP_NAME": PLOTLY_APP, "PLOTLY_USERNAME": "alice", "PLOTLY_API_KEY": "alice-api-key",
            "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48)}


def saml_settings(idp, keys: tuple[str, str], folder: Path) -> dict[str, str]:
    (folder / "sp.key").write_text(keys[0])
    (folder / "sp.crt").write_text(keys[1])
    return {"DASH_AUTH_CONNECTOR": "saml", "DASH_AUTH_SAML_IDP_METADATA_URL": idp.metadata_url,
            "DASH_AUTH_SAML_SP_CERT_FILE": str(folder / "sp.crt"), "DASH_AUTH_SAML_SP_KEY_FILE": str(folder / "sp.key"),
            "DASH_AUTH_ALLOWED_GROUPS": "analysts", "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48)}


@pytest.fixture
def started(tmp_path: Path) -> Iterator:
    """``started(venv, settings)``: the venv's app running with those settings, stopped after the test."""
    apps: list[RunningApp] = []

    def start(venv: FreshVenv, settings: dict[str, str]) -> RunningApp:
        app = venv.start_app(settings, tmp_path / f"app-{len(apps)}.log")
        apps.append(app)
        assert f"dash_enterprise_auth from {venv.folder}/lib/" in app.log(), app.log()  # the wheel, not the checkout
        return app

    yield start
    for app in apps:
        app.stop()


# -- what a person does -----------------------------------------------------------------------

class Browser:
    """A requests.Session at the app; ``host`` is the Host header the app sees."""

    def __init__(self, app: RunningApp, host: str | None = None) -> None:
        self.app, self.http = app, requests.Session()
        # A new connection per request: a kept-alive one that the server (uvicorn, hypercorn: 5 s
        # idle) closes just as the next request is sent fails that request with RemoteDisconnected.
        self.http.headers["Connection"] = "close"
        self.at_idp = requests.Session()  # the same person's browser at the identity provider
        if host:
            self.http.headers["Host"] = host

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.app.url + path, headers=HTML, allow_redirects=False, timeout=30, **kwargs)

    def back_at_the_app(self, location: str, **kwargs) -> requests.Response:
        """Follow a provider's redirect to the app's registered URL, to the app itself."""
        parts = urlsplit(location)
        assert parts.netloc == self.http.headers.get("Host"), location
        return self.get(f"{parts.path}?{parts.query}", **kwargs)

    def sign_in_with_the_form(self, username: str, password: str) -> requests.Response:
        page = self.get(LOGIN + "?next=/")
        assert page.status_code == 200, (page.status_code, page.text[:500], self.app.log())
        assert 'name="username"' in page.text and 'type="password"' in page.text and 'method="post"' in page.text
        return self.http.post(self.app.url + LOGIN, data={"username": username, "password": password, "next": "/"},
                              headers={"Origin": self.app.url, "Sec-Fetch-Site": "same-origin"},
                              allow_redirects=False, timeout=30)

    def to_the_provider(self, provider_url: str) -> str:
        """GET the sign-in route: a 302 to the provider; its Location."""
        started = self.get(LOGIN + "?next=/")
        assert started.status_code == 302, (started.status_code, started.text[:500], self.app.log())
        assert started.headers["Location"].startswith(provider_url), started.headers["Location"]
        return started.headers["Location"]

    def sign_in_at_the_saml_idp(self, idp, change: Callable[[str], str] | None = None) -> requests.Response:
        """alice signs in at the SAML IdP (its session kept in ``at_idp``); the app's answer to the
        IdP page's POST to the ACS, sent as the browser sends it (``change``: of the response's XML,
        on the way)."""
        page = self.at_idp.get(self.to_the_provider(idp.sso_url), timeout=30)
        action, fields = auto_post_form(submit_saml_login(self.at_idp, page, "alice", "alice-password"))
        assert action == SAML_SP_ACS_URL and "SAMLResponse" in fields
        if change is not None:
            xml = base64.b64decode(fields["SAMLResponse"]).decode()
            fields["SAMLResponse"] = base64.b64encode(change(xml).encode()).decode()
        return self.http.post(self.app.url + urlsplit(action).path, data=fields, allow_redirects=False, timeout=30,
                              headers={"Accept": "text/html", "Sec-Fetch-Site": "cross-site",
                                       "Origin": "{0.scheme}://{0.netloc}".format(urlsplit(idp.url))})

    def viewer(self) -> dict:
        """What the app's callback says about the viewer."""
        answer = self.http.post(self.app.url + "/_dash-update-component", json=GREETING, timeout=30)
        assert answer.status_code == 200, (answer.status_code, answer.text[:500], self.app.log())
        return json.loads(answer.json()["response"]["greeting"]["children"])


def assert_signed_in(browser: Browser, answer: requests.Response, connector: str) -> dict:
    assert answer.status_code == 302 and answer.headers["Location"] == "/", \
        (answer.status_code, answer.text[:500], browser.app.log())
    assert browser.get("/").status_code == 200
    viewer = browser.viewer()
    assert viewer["username"] == "alice" and "analysts" in viewer["groups"] and viewer["connector"] == connector
    return viewer


# -- each README install, alone -------------------------------------------------------------

def test_the_plain_install_serves_the_basic_connector(fresh_venvs, started):
    """``pip install dash-enterprise-auth``: the form (200), and alice's sign-in gives a session."""
    app = started(venv_for(fresh_venvs, None), basic_settings())
    browser = Browser(app)
    viewer = assert_signed_in(browser, browser.sign_in_with_the_form("alice", "wonderland"), "basic")
    assert "DASH_AUTH_KRB5_REALM is not configured" in viewer["kerberos_ticket_bytes"]


def test_the_ldap_extra_alone_signs_in_against_the_directory(fresh_venvs, started, slapd):
    app = started(venv_for(fresh_venvs, "ldap"), ldap_settings(slapd))
    browser = Browser(app)
    assert_signed_in(browser, browser.sign_in_with_the_form("alice", "alice-password"), "ldap")


def test_the_oidc_extra_alone_sends_people_to_the_provider_and_signs_them_in(fresh_venvs, started, oidc_provider):
    app = started(venv_for(fresh_venvs, "oidc"), oidc_settings(oidc_provider))
    browser = Browser(app, REGISTERED_HOST)
    at_provider = requests.Session()
    page = get_at_provider(at_provider, browser.to_the_provider(oidc_provider.issuer))
    assert page.status_code == 200, page.text[:500]  # the provider's sign-in form: the request was valid
    back = submit_oidc_login(at_provider, page, "alice", "alice-password")
    assert back.is_redirect, back.text[:500]
    assert_signed_in(browser, browser.back_at_the_app(back.headers["Location"]), "oidc")


def test_the_plotly_extra_alone_sends_people_to_plotly_and_signs_them_in(fresh_venvs, started, plotly_server):
    app = started(venv_for(fresh_venvs, "plotly"), plotly_settings(plotly_server))
    browser = Browser(app, REGISTERED_HOST)
    at_plotly = requests.Session()
    page = at_plotly.get(browser.to_the_provider(plotly_server.url), allow_redirects=False, timeout=30)
    assert page.status_code == 200, page.text[:500]
    fields = {k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                                                     page.text)}
    action = urljoin(page.url, re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    back = at_plotly.post(action, data={**fields, "username": "alice", "password": "alice-pw", "allow": "Authorize"},
                          allow_redirects=False, timeout=30)
    assert back.status_code == 302, back.text[:500]
    answer = browser.back_at_the_app(back.headers["Location"])
    assert answer.status_code == 302 and answer.headers["Location"] == "/", (answer.text[:500], app.log())
    viewer = browser.viewer()
    assert viewer["username"] == "alice" and viewer["connector"] == "plotly"


def test_the_saml_extra_alone_sends_people_to_the_idp_and_signs_them_in(fresh_venvs, started, saml_idp, saml_sp_keys,
                                                                       tmp_path):
    """The defect this module was written for: [saml] alone could not even start the app."""
    app = started(venv_for(fresh_venvs, "saml"), saml_settings(saml_idp, saml_sp_keys, tmp_path))
    browser = Browser(app, REGISTERED_HOST)
    assert_signed_in(browser, browser.sign_in_at_the_saml_idp(saml_idp), "saml")


def test_the_redis_extra_alone_keeps_sessions_in_redis(fresh_venvs, started, redis_server):
    store = redis_server.url.rsplit("/", 1)[0] + "/11"  # a database of its own on the shared server
    db = redis.Redis.from_url(store)
    db.flushdb()
    app = started(venv_for(fresh_venvs, "redis"), basic_settings(DASH_AUTH_SESSION_STORE=store))
    browser = Browser(app)
    assert_signed_in(browser, browser.sign_in_with_the_form("alice", "wonderland"), "basic")
    assert db.dbsize() > 0  # the session went to Redis, not to a SQLite file
    db.flushdb()


def test_the_kerberos_extra_alone_gets_a_ticket_at_a_form_sign_in(fresh_venvs, started, kdc, tmp_path):
    users = tmp_path / "users.json"  # alice with her password at the KDC
    users.write_text(json.dumps({"users": {"alice": {"password_hash": hash_password("alice-password"),
                                                     "groups": ["analysts"]}}}))
    app = started(venv_for(fresh_venvs, "kerberos"),
                  basic_settings(users, DASH_AUTH_KRB5_REALM=kdc.realm, **kdc.env))
    browser = Browser(app)
    viewer = assert_signed_in(browser, browser.sign_in_with_the_form("alice", "alice-password"), "basic")
    # A Kerberos failure never fails a sign-in, so only the ticket itself shows the extra works.
    assert isinstance(viewer["kerberos_ticket_bytes"], int) and viewer["kerberos_ticket_bytes"] > 0, viewer
    assert viewer["kerberos_ticket_expiry"], viewer


# -- the wrong install says which one is needed ----------------------------------------------

def assert_start_up_names(venv: FreshVenv, settings: dict[str, str], extra: str, log_path: Path) -> None:
    """The app stops at start-up, and the last line of its output is the install command."""
    output = venv.start_up_failure(settings, log_path)
    assert output is not None, f"{venv.requirement} started with {sorted(settings)} set"
    lines = [line for line in output.splitlines() if line.strip()]
    assert f"pip install 'dash-enterprise-auth[{extra}]'" in lines[-1], output[-3000:]


@pytest.mark.parametrize("connector", ["ldap", "oidc", "plotly", "saml", "spnego"])
def test_a_connector_without_its_extra_stops_start_up_naming_it(fresh_venvs, connector, tmp_path):
    assert_start_up_names(venv_for(fresh_venvs, None), basic_settings(DASH_AUTH_CONNECTOR=connector), connector,
                          tmp_path / "app.log")


@pytest.mark.parametrize("connector", ["oidc", "plotly"])
def test_the_saml_extra_does_not_pass_for_the_oauth_connectors(fresh_venvs, connector, tmp_path):
    """The other side of the original defect: [saml] does not bring Authlib, and says so."""
    assert_start_up_names(venv_for(fresh_venvs, "saml"), basic_settings(DASH_AUTH_CONNECTOR=connector), connector,
                          tmp_path / "app.log")


def test_a_redis_store_without_the_redis_extra_stops_start_up_naming_it(fresh_venvs, tmp_path):
    settings = basic_settings(DASH_AUTH_SESSION_STORE="redis://127.0.0.1:1/0")
    assert_start_up_names(venv_for(fresh_venvs, None), settings, "redis", tmp_path / "app.log")


@pytest.mark.parametrize("extra", [None, "oidc"])  # oidc: cryptography (through Authlib) but no gssapi
def test_a_kerberos_realm_without_the_kerberos_extra_stops_start_up_naming_it(fresh_venvs, extra, tmp_path):
    settings = basic_settings(DASH_AUTH_KRB5_REALM="EXAMPLE.ORG")
    assert_start_up_names(venv_for(fresh_venvs, extra), settings, "kerberos", tmp_path / "app.log")


# -- the command line -----------------------------------------------------------------------

def test_python_m_from_the_repository_root_finds_the_connectors(fresh_venvs):
    """From the checkout's root, ``python -m dash_enterprise_auth`` imports the source tree (the
    current directory comes first on sys.path), with the installed wheel's entry points: once,
    that tree lacked the connectors and every command failed with an import error."""
    venv = venv_for(fresh_venvs, None)
    where = venv.run("-c", "import importlib.util as u; print(u.find_spec('dash_enterprise_auth').origin)", cwd=ROOT)
    assert where.stdout.strip() == str(ROOT / "dash_enterprise_auth" / "__init__.py"), where.stdout  # the shadow
    help_ = venv.run("-m", "dash_enterprise_auth", "--help", cwd=ROOT)
    assert help_.returncode == 0 and "check" in help_.stdout, help_.stdout
    check = venv.run("-m", "dash_enterprise_auth", "check", env=basic_settings(), cwd=ROOT)
    assert "No module named" not in check.stdout and "Traceback" not in check.stdout, check.stdout
    assert check.returncode == 0 and "ok   settings: connector basic" in check.stdout, check.stdout
    saml = venv.run("-m", "dash_enterprise_auth", "check", env=basic_settings(DASH_AUTH_CONNECTOR="saml"), cwd=ROOT)
    assert saml.returncode == 1 and "pip install 'dash-enterprise-auth[saml]'" in saml.stdout, saml.stdout


@pytest.mark.parametrize("extra", EXTRAS)
def test_check_runs_with_each_extra_alone(fresh_venvs, extra, request, tmp_path):
    """``dash-enterprise-auth check`` (the installed script) with the settings of the extra's app."""
    venv = venv_for(fresh_venvs, extra)
    settings = {
        "ldap": lambda: ldap_settings(request.getfixturevalue("slapd")),
        "saml": lambda: saml_settings(request.getfixturevalue("saml_idp"), request.getfixturevalue("saml_sp_keys"),
                                      tmp_path),
        "oidc": lambda: oidc_settings(request.getfixturevalue("oidc_provider")),
        "plotly": lambda: plotly_settings(request.getfixturevalue("plotly_server")),
        "redis": lambda: basic_settings(DASH_AUTH_SESSION_STORE=request.getfixturevalue("redis_server").url),
        "kerberos": lambda: basic_settings(DASH_AUTH_KRB5_REALM="EXAMPLE.ORG"),
    }[extra]()
    check = venv.run(str(venv.folder / "bin" / "dash-enterprise-auth"), "check", env=settings, cwd=tmp_path)
    assert "No module named" not in check.stdout and "Traceback" not in check.stdout, check.stdout
    # The suite's IdP certificate lives 30 days on purpose, and check flags any within 30 days of expiry.
    failures = [line for line in check.stdout.splitlines()
                if line.startswith("FAIL") and not line.startswith("FAIL saml IdP certificate")]
    assert not failures and check.returncode == (1 if extra == "saml" else 0), check.stdout
