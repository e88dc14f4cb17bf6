"""The connector contract, written once and run over every connector against its real server.

Each connector is built the way the app builds it, ``Cls.from_settings(Settings.load(Cls.options,
keywords, environ))``, and pointed at the server the rest of the suite uses: the users file (basic),
slapd (ldap), oidc-provider (oidc), the Plotly stand-in (plotly), SimpleSAMLphp (saml). The
``subject`` fixture gives one connector at a time; the behaviour classes below never name one.

1. Bad settings stop start-up with a ConfigurationError that names the variable.
2. Whatever a viewer or a provider's answer holds, a sign-in fails only with an AuthenticationError.
3. A real sign-in's Identity survives a round trip through JSON (the session store keeps it so).
4. ``check()`` gives Findings (bool ``ok``, a message), all ok against a healthy server.
5. ``ping()`` is quiet while the server answers, raises ServiceUnavailable while it does not,
   and is quiet again once it is back.

A case that breaks the contract is a defect of the package, fixed there, never worked around here
(the 33 this suite found first are fixed; see the connectors' git log).
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests
from lxml import etree

from dash_enterprise_auth.connectors import http as http_module
from dash_enterprise_auth.connectors.base import (
    Connector, Finding, Identity, PasswordConnector, ProviderRequest, Redirect,
)
from dash_enterprise_auth.connectors.basic import BasicConnector
from dash_enterprise_auth.connectors.ldap import LdapConnector
from dash_enterprise_auth.connectors.oidc import OidcConnector
from dash_enterprise_auth.connectors.plotly import PlotlyConnector
from dash_enterprise_auth.connectors.saml import SamlConnector
from dash_enterprise_auth.connectors.spnego import SpnegoConnector
from dash_enterprise_auth.errors import (
    AuthenticationError, ConfigurationError, ServiceUnavailable,
)
from dash_enterprise_auth.settings import Settings

from .conftest import IN_PROCESS_APP, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, SAML_SP_ACS_URL
from .conftest import PASSWORDS as BASIC_PASSWORDS
from .servers import oidc_server
from .servers import saml_idp as saml_pages
from .servers.plotly_server import PlotlyServer
from .servers.slapd_server import PASSWORDS as LDAP_PASSWORDS

CONNECTORS = ("basic", "ldap", "oidc", "plotly", "saml", "spnego")
CLIENT = "203.0.113.7"  # the viewer's address in every ProviderRequest
PLOTLY_APP = "contract-app"
PLOTLY_API_KEY = "alice-api-key"
SAML_PASSWORD = saml_pages.USERS["alice"]["password"]
OIDC_PASSWORD = {a["username"]: a["password"] for a in oidc_server.ACCOUNTS}["alice"]


# ============================================================================================
# The connectors under test: how to build each one, sign in with it, and take its server away
# ============================================================================================

@dataclass
class Outage:
    """A connector of its own whose server this test may take away and bring back."""

    connector: Connector
    breaks: list[tuple[str, Callable[[], None]]]  # (how, take the server away)
    restore: Callable[[], None]


class Subject(ABC):
    """One connector class, its real server, and what the contract needs from it."""

    name: str
    cls: type[Connector]

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.fixtures = request
        self.folder = request.getfixturevalue("tmp_path_factory").mktemp(f"contract-{self.name}")
        self._connector: Connector | None = None

    @abstractmethod
    def keywords(self) -> dict[str, Any]:
        """protect() keywords that make a working connector for the shared server."""

    def build(self, overrides: Mapping[str, Any] | None = None,
              environ: Mapping[str, str] | None = None) -> Connector:
        """From settings, as the app does: keyword ``overrides`` on top of ``keywords()``; a variable
        given in ``environ`` (by its name, its ``_FILE`` or a fallback) replaces the keyword that sets
        the same option, since a keyword would win over it."""
        keywords = {**self.keywords(), **(overrides or {})}
        environ = dict(environ or {})
        variables_of = {option.keyword: option.variables for option in self.cls.options}  # as Settings.load maps them
        for variable in environ:
            keywords = {k: v for k, v in keywords.items() if variable not in variables_of.get(k, ())}
        return self.cls.from_settings(Settings.load(self.cls.options, keywords, environ))

    @property
    def connector(self) -> Connector:
        """The connector for the shared server, built once per module."""
        if self._connector is None:
            self._connector = self.build()
        return self._connector

    @abstractmethod
    def sign_in(self) -> Identity:
        """alice signs in for real."""

    @abstractmethod
    def outage(self, request: pytest.FixtureRequest) -> Outage: ...

    #: regexes of check() findings that fail against the healthy test server by design
    known_check_failures: tuple[str, ...] = ()


class BasicSubject(Subject):
    name, cls = "basic", BasicConnector

    def keywords(self) -> dict[str, Any]:
        return {"users_file": str(self.fixtures.getfixturevalue("users_file"))}

    right_password = BASIC_PASSWORDS["alice"]

    def sign_in(self) -> Identity:
        return self.connector.authenticate("alice", self.right_password)

    def outage(self, request: pytest.FixtureRequest) -> Outage:
        path = request.getfixturevalue("tmp_path") / "users.json"
        shutil.copy2(self.fixtures.getfixturevalue("users_file"), path)
        saved = path.read_bytes()

        def removed() -> None:
            path.unlink()

        def garbage() -> None:
            path.write_text("{not json")

        def directory() -> None:
            path.unlink()
            path.mkdir()

        def groups_a_string() -> None:  # valid JSON that start-up would refuse: refused at run time too
            users = json.loads(saved)
            users["users"]["alice"]["groups"] = "analysts"
            path.write_text(json.dumps(users))

        def restore() -> None:
            if path.is_dir():
                path.rmdir()
            path.write_bytes(saved)

        return Outage(self.build({"users_file": str(path)}),
                      [("file removed", removed), ("file not JSON", garbage), ("a directory in its place", directory),
                       ("a user's groups a string", groups_a_string)],
                      restore)


class LdapSubject(Subject):
    name, cls = "ldap", LdapConnector

    @staticmethod
    def settings_for(server: Any) -> dict[str, Any]:
        return {"ldap_url": server.ldaps_url, "ldap_ca_file": str(server.ca_file), "ldap_bind_dn": server.service_dn,
                "ldap_bind_password": server.service_password, "ldap_user_base": server.base_dn}

    def keywords(self) -> dict[str, Any]:
        return self.settings_for(self.fixtures.getfixturevalue("slapd"))

    right_password = LDAP_PASSWORDS["alice"]

    def sign_in(self) -> Identity:
        return self.connector.authenticate("alice", self.right_password)

    def outage(self, request: pytest.FixtureRequest) -> Outage:
        server = request.getfixturevalue("make_slapd")()
        connector = self.build({**self.settings_for(server), "ldap_timeout": 2})
        return Outage(connector, [("slapd stopped", server.stop)], server.start)


class RedirectSubject(Subject):
    """What the redirect connectors share: a callback URL, a real round trip through the provider."""

    callback_url: str
    #: where the provider's answer arrives: ("GET", "code") for OAuth, ("POST", "SAMLResponse") for SAML
    method: str = "GET"
    payload: str = "code"

    def request(self, fields: Mapping[str, Any] | None = None, *, method: str | None = None,
                in_args: bool | None = None, callback_url: str | None = None) -> ProviderRequest:
        """A callback request carrying ``fields`` where this connector's provider puts them."""
        method = method or self.method
        in_args = (self.method == "GET") if in_args is None else in_args
        fields = dict(fields or {})
        return ProviderRequest(method, fields if in_args else {}, {} if in_args else fields,
                               callback_url or self.callback_url, CLIENT)

    def start(self) -> tuple[str, Redirect]:
        """A sign-in started here: its state and where the browser goes (with the pending data)."""
        state = secrets.token_urlsafe(32)
        return state, self.connector.login(self.request(method="GET", in_args=True), state)

    def pending(self) -> dict[str, Any]:
        return dict(self.start()[1].pending)

    def answer(self, cancel: bool = False) -> tuple[ProviderRequest, dict[str, Any]]:
        """A fresh sign-in of alice at the real provider: the callback it sends back, and its pending data."""
        state, redirect = self.start()
        fields = self.at_provider(redirect.url, cancel)
        assert fields[self.connector.state_field] == state, fields
        return self.request(fields), dict(redirect.pending)

    @abstractmethod
    def at_provider(self, url: str, cancel: bool) -> dict[str, Any]: ...

    def sign_in(self) -> Identity:
        request, pending = self.answer()
        return self.connector.complete(request, pending)


class OidcSubject(RedirectSubject):
    name, cls = "oidc", OidcConnector
    callback_url = f"{IN_PROCESS_APP}/_dash-auth/callback/oidc"

    def keywords(self) -> dict[str, Any]:
        provider = self.fixtures.getfixturevalue("oidc_provider")
        return {"oidc_issuer": provider.issuer, "oidc_client_id": OIDC_CLIENT_ID,
                "oidc_client_secret": OIDC_CLIENT_SECRET, "oidc_scopes": "openid email profile groups"}

    def at_provider(self, url: str, cancel: bool) -> dict[str, Any]:
        http = requests.Session()
        page = oidc_server.get_at_provider(http, url)
        back = (oidc_server.cancel_login(http, page) if cancel
                else oidc_server.submit_login(http, page, "alice", OIDC_PASSWORD))
        assert back.is_redirect and back.headers["Location"].startswith(self.callback_url), back.text[:300]
        return dict(parse_qsl(urlsplit(back.headers["Location"]).query))

    def outage(self, request: pytest.FixtureRequest) -> Outage:
        provider = request.getfixturevalue("make_oidc_provider")(oidc_server.client(
            OIDC_CLIENT_ID, self.callback_url, f"{IN_PROCESS_APP}/_dash-auth/signed-out", OIDC_CLIENT_SECRET))
        connector = self.build({"oidc_issuer": provider.issuer, "oidc_timeout": 2})
        return Outage(connector, [("provider stopped", provider.stop)], provider.start)


def plotly_server() -> PlotlyServer:
    return PlotlyServer(
        users={"alice": {"password": "alice-pw", "email": "alice@example.org"},
               "carol": {"password": "carol-pw", "email": "carol@example.org"}},
        files={PLOTLY_APP: {"owner": "alice", "viewers": [], "world_readable": False}},
        api_users={"alice": PLOTLY_API_KEY},
    ).start()


class PlotlySubject(RedirectSubject):
    name, cls = "plotly", PlotlyConnector
    callback_url = f"{IN_PROCESS_APP}/_dash-auth/callback/plotly"

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__(request)
        self.server = plotly_server()
        request.addfinalizer(self.server.stop)

    def keywords(self) -> dict[str, Any]:
        return self.settings_for(self.server)

    @staticmethod
    def settings_for(server: PlotlyServer) -> dict[str, Any]:
        return {"plotly_domain": server.url, "plotly_app_name": PLOTLY_APP, "plotly_username": "alice",
                "plotly_api_key": PLOTLY_API_KEY}

    def at_provider(self, url: str, cancel: bool) -> dict[str, Any]:
        http = requests.Session()
        page = http.get(url, allow_redirects=False)
        assert page.status_code == 200, page.text[:300]
        fields = {k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                                                        page.text)}
        action = urljoin(page.url, re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
        button = {"cancel": "Cancel"} if cancel else {"allow": "Authorize"}
        back = http.post(action, data={**fields, "username": "alice", "password": "alice-pw", **button},
                         allow_redirects=False)
        assert back.status_code == 302 and back.headers["Location"].startswith(self.callback_url), back.text[:300]
        return dict(parse_qsl(urlsplit(back.headers["Location"]).query))

    def outage(self, request: pytest.FixtureRequest) -> Outage:
        server = plotly_server()
        request.addfinalizer(server.stop)
        connector = self.build({**self.settings_for(server), "plotly_timeout": 2})
        return Outage(connector, [("Plotly server down", server.down)], server.up)


class SamlSubject(RedirectSubject):
    name, cls = "saml", SamlConnector
    callback_url = SAML_SP_ACS_URL
    method, payload = "POST", "SAMLResponse"
    # The fixture IdP's signing certificate lives 30 days, which check() flags (see test_saml).
    known_check_failures = (r"^saml IdP certificate .*: valid until \d{4}-\d\d-\d\d \((29|30) days\)$",)

    def keywords(self) -> dict[str, Any]:
        idp = self.fixtures.getfixturevalue("saml_idp")
        key_pem, cert_pem = self.fixtures.getfixturevalue("saml_sp_keys")
        (self.folder / "sp.key").write_text(key_pem)
        (self.folder / "sp.crt").write_text(cert_pem)
        return {"saml_idp_metadata_url": idp.metadata_url, "saml_sp_cert_file": str(self.folder / "sp.crt"),
                "saml_sp_key_file": str(self.folder / "sp.key")}

    def at_provider(self, url: str, cancel: bool) -> dict[str, Any]:
        assert not cancel, "SimpleSAMLphp's form has no cancel button"
        http = requests.Session()
        posted = saml_pages.submit_login(http, http.get(url, timeout=30), "alice", SAML_PASSWORD)
        action, fields = saml_pages.auto_post_form(posted)
        assert action == self.callback_url, action
        return fields

    def outage(self, request: pytest.FixtureRequest) -> Outage:
        idp = request.getfixturevalue("make_saml_idp")()
        connector = self.build({"saml_idp_metadata_url": idp.metadata_url, "saml_timeout": 2,
                                "saml_sp_cert_file": None, "saml_sp_key_file": None})
        return Outage(connector, [("IdP stopped", idp.stop)], idp.start)


class SpnegoSubject(Subject):
    """Kerberos single sign-on: alice's real SPNEGO token for HTTP@localhost from the suite's KDC."""

    name, cls = "spnego", SpnegoConnector

    def keywords(self) -> dict[str, Any]:
        kdc = self.fixtures.getfixturevalue("kdc")
        return {"krb5_realm": kdc.realm, "krb5_keytab": str(kdc.http_keytab)}

    def token(self) -> bytes:
        from .test_spnego import person, token_for

        creds = person(self.fixtures.getfixturevalue("kdc"), "alice", self.folder / "people")
        return base64.b64decode(token_for(creds)[0])

    def sign_in(self) -> Identity:
        return self.connector.accept(self.token(), "localhost").identity

    def outage(self, request: pytest.FixtureRequest) -> Outage:
        keytab = request.getfixturevalue("tmp_path") / "http.keytab"
        shutil.copy2(self.fixtures.getfixturevalue("kdc").http_keytab, keytab)
        saved = keytab.read_bytes()

        def restore() -> None:
            keytab.write_bytes(saved)

        return Outage(self.build({"krb5_keytab": str(keytab)}), [("keytab removed", keytab.unlink)], restore)


SUBJECTS: dict[str, type[Subject]] = {s.name: s for s in (BasicSubject, LdapSubject, OidcSubject, PlotlySubject,
                                                           SamlSubject, SpnegoSubject)}


@pytest.fixture(scope="module", params=CONNECTORS)
def subject(request: pytest.FixtureRequest) -> Subject:
    """Each connector in turn, built from settings against its real server."""
    return SUBJECTS[request.param](request)


def cases(connector: str, table: Mapping[str, Any]) -> list[Any]:
    """pytest params (connector, case id) for a table of cases."""
    return [pytest.param(connector, case, id=f"{connector}-{case}") for case in table]


def names_variable(message: str, variable: str) -> bool:
    """Whether ``message`` names ``variable`` as a whole name (PLOTLY_DOMAIN is not named by
    DASH_AUTH_PLOTLY_DOMAIN)."""
    return re.search(rf"(?<![A-Z0-9_]){re.escape(variable)}(?![A-Z0-9_])", message) is not None


# ============================================================================================
# 1. Bad settings name the variable
# ============================================================================================

def _file(name: str, content: str) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        path = folder / name
        path.write_text(content)
        return str(path)
    return write


def _users_file(**entry: Any) -> Callable[[Path], str]:
    """A users file whose one user, alice (password 'pw'), has ``entry`` besides a genuine hash."""
    def write(folder: Path) -> str:
        from dash_enterprise_auth.passwords import hash_password

        path = folder / "users.json"
        path.write_text(json.dumps({"users": {"alice": {"password_hash": hash_password("pw"), **entry}}}))
        return str(path)
    return write


def _missing_file(folder: Path) -> str:
    return str(folder / "does-not-exist")


def _a_directory(folder: Path) -> str:
    (folder / "a-directory").mkdir(exist_ok=True)
    return str(folder / "a-directory")


#: per connector: case id -> ({VARIABLE: value or (folder -> value)}, the variable the message must name)
BAD_SETTINGS: dict[str, dict[str, tuple[dict[str, Any], str]]] = {
    "basic": {
        "users file unset": ({"DASH_AUTH_USERS_FILE": ""}, "DASH_AUTH_USERS_FILE"),
        "users file missing": ({"DASH_AUTH_USERS_FILE": _missing_file}, "DASH_AUTH_USERS_FILE"),
        "users file is a directory": ({"DASH_AUTH_USERS_FILE": _a_directory}, "DASH_AUTH_USERS_FILE"),
        "users file not JSON": ({"DASH_AUTH_USERS_FILE": _file("u.json", "{users")}, "DASH_AUTH_USERS_FILE"),
        "users file a JSON list": ({"DASH_AUTH_USERS_FILE": _file("u.json", "[]")}, "DASH_AUTH_USERS_FILE"),
        "users file entry without hash": ({"DASH_AUTH_USERS_FILE": _file("u.json", '{"users": {"a": {}}}')},
                                          "DASH_AUTH_USERS_FILE"),
        "users file groups not a list": ({"DASH_AUTH_USERS_FILE": _users_file(groups=7)}, "DASH_AUTH_USERS_FILE"),
        "users file groups a string": ({"DASH_AUTH_USERS_FILE": _users_file(groups="analysts")},
                                       "DASH_AUTH_USERS_FILE"),
    },
    "ldap": {
        "url unset": ({"DASH_AUTH_LDAP_URL": ""}, "DASH_AUTH_LDAP_URL"),
        "url only commas": ({"DASH_AUTH_LDAP_URL": " , ,"}, "DASH_AUTH_LDAP_URL"),
        "url http": ({"DASH_AUTH_LDAP_URL": "http://ldap.corp"}, "DASH_AUTH_LDAP_URL"),
        "url with a path": ({"DASH_AUTH_LDAP_URL": "ldaps://ldap.corp/dc=corp?uid"}, "DASH_AUTH_LDAP_URL"),
        "url bad port": ({"DASH_AUTH_LDAP_URL": "ldaps://ldap.corp:99999"}, "DASH_AUTH_LDAP_URL"),
        "url no host": ({"DASH_AUTH_LDAP_URL": "ldaps://"}, "DASH_AUTH_LDAP_URL"),
        "bind dn unset": ({"DASH_AUTH_LDAP_BIND_DN": ""}, "DASH_AUTH_LDAP_BIND_DN"),
        "bind password unset": ({"DASH_AUTH_LDAP_BIND_PASSWORD": ""}, "DASH_AUTH_LDAP_BIND_PASSWORD"),
        "bind password file missing": ({"DASH_AUTH_LDAP_BIND_PASSWORD_FILE": _missing_file},
                                       "DASH_AUTH_LDAP_BIND_PASSWORD_FILE"),
        "user base unset": ({"DASH_AUTH_LDAP_USER_BASE": ""}, "DASH_AUTH_LDAP_USER_BASE"),
        "user filter without parentheses": ({"DASH_AUTH_LDAP_USER_FILTER": "uid={username}"},
                                            "DASH_AUTH_LDAP_USER_FILTER"),
        "user filter without username": ({"DASH_AUTH_LDAP_USER_FILTER": "(uid=alice)"}, "DASH_AUTH_LDAP_USER_FILTER"),
        "user filter two attributes": ({"DASH_AUTH_LDAP_USER_FILTER": "(|(uid={username})(mail={username}))"},
                                       "DASH_AUTH_LDAP_USER_FILTER"),
        "user filter unbalanced": ({"DASH_AUTH_LDAP_USER_FILTER": "(uid={username}"}, "DASH_AUTH_LDAP_USER_FILTER"),
        "dn template without username": ({"DASH_AUTH_LDAP_USER_DN_TEMPLATE": "uid=alice,dc=example,dc=org"},
                                         "DASH_AUTH_LDAP_USER_DN_TEMPLATE"),
        "group filter without placeholders": ({"DASH_AUTH_LDAP_GROUP_BASE": "ou=groups,dc=example,dc=org",
                                               "DASH_AUTH_LDAP_GROUP_FILTER": "(objectClass=groupOfNames)"},
                                              "DASH_AUTH_LDAP_GROUP_FILTER"),
        "ca file missing": ({"DASH_AUTH_LDAP_CA_FILE": _missing_file}, "DASH_AUTH_LDAP_CA_FILE"),
        "timeout a word": ({"DASH_AUTH_LDAP_TIMEOUT": "soon"}, "DASH_AUTH_LDAP_TIMEOUT"),
        "timeout zero": ({"DASH_AUTH_LDAP_TIMEOUT": "0"}, "DASH_AUTH_LDAP_TIMEOUT"),
        "start tls maybe": ({"DASH_AUTH_LDAP_START_TLS": "maybe"}, "DASH_AUTH_LDAP_START_TLS"),
        "tls verify maybe": ({"DASH_AUTH_LDAP_TLS_VERIFY": "maybe"}, "DASH_AUTH_LDAP_TLS_VERIFY"),
        "nested groups maybe": ({"DASH_AUTH_LDAP_NESTED_GROUPS": "maybe"}, "DASH_AUTH_LDAP_NESTED_GROUPS"),
    },
    "oidc": {
        "issuer unset": ({"DASH_AUTH_OIDC_ISSUER": ""}, "DASH_AUTH_OIDC_ISSUER"),
        "issuer without scheme": ({"DASH_AUTH_OIDC_ISSUER": "login.example.com"}, "DASH_AUTH_OIDC_ISSUER"),
        "issuer ftp": ({"DASH_AUTH_OIDC_ISSUER": "ftp://login.example.com"}, "DASH_AUTH_OIDC_ISSUER"),
        "client id unset": ({"DASH_AUTH_OIDC_CLIENT_ID": ""}, "DASH_AUTH_OIDC_CLIENT_ID"),
        "client secret file missing": ({"DASH_AUTH_OIDC_CLIENT_SECRET_FILE": _missing_file},
                                       "DASH_AUTH_OIDC_CLIENT_SECRET_FILE"),
        "scopes without openid": ({"DASH_AUTH_OIDC_SCOPES": "email profile"}, "DASH_AUTH_OIDC_SCOPES"),
        "timeout zero": ({"DASH_AUTH_OIDC_TIMEOUT": "0"}, "DASH_AUTH_OIDC_TIMEOUT"),
        "clock skew a word": ({"DASH_AUTH_OIDC_CLOCK_SKEW": "lots"}, "DASH_AUTH_OIDC_CLOCK_SKEW"),
    },
    "plotly": {
        "app name unset": ({"DASH_AUTH_PLOTLY_APP_NAME": ""}, "DASH_AUTH_PLOTLY_APP_NAME"),
        "username unset": ({"PLOTLY_USERNAME": ""}, "PLOTLY_USERNAME"),
        "api key unset": ({"PLOTLY_API_KEY": ""}, "PLOTLY_API_KEY"),
        "api key file missing": ({"PLOTLY_API_KEY_FILE": _missing_file}, "PLOTLY_API_KEY_FILE"),
        "sharing unknown": ({"DASH_AUTH_PLOTLY_SHARING": "friends"}, "DASH_AUTH_PLOTLY_SHARING"),
        "dash auth domain without scheme": ({"DASH_AUTH_PLOTLY_DOMAIN": "plot.ly"}, "DASH_AUTH_PLOTLY_DOMAIN"),
        "plotly domain without scheme": ({"PLOTLY_DOMAIN": "plot.ly"}, "PLOTLY_DOMAIN"),
        "dash auth api domain without scheme": ({"DASH_AUTH_PLOTLY_API_DOMAIN": "api.plot.ly"},
                                                "DASH_AUTH_PLOTLY_API_DOMAIN"),
        "plotly api domain without scheme": ({"PLOTLY_API_DOMAIN": "api.plot.ly"}, "PLOTLY_API_DOMAIN"),
        "timeout zero": ({"DASH_AUTH_PLOTLY_TIMEOUT": "0"}, "DASH_AUTH_PLOTLY_TIMEOUT"),
    },
    "saml": {
        "metadata unset": ({"DASH_AUTH_SAML_IDP_METADATA_URL": ""}, "DASH_AUTH_SAML_IDP_METADATA_URL"),
        "metadata url and file both set": ({"DASH_AUTH_SAML_IDP_METADATA_FILE": _file("idp.xml", "<x/>")},
                                           "DASH_AUTH_SAML_IDP_METADATA_FILE"),
        "metadata url without scheme": ({"DASH_AUTH_SAML_IDP_METADATA_URL": "idp.example.com/metadata"},
                                        "DASH_AUTH_SAML_IDP_METADATA_URL"),
        "metadata file missing": ({"DASH_AUTH_SAML_IDP_METADATA_URL": "",
                                   "DASH_AUTH_SAML_IDP_METADATA_FILE": _missing_file},
                                  "DASH_AUTH_SAML_IDP_METADATA_FILE"),
        "metadata file not XML": ({"DASH_AUTH_SAML_IDP_METADATA_URL": "",
                                   "DASH_AUTH_SAML_IDP_METADATA_FILE": _file("idp.xml", "not xml")},
                                  "DASH_AUTH_SAML_IDP_METADATA_FILE"),
        "sp key without cert": ({"DASH_AUTH_SAML_SP_CERT_FILE": ""}, "DASH_AUTH_SAML_SP_CERT_FILE"),
        "sp key file missing": ({"DASH_AUTH_SAML_SP_KEY_FILE": _missing_file}, "DASH_AUTH_SAML_SP_KEY_FILE"),
        "sp key file not a key": ({"DASH_AUTH_SAML_SP_KEY_FILE": _file("sp.key", "not a key")},
                                  "DASH_AUTH_SAML_SP_KEY_FILE"),
        "sp cert file not a certificate": ({"DASH_AUTH_SAML_SP_CERT_FILE": _file("sp.crt", "not a certificate")},
                                           "DASH_AUTH_SAML_SP_CERT_FILE"),
        "clock skew a word": ({"DASH_AUTH_SAML_CLOCK_SKEW": "lots"}, "DASH_AUTH_SAML_CLOCK_SKEW"),
        "timeout zero": ({"DASH_AUTH_SAML_TIMEOUT": "0"}, "DASH_AUTH_SAML_TIMEOUT"),
        "allow idp initiated maybe": ({"DASH_AUTH_SAML_ALLOW_IDP_INITIATED": "maybe"},
                                      "DASH_AUTH_SAML_ALLOW_IDP_INITIATED"),
    },
    "spnego": {
        "realm unset": ({"DASH_AUTH_KRB5_REALM": ""}, "DASH_AUTH_KRB5_REALM"),
        "keytab unset": ({"DASH_AUTH_KRB5_KEYTAB": ""}, "DASH_AUTH_KRB5_KEYTAB"),
        "keytab missing": ({"DASH_AUTH_KRB5_KEYTAB": _missing_file}, "DASH_AUTH_KRB5_KEYTAB"),
        "keytab a directory": ({"DASH_AUTH_KRB5_KEYTAB": _a_directory}, "DASH_AUTH_KRB5_KEYTAB"),
        "keytab not a keytab": ({"DASH_AUTH_KRB5_KEYTAB": _file("app.keytab", "not a keytab")},
                                "DASH_AUTH_KRB5_KEYTAB"),
        "keytab without the service principal": ({"DASH_AUTH_KRB5_SERVICE_PRINCIPAL": "HTTP/elsewhere.example"},
                                                 "DASH_AUTH_KRB5_KEYTAB"),
    },
}


class TestBadSettingsNameTheVariable:
    @pytest.mark.parametrize("subject, case", [p for c in CONNECTORS for p in cases(c, BAD_SETTINGS[c])],
                             indirect=["subject"])
    def test_a_missing_or_malformed_setting_stops_start_up_naming_it(self, subject, case, tmp_path):
        values, variable = BAD_SETTINGS[subject.name][case]
        environ = {name: value(tmp_path) if callable(value) else value for name, value in values.items()}
        with pytest.raises(ConfigurationError) as stopped:
            subject.build(environ=environ)
        assert names_variable(str(stopped.value), variable), f"{variable} not named in: {stopped.value}"

    def test_the_good_settings_build_a_connector_of_its_class(self, subject):
        assert type(subject.connector) is subject.cls and subject.connector.name == subject.name


# ============================================================================================
# 2. Failures are only AuthenticationErrors
# ============================================================================================

RIGHT = object()  # stands for alice's right password at this connector
BIG = 300_000  # characters: over every limit on the way (the core caps at 256 and 1024; slapd at 256 KiB)

#: case id -> (username, password)
PASSWORD_CASES: dict[str, tuple[Any, Any]] = {
    "wrong password": ("alice", "wrong-password"),
    "unknown user": ("nobody", "wrong-password"),
    "unknown user, alice's password": ("nobody", RIGHT),
    "another user's name, alice's password": ("bob", RIGHT),
    "empty username": ("", RIGHT),
    "empty password": ("alice", ""),
    "both empty": ("", ""),
    "whitespace username": ("   ", RIGHT),
    "whitespace password": ("alice", "   "),
    "None username": (None, RIGHT),
    "None password": ("alice", None),
    "int username": (42, RIGHT),
    "int password": ("alice", 12345),
    "bytes username": (b"alice", RIGHT),
    "bytes password": ("alice", b"wrong-password"),
    "list password": ("alice", ["wrong-password"]),
    "oversized username": ("a" * BIG, "wrong-password"),
    "oversized password": ("alice", "p" * BIG),
    "oversized both": ("a" * BIG, "p" * BIG),
    "NUL after username": ("alice\x00", RIGHT),
    "NUL inside username": ("ali\x00ce", RIGHT),
    "NUL password": ("alice", "\x00"),
    "NUL after the right password": ("alice", "+NUL"),
    "control characters": ("alice\r\nbob\t", "x\x1b[31m"),
    "lone surrogate username": ("\udc80alice", "wrong-password"),
    "lone surrogate password": ("alice", "\udc80"),
    "non-ASCII": ("ålice\u202e🙂", "pässwörd✓"),
    "filter wildcard": ("*", RIGHT),
    "filter prefix wildcard": ("al*", RIGHT),
    "filter injection": ("*)(uid=*))(|(uid=*", "x"),
    "filter injection keeping alice": ("alice)(|(uid=*", RIGHT),
    "unbalanced parenthesis": ("(", "x"),
    "backslash": ("\\", "x"),
    "DN injection": ("alice,ou=people,dc=example,dc=org", RIGHT),
    "full DN as username": ("uid=alice,ou=people,dc=example,dc=org", RIGHT),
    "format placeholders": ("{username}{dn}%s%n", "x"),
    "JSON operator": ('{"$ne": null}', '{"$ne": null}'),
    "SQL injection": ("' OR '1'='1", "' OR '1'='1"),
    "path traversal": ("../../../../etc/passwd", "x"),
}


def _password(subject: Subject, value: Any) -> Any:
    if value is RIGHT:
        return subject.right_password
    if value == "+NUL":
        return subject.right_password + "\x00"
    return value


def refused(call: Callable[[], Any]) -> AuthenticationError:
    """The AuthenticationError ``call`` raises; any other exception propagates (and fails the test)."""
    try:
        result = call()
    except AuthenticationError as exc:
        assert isinstance(exc.user_message, str) and exc.user_message.strip()
        return exc
    pytest.fail(f"accepted as a sign-in: {result!r}")


def _fresh(s: RedirectSubject, fields: Mapping[str, Any]) -> tuple[ProviderRequest, dict[str, Any]]:
    """A callback carrying ``fields`` (plus the state of a sign-in started here) with that sign-in's pending data."""
    state, redirect = s.start()
    return s.request({s.connector.state_field: state, **fields}), dict(redirect.pending)


def _payload(value: Any) -> Callable[[RedirectSubject], tuple[ProviderRequest, dict[str, Any]]]:
    """The connector's main field (OAuth ``code``, SAML ``SAMLResponse``) holding ``value``."""
    return lambda s: _fresh(s, {s.payload: value})


def _genuine_with(change: Callable[[RedirectSubject, ProviderRequest, dict[str, Any]],
                                   tuple[ProviderRequest, dict[str, Any]]]):
    def case(s: RedirectSubject) -> tuple[ProviderRequest, dict[str, Any]]:
        request, pending = s.answer()
        return change(s, request, pending)
    return case


def _fields_of(request: ProviderRequest) -> dict[str, Any]:
    return dict(request.args if request.method == "GET" else request.form)


def _with_fields(s: RedirectSubject, request: ProviderRequest, **changes: Any) -> ProviderRequest:
    return s.request({**_fields_of(request), **changes})


def _used_twice(s: RedirectSubject) -> tuple[ProviderRequest, dict[str, Any]]:
    request, pending = s.answer()
    s.connector.complete(request, pending)  # the first use signs in
    return request, pending


#: case id -> case(subject) -> (callback request, pending data); for every redirect connector
REDIRECT_CASES: dict[str, Callable[[RedirectSubject], tuple[ProviderRequest, dict[str, Any]]]] = {
    "no fields": lambda s: (s.request({}), s.pending()),
    "only the state": lambda s: _fresh(s, {}),
    "no fields, empty pending": lambda s: (s.request({}), {}),
    "payload garbage": _payload("garbage"),
    "payload empty": _payload(""),
    "payload oversized": _payload("A" * (2 * BIG)),
    "payload NUL and control characters": _payload("abc\x00\r\n\t<>\"'\x1b"),
    "payload lone surrogate": _payload("\udc80\ud800"),
    "payload non-ASCII": _payload("ünïcødé✓🙂"),
    "payload int": _payload(12345),
    "payload list": _payload(["a", "b"]),
    "payload None": _payload(None),
    "payload bytes": _payload(b"\x00\xff garbage"),
    "payload dict": _payload({"a": "b"}),
    "state int": lambda s: (s.request({s.connector.state_field: 7, s.payload: "garbage"}), s.pending()),
    "fields where the method does not put them": lambda s: (
        s.request({s.payload: "garbage"}, in_args=s.method != "GET"), s.pending()),
    "method not HTTP": lambda s: (s.request({s.payload: "garbage"}, method="BREW"), s.pending()),
    "genuine answer, pending of another sign-in": _genuine_with(lambda s, r, p: (r, s.pending())),
    "genuine answer, empty pending": _genuine_with(lambda s, r, p: (r, {})),
    "genuine answer, pending values of the wrong type": _genuine_with(
        lambda s, r, p: (r, {k: 12345 for k in p})),
}

OAUTH_CASES: dict[str, Callable[[RedirectSubject], tuple[ProviderRequest, dict[str, Any]]]] = {
    "error access_denied from the real provider": lambda s: s.answer(cancel=True),
    "error unknown with description": lambda s: _fresh(s, {"error": "server_error",
                                                            "error_description": "<b>it broke</b>"}),
    "error and a code": lambda s: _fresh(s, {"error": "access_denied", "code": "garbage"}),
    "error oversized": lambda s: _fresh(s, {"error": "e" * BIG, "error_description": "d" * BIG}),
    "error NUL": lambda s: _fresh(s, {"error": "access_denied\x00", "error_description": "\x00"}),
    "error int": lambda s: _fresh(s, {"error": 500}),
    "error list": lambda s: _fresh(s, {"error": ["access_denied"]}),
    "error description int": lambda s: _fresh(s, {"error": "server_error", "error_description": 500}),
    "code at the length limit": _payload("c" * 2048),
    "genuine answer used twice": _used_twice,
}

OIDC_CASES: dict[str, Callable[[RedirectSubject], tuple[ProviderRequest, dict[str, Any]]]] = {
    "genuine answer naming another issuer": _genuine_with(
        lambda s, r, p: (_with_fields(s, r, iss="https://evil.example"), p)),
    "iss oversized": lambda s: _fresh(s, {"iss": "i" * BIG, "code": "garbage"}),
    "iss int": lambda s: _fresh(s, {"iss": 42, "code": "garbage"}),
    "iss list": lambda s: _fresh(s, {"iss": ["https://evil.example"], "code": "garbage"}),
}


def _saml_xml(xml: bytes) -> Callable[[RedirectSubject], tuple[ProviderRequest, dict[str, Any]]]:
    return _payload(base64.b64encode(xml).decode())


def _tampered(edit: Callable[[etree._Element], None]):
    def change(s: RedirectSubject, request: ProviderRequest, pending: dict[str, Any]):
        root = etree.fromstring(base64.b64decode(request.form["SAMLResponse"]))
        edit(root)
        return _with_fields(s, request, SAMLResponse=base64.b64encode(etree.tostring(root)).decode()), pending
    return _genuine_with(change)


SAML_NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
           "ds": "http://www.w3.org/2000/09/xmldsig#"}


def _rename(root: etree._Element) -> None:
    root.find(".//saml:Subject/saml:NameID", SAML_NS).text = "bob"


def _unsign(root: etree._Element) -> None:
    for signature in root.findall(".//ds:Signature", SAML_NS):
        signature.getparent().remove(signature)


IDP_ERROR = (
    '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
    'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_e1" Version="2.0" '
    f'IssueInstant="2030-01-01T00:00:00Z" Destination="{SAML_SP_ACS_URL}" InResponseTo="_r1">'
    '<saml:Issuer>https://idp.example/</saml:Issuer><samlp:Status><samlp:StatusCode '
    'Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode '
    'Value="urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"/></samlp:StatusCode>'
    '<samlp:StatusMessage>no</samlp:StatusMessage></samlp:Status></samlp:Response>').encode()

SAML_CASES: dict[str, Callable[[RedirectSubject], tuple[ProviderRequest, dict[str, Any]]]] = {
    "not base64": _payload("not base64 at all!!"),
    "base64 of text": _saml_xml(b"hello"),
    "truncated XML": _saml_xml(b"<samlp:Response"),
    "XML of another kind": _saml_xml(b"<html><body>hi</body></html>"),
    "oversized XML": _saml_xml(b"<r>" + b"<a>x</a>" * (BIG // 4) + b"</r>"),
    "deeply nested XML": _saml_xml(b"<a>" * 100_000 + b"</a>" * 100_000),
    "entity expansion": _saml_xml(
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><r>&d;&d;</r>'),
    "external entity": _saml_xml(
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'),
    "IdP error status": _saml_xml(IDP_ERROR),
    "genuine answer, NameID changed": _tampered(_rename),
    "genuine answer, signatures stripped": _tampered(_unsign),
    "genuine answer, posted to another callback URL": _genuine_with(
        lambda s, r, p: (s.request(_fields_of(r), callback_url="http://evil.example/_dash-auth/callback/saml"), p)),
    "genuine answer as a GET": _genuine_with(lambda s, r, p: (s.request(_fields_of(r), method="GET", in_args=True), p)),
}

def _token_case(change: Callable[[bytes], bytes], host: str = "localhost") -> Callable[["SpnegoSubject"], tuple]:
    return lambda subject: (change(subject.token()), host)


#: tokens a browser, or someone pretending to be one, may send; (token, host of the request)
NEGOTIATE_CASES: dict[str, Callable[[Any], tuple[bytes, str]]] = {
    "empty": _token_case(lambda t: b""),
    "garbage": _token_case(lambda t: secrets.token_bytes(300)),
    "one byte": _token_case(lambda t: b"\x60"),
    "truncated": _token_case(lambda t: t[:len(t) // 2]),
    "last byte gone": _token_case(lambda t: t[:-1]),
    "forged authenticator": _token_case(lambda t: t[:-16] + bytes(b ^ 0xFF for b in t[-16:])),
    "forged ticket": _token_case(lambda t: t[:200] + bytes([t[200] ^ 1]) + t[201:]),
    "a DER length past the end": _token_case(lambda t: b"\x60\x84\x7f\xff\xff\xff" + t[6:]),
    "NTLM": _token_case(lambda t: b"NTLMSSP\x00\x01\x00\x00\x00" + bytes(24)),
    "huge": _token_case(lambda t: t * 100),
    "text": _token_case(lambda t: "Négociation".encode()),
    "replayed": _token_case(lambda t: t),  # the subject accepts it once first
    "for a host without a key": _token_case(lambda t: t, "intranet.example.org"),
    "for a host name with a realm": _token_case(lambda t: t, "localhost@EVIL.EXAMPLE"),
    "for a host name with a slash": _token_case(lambda t: t, "a/b"),
    "for an empty host": _token_case(lambda t: t, ""),
    "for a host with a NUL": _token_case(lambda t: t, "local\x00host"),
}

REDIRECT_TABLES = {"oidc": {**REDIRECT_CASES, **OAUTH_CASES, **OIDC_CASES},
                   "plotly": {**REDIRECT_CASES, **OAUTH_CASES},
                   "saml": {**REDIRECT_CASES, **SAML_CASES}}


class TestFailuresAreOnlyAuthenticationErrors:
    @pytest.mark.parametrize("subject, case", [p for c in ("basic", "ldap") for p in cases(c, PASSWORD_CASES)],
                             indirect=["subject"])
    def test_a_password_connector_refuses_bad_and_hostile_credentials(self, subject, case, record_property):
        username, password = PASSWORD_CASES[case]
        exc = refused(lambda: subject.connector.authenticate(_password(subject, username),
                                                             _password(subject, password)))
        record_property("raised", type(exc).__name__)

    @pytest.mark.parametrize("subject, case", [p for c in REDIRECT_TABLES for p in cases(c, REDIRECT_TABLES[c])],
                             indirect=["subject"])
    def test_a_redirect_connector_refuses_a_bad_or_hostile_answer(self, subject, case, record_property):
        request, pending = REDIRECT_TABLES[subject.name][case](subject)
        exc = refused(lambda: subject.connector.complete(request, pending))
        record_property("raised", type(exc).__name__)

    @pytest.mark.parametrize("subject, case", cases("spnego", NEGOTIATE_CASES), indirect=["subject"])
    def test_a_negotiate_connector_refuses_a_bad_or_hostile_token(self, subject, case, record_property):
        token, host = NEGOTIATE_CASES[case](subject)
        if case == "replayed":
            subject.connector.accept(token, host)
        exc = refused(lambda: subject.connector.accept(token, host))
        record_property("raised", type(exc).__name__)


# ============================================================================================
# 3. A real sign-in's Identity survives JSON
# ============================================================================================

class TestIdentitySurvivesJson:
    def test_alice_signs_in_and_her_identity_comes_back_from_json_unchanged(self, subject):
        identity = subject.sign_in()
        assert type(identity) is Identity and identity.connector == subject.name and identity.username == "alice"
        text = json.dumps(identity.to_dict(), allow_nan=False)
        assert Identity.from_dict(json.loads(text)) == identity
        assert json.loads(json.dumps(identity.public_dict(), allow_nan=False)) == identity.public_dict()


# ============================================================================================
# 4. check() gives Findings
# ============================================================================================

def assert_findings(findings: Any) -> list[Finding]:
    assert type(findings) is list and findings, findings
    for finding in findings:
        assert type(finding) is Finding, finding
        assert type(finding.ok) is bool, finding
        assert isinstance(finding.message, str) and finding.message.strip(), finding
    return findings


class TestCheckGivesFindings:
    def test_against_a_healthy_server_every_finding_is_ok_but_the_known_ones(self, subject):
        findings = assert_findings(subject.connector.check())
        failed = [f.message for f in findings if not f.ok]
        unexpected = [m for m in failed if not any(re.search(p, m) for p in subject.known_check_failures)]
        assert not unexpected, unexpected
        for pattern in subject.known_check_failures:  # a known failure is still reported
            assert sum(bool(re.search(pattern, m)) for m in failed) == 1, (pattern, failed)

    @pytest.mark.parametrize("user, found", [("alice", True), ("nobody", False)])
    def test_check_with_a_test_user_gives_findings_too(self, subject, user, found):
        findings = assert_findings(subject.connector.check(test_user=user))
        if isinstance(subject.connector, PasswordConnector):  # they look people up; redirect protocols cannot
            (about,) = [f for f in findings if user in f.message]
            assert about.ok is found, about


# ============================================================================================
# 5. ping() follows the server
# ============================================================================================

@pytest.fixture
def no_reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ping asks the server (a ping's answer is otherwise reused for PROBE_REUSE seconds)."""
    monkeypatch.setattr(http_module, "PROBE_REUSE", 0.0)


class TestPingFollowsTheServer:
    def test_ping_is_quiet_while_the_server_answers_and_raises_service_unavailable_while_not(
            self, subject, request, no_reuse):
        outage = subject.outage(request)
        connector = outage.connector
        assert connector.ping() is None
        assert connector.ping() is None
        for how, take_away in outage.breaks:
            take_away()
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable) as down:
                connector.ping()
            assert time.monotonic() - started < 10, how
            assert isinstance(down.value, AuthenticationError) and down.value.status == 503, how
            assert_findings(connector.check())  # check still reports, it does not raise
            outage.restore()
            assert connector.ping() is None, f"ping after recovery from: {how}"
