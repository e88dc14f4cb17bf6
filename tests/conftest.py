"""Shared fixtures: a users file, a protected Dash app built in-process, the example app under gunicorn."""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, Callable

import dash
import pytest
from dash import Input, Output, html

import dash_enterprise_auth as auth
from dash_enterprise_auth.passwords import hash_password

from .servers.app_server import ROOT, RunningApp, start_app
from .servers.oidc_server import ACCOUNTS, OidcProvider, client
from .servers.redis_server import RedisServer
from .servers.slapd_server import SlapdServer

PASSWORDS = {"alice": "wonderland", "bob": "builder", "carol": "c4r0l-secret"}
GROUPS = {"alice": ["analysts"], "bob": ["contractors"], "carol": ["admins", "analysts"]}

UPDATE_GREETING = {
    "output": "greeting.children",
    "outputs": {"id": "greeting", "property": "children"},
    "inputs": [{"id": "city", "property": "value", "value": "NYC"}],
    "changedPropIds": ["city.value"],
    "state": [],
}


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.json"
    users = {
        name: {"password_hash": hash_password(pw), "groups": GROUPS[name], "email": f"{name}@example.com"}
        for name, pw in PASSWORDS.items()
    }
    path.write_text(json.dumps({"users": users}))
    return path


@pytest.fixture
def secret_key() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
def make_app(tmp_path: Path, users_file: Path, secret_key: str) -> Callable[..., dash.Dash]:
    """Build a small Dash app protected with the given settings (basic connector by default)."""

    def build(dash_kwargs: dict[str, Any] | None = None, **settings: Any) -> dash.Dash:
        app = dash.Dash(__name__, title="Test app", **(dash_kwargs or {}))
        app.layout = html.Div([html.Div(id="greeting"), html.Div("NYC", id="city"),
                               auth.create_logout_button()])

        @app.callback(Output("greeting", "children"), Input("city", "children"))
        def greet(_: Any) -> str:
            return f"Hello {auth.get_username()}"

        defaults = {
            "connector": "basic", "users_file": str(users_file), "allowed_groups": ["analysts"],
            "secret_key": secret_key, "session_store": f"sqlite:///{tmp_path}/sessions.sqlite3",
        }
        auth.protect(app, **{**defaults, **settings})
        return app

    return build


def sign_in(client: Any, username: str, password: str | None = None, next_url: str = "/", **headers: str):
    return client.post(
        "/_dash-auth/login",
        data={"username": username, "password": PASSWORDS.get(username, "") if password is None else password,
              "next": next_url},
        headers=headers,
    )


@pytest.fixture(scope="module")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> RunningApp:
    """examples/app.py under gunicorn with two workers, configured as the README says."""
    state = tmp_path_factory.mktemp("example")
    app = start_app(
        "examples.app:server",
        {
            "DASH_AUTH_CONNECTOR": "basic",
            "DASH_AUTH_USERS_FILE": str(ROOT / "examples" / "demo-users.json"),
            "DASH_AUTH_ALLOWED_GROUPS": "analysts",
            "DASH_AUTH_SECRET_KEY": secrets.token_urlsafe(48),
            "DASH_AUTH_SESSION_STORE": f"sqlite:///{state}/sessions.sqlite3",
        },
        state / "server.log",
    )
    yield app
    app.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> RedisServer:
    """One real redis-server for the whole run; tests use their own key space or flush it."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()




@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> SlapdServer:
    """One real OpenLDAP server with the seed data (tests.servers.slapd_server) for the whole run.

    Shared: tests must leave it running and its seed data as they found it. A test that stops
    the directory or changes its data uses its own instance from ``make_slapd``.
    """
    server = SlapdServer(tmp_path_factory.mktemp("slapd")).start()
    yield server
    server.stop()


@pytest.fixture
def make_slapd(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SlapdServer]:
    """Start fresh, independent OpenLDAP servers (same seed data, own ports and passwords), for
    failover and outage tests; all of them are stopped when the test ends."""
    servers: list[SlapdServer] = []

    def make(**fields: Any) -> SlapdServer:
        server = SlapdServer(tmp_path_factory.mktemp("slapd"), **fields)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


OIDC_CLIENT_ID = "dash-app"
OIDC_CLIENT_SECRET = "dash-app-secret-" + secrets.token_urlsafe(16)
IN_PROCESS_APP = "http://localhost"  # the host name Flask's test client uses


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> OidcProvider:
    """One real OpenID provider (panva's oidc-provider on Node.js) for the run, with ACCOUNTS and the
    client ``dash-app`` registered for in-process apps. A test that rotates keys or changes the
    clients uses its own from ``make_oidc_provider``."""
    provider = OidcProvider(tmp_path_factory.mktemp("oidc"), clients=[client(
        OIDC_CLIENT_ID, f"{IN_PROCESS_APP}/_dash-auth/callback/oidc", f"{IN_PROCESS_APP}/_dash-auth/signed-out",
        OIDC_CLIENT_SECRET)], accounts=ACCOUNTS).start()
    yield provider
    provider.stop()


@pytest.fixture
def make_oidc_provider(tmp_path: Path) -> Callable[..., OidcProvider]:
    """Start private providers: ``make(client(...), ttl={...})``; all stopped after the test."""
    started: list[OidcProvider] = []

    def make(*clients: dict, **options: Any) -> OidcProvider:
        provider = OidcProvider(tmp_path / f"oidc-{len(started)}", list(clients), **options).start()
        started.append(provider)
        return provider

    yield make
    for provider in started:
        provider.stop()


# -- Kerberos: a real MIT KDC and a Negotiate (SPNEGO) service ---------------------------------

import os  # noqa: E402  (this section's own imports, kept with it)

from .servers.kdc_server import KdcServer  # noqa: E402


def _point_krb5_at(server: KdcServer) -> dict[str, str | None]:
    """Make libkrb5 in this process (python-gssapi) and its children use ``server``'s realm;
    returns what to restore."""
    saved = {name: os.environ.get(name) for name in server.env}
    os.environ.update(server.env)
    return saved


def _restore_environ(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def kdc(tmp_path_factory: pytest.TempPathFactory) -> KdcServer:
    """One real MIT KDC for realm EXAMPLE.ORG for the whole run (tests.servers.kdc_server: alice, bob,
    jsmith and nina with their LDAP directory passwords, HTTP/localhost and dash-app/localhost with
    keytabs). KRB5_CONFIG / KRB5_KDC_PROFILE point at it in os.environ until the run ends.

    Shared: tests may add principals of their own, not change the seeded ones; a test that needs
    short tickets, another backend or a stopped KDC uses its own from ``make_kdc``.
    """
    server = KdcServer(tmp_path_factory.mktemp("kdc")).start()
    saved = _point_krb5_at(server)
    yield server
    _restore_environ(saved)
    server.stop()


@pytest.fixture(scope="session")
def negotiate_service(kdc: KdcServer):
    """The Kerberized HTTP service of ``kdc`` (HTTP/localhost): ``negotiate_get(url, ccache)``
    answers 200 ``{"principal": ...}`` for valid tickets (tests.servers.negotiate_service)."""
    from .servers.negotiate_service import NegotiateService  # python-gssapi only where Kerberos is tested

    service = NegotiateService(kdc).start()
    yield service
    service.stop()


@pytest.fixture
def make_kdc(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., KdcServer]:
    """Start private KDCs: ``make_kdc(ticket_lifetime=5, clockskew=1)`` or ``make_kdc(backend="ldap")``
    (constrained delegation). os.environ points at the latest one during the test (the process
    has one KRB5_CONFIG), then back at whatever it was; all of them are stopped after the test."""
    servers: list[KdcServer] = []
    saved: dict[str, str | None] | None = None

    def make(**fields: Any) -> KdcServer:
        nonlocal saved
        server = KdcServer(tmp_path_factory.mktemp("kdc"), **fields)
        servers.append(server)
        server.start()
        previous = _point_krb5_at(server)
        saved = previous if saved is None else saved
        return server

    yield make
    if saved is not None:
        _restore_environ(saved)
    for server in servers:
        server.stop()


# -- SAML 2.0: a real SimpleSAMLphp identity provider ------------------------------------------

from .servers.saml_idp import SamlIdp, make_signing_key  # noqa: E402  (this section's own imports)

#: Where in-process apps (Flask's test client, host ``localhost``) are registered at the IdP.
SAML_SP_ENTITY_ID = f"{IN_PROCESS_APP}/_dash-auth/saml/metadata"
SAML_SP_ACS_URL = f"{IN_PROCESS_APP}/_dash-auth/callback/saml"  # the core's callback route is the ACS
SAML_SP_SLS_URL = f"{IN_PROCESS_APP}/_dash-auth/saml/sls"


@pytest.fixture(scope="session")
def saml_sp_keys() -> tuple[str, str]:
    """The in-process app's SAML signing key and self-signed certificate, PEM: (key, cert).
    ``saml_idp`` knows this certificate and refuses requests not signed with the key."""
    return make_signing_key("dash-enterprise-auth test SAML SP")


@pytest.fixture(scope="session")
def saml_idp(tmp_path_factory: pytest.TempPathFactory, saml_sp_keys: tuple[str, str]) -> SamlIdp:
    """One real SAML IdP (SimpleSAMLphp, tests.servers.saml_idp: USERS alice, bob, jsmith, nina) for the
    run, with the in-process app registered (SAML_SP_* URLs, ``saml_sp_keys`` certificate: AuthnRequests
    and LogoutRequests must be signed). Shared: tests must not ``set_sp``/``add_sp`` or stop it; a test
    that needs other SP settings, an unsigned SP or a stopped IdP uses its own from ``make_saml_idp``."""
    idp = SamlIdp(tmp_path_factory.mktemp("saml-idp"), SAML_SP_ENTITY_ID, SAML_SP_ACS_URL, SAML_SP_SLS_URL,
                  sp_cert_pem=saml_sp_keys[1]).start()
    yield idp
    idp.stop()


@pytest.fixture
def make_saml_idp(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SamlIdp]:
    """Start private IdPs: ``make_saml_idp(sp_cert_pem=cert, sp_options={"saml20.sign.response": False})``,
    or for a gunicorn app ``make_saml_idp(sp_entity_id=..., sp_acs_url=..., sp_sls_url=...)``. The SP
    defaults to the in-process app without a certificate (unsigned requests accepted); all of them
    are stopped after the test."""
    started: list[SamlIdp] = []

    def make(**fields: Any) -> SamlIdp:
        fields = {"sp_entity_id": SAML_SP_ENTITY_ID, "sp_acs_url": SAML_SP_ACS_URL,
                  "sp_sls_url": SAML_SP_SLS_URL, **fields}
        idp = SamlIdp(tmp_path_factory.mktemp("saml-idp"), **fields)
        started.append(idp)
        return idp.start()

    yield make
    for idp in started:
        idp.stop()
