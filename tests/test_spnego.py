"""Kerberos single sign-on (``DASH_AUTH_CONNECTOR=spnego``): HTTP Negotiate against the suite's real MIT KDC.

The client is python-gssapi with real tickets from the KDC, sending SPNEGO tokens as a browser
does; the app accepts them with the keytab of ``HTTP/localhost`` (Flask's test client uses the
host ``localhost``). A second KDC, realm ``OTHER.ORG`` with a cross-realm trust to ``EXAMPLE.ORG``,
gives a person of a foreign realm a real ticket for the app.
"""
from __future__ import annotations

import base64
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import gssapi
import gssapi.raw
import pytest

from dash_enterprise_auth.connectors import spnego as spnego_module
from dash_enterprise_auth.errors import ConfigurationError

from .conftest import UPDATE_GREETING
from .servers.kdc_server import HTTP_SERVICE, PASSWORDS, KdcServer
from .servers.negotiate_service import negotiate_get
from .test_kerberos import klist, serve_ccache

SPNEGO = gssapi.Mechanism.from_sasl_name("SPNEGO")
LOGIN = "/_dash-auth/login"
HTML = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
CROSS_REALM_PASSWORD = "cross-realm-trust-key"


# -- a person with a ticket ----------------------------------------------------------------------

def person(kdc: KdcServer, name: str, folder: Path, password: str | None = None) -> gssapi.Credentials:
    """``name``'s TGT from the KDC, in a ccache file of their own (as ``kinit`` leaves it), as
    initiator credentials that offer SPNEGO, as a browser's do."""
    principal = gssapi.Name(kdc.principal(name), gssapi.NameType.kerberos_principal)
    password = password if password is not None else PASSWORDS[name]
    creds = gssapi.raw.acquire_cred_with_password(principal, password.encode(), usage="initiate").creds
    folder.mkdir(parents=True, exist_ok=True)
    cache = f"FILE:{folder / f'{name}.ccache'}"
    gssapi.raw.store_cred_into({b"ccache": cache.encode()}, creds, usage="initiate", overwrite=True)
    return gssapi.Credentials(usage="initiate", store={"ccache": cache})


def token_for(creds: gssapi.Credentials, host: str = "localhost", *, delegate: bool = False) -> tuple[str, Any]:
    """A SPNEGO token for ``HTTP@host`` (base64, as in the header) and the client's context, which
    checks the app's mutual-authentication answer."""
    flags = gssapi.RequirementFlag.mutual_authentication | gssapi.RequirementFlag.out_of_sequence_detection
    if delegate:
        flags |= gssapi.RequirementFlag.delegate_to_peer
    context = gssapi.SecurityContext(name=gssapi.Name(f"HTTP@{host}", gssapi.NameType.hostbased_service),
                                     creds=creds, usage="initiate", mech=SPNEGO, flags=flags)
    return base64.b64encode(context.step()).decode(), context


def negotiate(client, token: str, next_url: str = "/", **headers: str):
    return client.get(f"{LOGIN}?next={next_url}", headers={**HTML, "Authorization": f"Negotiate {token}", **headers})


def session_cookie(answer) -> bool:
    return any(h.startswith("dash-auth-session=") and "Max-Age=0" not in h
               for h in answer.headers.getlist("Set-Cookie"))


def greeting(client) -> str:
    answer = client.post("/_dash-update-component", json=UPDATE_GREETING)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    return answer.get_json()["response"]["greeting"]["children"]


@pytest.fixture
def spnego_app(make_app, kdc, tmp_path):
    def build(**settings: Any):
        app = make_app(**{"connector": "spnego", "krb5_realm": kdc.realm, "krb5_keytab": str(kdc.http_keytab),
                          "allowed_groups": [], "allowed_users": ["alice"], **settings})
        serve_ccache(app)
        return app
    return build


@pytest.fixture
def alice(kdc, tmp_path) -> gssapi.Credentials:
    return person(kdc, "alice", tmp_path / "people")


# -- the challenge -------------------------------------------------------------------------------

def test_a_page_load_without_a_session_goes_to_sign_in_which_challenges_with_negotiate(spnego_app):
    client = spnego_app().server.test_client()
    page = client.get("/reports?x=1", headers=HTML)
    assert page.status_code == 302 and page.headers["Location"] == "/_dash-auth/login?next=/reports%3Fx%3D1"
    challenge = client.get(page.headers["Location"], headers=HTML)
    assert challenge.status_code == 401 and challenge.headers["WWW-Authenticate"] == "Negotiate"
    text = challenge.get_data(as_text=True)
    assert "Kerberos sign-in needed" in text and "Try again" in text
    assert "<form" not in text and 'type="password"' not in text  # nothing to fill in
    assert not session_cookie(challenge)
    # it loads itself once more (a fresh Chromium answers only the second challenge), then stays
    again = "/_dash-auth/login?next=/reports%3Fx%3D1&amp;negotiate=again"
    assert f'<meta http-equiv="refresh" content="0; url={again}">' in text
    second = client.get(again.replace("&amp;", "&"), headers=HTML)
    assert second.status_code == 401 and second.headers["WWW-Authenticate"] == "Negotiate"
    assert "Kerberos sign-in needed" in second.get_data(as_text=True) and "refresh" not in second.get_data(as_text=True)


def test_a_script_gets_the_challenge_as_json(spnego_app):
    answer = spnego_app().server.test_client().get(LOGIN)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Negotiate"
    assert "Kerberos" in answer.get_json()["error"] and answer.get_json()["sign_in_url"].startswith(LOGIN)


def test_the_sign_in_form_is_not_offered_and_a_post_is_refused(spnego_app):
    answer = spnego_app().server.test_client().post(LOGIN, data={"username": "alice", "password": "x"}, headers=HTML)
    assert answer.status_code == 405 and "signs in with Kerberos" in answer.get_data(as_text=True)


# -- signing in ----------------------------------------------------------------------------------

def test_a_valid_token_gives_a_session_and_the_page_asked_for_with_mutual_authentication(spnego_app, alice):
    client = spnego_app().server.test_client()
    token, context = token_for(alice)
    answer = negotiate(client, token, "/reports")
    assert answer.status_code == 302 and answer.headers["Location"] == "/reports", answer.get_data(as_text=True)
    assert session_cookie(answer)
    scheme, _, reply = answer.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Negotiate" and reply
    context.step(base64.b64decode(reply))  # the app proved it holds HTTP/localhost's key
    assert context.complete
    assert client.get("/", headers=HTML).status_code == 200
    assert greeting(client) == "Hello alice"
    assert client.get(LOGIN, headers=HTML).status_code == 302  # signed in: sign-in sends the viewer on


def test_the_username_is_the_principal_without_the_realm_and_privacy_decides(spnego_app, kdc, alice, tmp_path):
    app = spnego_app()
    allowed = app.server.test_client()
    assert negotiate(allowed, token_for(alice)[0]).status_code == 302
    assert allowed.get("/", headers=HTML).status_code == 200

    refused = app.server.test_client()  # bob has a ticket, but only alice may use this app
    assert negotiate(refused, token_for(person(kdc, "bob", tmp_path / "people"))[0]).status_code == 302
    page = refused.get("/", headers=HTML)
    assert page.status_code == 403 and "bob" in page.get_data(as_text=True)


@pytest.mark.parametrize("case", ["garbage", "truncated", "forged", "not base64", "empty", "ntlm", "huge"])
def test_a_bad_token_is_refused_with_no_session_and_no_500(spnego_app, alice, case, caplog):
    client = spnego_app().server.test_client()
    token = base64.b64decode(token_for(alice)[0])
    sent = {
        "garbage": base64.b64encode(os.urandom(200)).decode(),
        "truncated": base64.b64encode(token[:len(token) // 2]).decode(),
        "forged": base64.b64encode(token[:-20] + bytes(b ^ 0x5A for b in token[-20:])).decode(),
        "not base64": "this is not base64!",
        "empty": "",
        "ntlm": base64.b64encode(b"NTLMSSP\x00\x01\x00\x00\x00" + bytes(24)).decode(),
        "huge": base64.b64encode(os.urandom(80 * 1024)).decode(),
    }[case]
    answer = negotiate(client, sent)
    assert answer.status_code == 401, answer.status_code
    text = answer.get_data(as_text=True)
    assert answer.headers["WWW-Authenticate"] == "Negotiate" and "Kerberos sign-in" in text
    assert "Traceback" not in text and not session_cookie(answer)
    assert client.get("/", headers=HTML).status_code == 302  # still not signed in
    assert "Traceback" not in caplog.text


def test_a_token_for_a_host_the_keytab_has_no_key_of_is_refused(spnego_app, alice):
    client = spnego_app().server.test_client()
    answer = negotiate(client, token_for(alice)[0], Host="intranet.example.org")
    assert answer.status_code == 401 and not session_cookie(answer)
    answer = negotiate(client, token_for(alice)[0], Host="bad@host/name")
    assert answer.status_code == 401 and not session_cookie(answer)


def test_a_replayed_token_is_refused(spnego_app, alice):
    app = spnego_app()
    token, _ = token_for(alice)
    assert negotiate(app.server.test_client(), token).status_code == 302
    replayed = negotiate(app.server.test_client(), token)
    assert replayed.status_code in (400, 401) and not session_cookie(replayed)


def test_a_replay_is_refused_through_the_session_store_even_without_mit_replay_cache(
        spnego_app, alice, monkeypatch, tmp_path):
    """Two hosts behind a load balancer share the session store, not MIT's replay cache (a file on
    each host): with that cache off, the store still refuses the token's authenticator a second
    time, even unwrapped from SPNEGO (other bytes, the same Kerberos authenticator)."""
    monkeypatch.setenv("KRB5RCACHENAME", "none:")
    store = f"sqlite:///{tmp_path}/shared.sqlite3"
    first, second = spnego_app(session_store=store), spnego_app(session_store=store)
    token = base64.b64decode(token_for(alice)[0])
    inner = inner_kerberos_token(token)
    assert negotiate(first.server.test_client(), base64.b64encode(token).decode()).status_code == 302
    for replay in (token, inner):
        answer = negotiate(second.server.test_client(), base64.b64encode(replay).decode())
        assert answer.status_code == 400 and "used before" in answer.get_data(as_text=True), answer.status_code
        assert not session_cookie(answer)
    fresh = token_for(alice)[0]
    assert negotiate(second.server.test_client(), fresh).status_code == 302


def inner_kerberos_token(token: bytes) -> bytes:
    """The Kerberos token inside a SPNEGO NegTokenInit (its mechToken), which MIT accepts alone."""
    tlv, child = spnego_module._tlv, spnego_module._child
    _, start, end = tlv(token, 0)
    _, _, oid_end = tlv(token, start)
    offset = child(token, oid_end, end, 0xA0)
    for tag in (0x30, 0xA2, 0x04):
        _, start, end = tlv(token, offset)
        offset = child(token, start, end, tag)
    _, start, end = tlv(token, offset)
    return token[start:end]


# -- delegated credentials ---------------------------------------------------------------------

def test_delegated_credentials_become_the_viewers_ticket_cache(spnego_app, alice, kdc, negotiate_service, tmp_path):
    client = spnego_app().server.test_client()
    assert negotiate(client, token_for(alice, delegate=True)[0]).status_code == 302
    ccache = client.get("/ccache")
    assert ccache.status_code == 200, ccache.get_data(as_text=True)
    listing = klist(ccache.data, tmp_path)
    assert f"Default principal: alice@{kdc.realm}" in listing and f"krbtgt/{kdc.realm}@{kdc.realm}" in listing
    answer = negotiate_get(negotiate_service.url, tmp_path / "cc")  # usable: it opens a Kerberized service
    assert answer.status_code == 200 and answer.json()["principal"] == f"alice@{kdc.realm}"


def test_without_delegation_the_ticket_cache_says_why(spnego_app, alice):
    client = spnego_app().server.test_client()
    assert negotiate(client, token_for(alice)[0]).status_code == 302
    answer = client.get("/ccache")
    assert answer.status_code == 409 and "delegated no Kerberos credentials" in answer.get_data(as_text=True)


# -- other realms --------------------------------------------------------------------------------

@pytest.fixture
def other_realm(make_kdc, kdc, tmp_path) -> KdcServer:
    """Realm OTHER.ORG on a KDC of its own, trusted by EXAMPLE.ORG (krbtgt/EXAMPLE.ORG@OTHER.ORG with
    the same key in both), with carol; this process's krb5.conf knows both realms for the test."""
    other = make_kdc(realm="OTHER.ORG")
    other.add_principal("carol", "carol-password")
    trust = f"addprinc -pw {CROSS_REALM_PASSWORD} krbtgt/{kdc.realm}@{other.realm}"
    if f"krbtgt/{kdc.realm}@{other.realm}" not in kdc.kadmin("listprincs krbtgt*"):
        kdc.kadmin(trust)
    other.kadmin(trust)
    config = kdc.krb5_conf.read_text().replace(
        "[realms]\n", f"[realms]\n    {other.realm} = {{\n        kdc = {other.kdc_url}\n    }}\n") + (
        f"\n[capaths]\n    {other.realm} = {{\n        {kdc.realm} = .\n    }}\n")
    both = tmp_path / "krb5-both.conf"
    both.write_text(config)
    os.environ["KRB5_CONFIG"] = str(both)  # make_kdc puts the session's back afterwards
    return other


def test_a_principal_of_another_realm_is_refused_unless_its_realm_is_allowed(spnego_app, other_realm, tmp_path):
    carol = person(other_realm, "carol", tmp_path / "people", password="carol-password")
    client = spnego_app().server.test_client()
    refused = negotiate(client, token_for(carol)[0])
    assert refused.status_code == 403 and not session_cookie(refused)
    assert "OTHER.ORG" in refused.get_data(as_text=True)

    app = spnego_app(krb5_allowed_realms=["OTHER.ORG"], allowed_users=["alice", "carol@OTHER.ORG"])
    client = app.server.test_client()
    assert negotiate(client, token_for(carol)[0]).status_code == 302
    assert greeting(client) == "Hello carol@OTHER.ORG"
    assert client.get("/", headers=HTML).status_code == 200


# -- settings and check ----------------------------------------------------------------------------

def test_spnego_needs_a_realm_and_a_readable_keytab(spnego_app, kdc, tmp_path):
    with pytest.raises(ConfigurationError, match="DASH_AUTH_KRB5_REALM"):
        spnego_app(krb5_realm=None)
    with pytest.raises(ConfigurationError, match="DASH_AUTH_KRB5_KEYTAB='/nowhere/app.keytab' cannot be read"):
        spnego_app(krb5_keytab="/nowhere/app.keytab")
    with pytest.raises(ConfigurationError, match=f"holding the key of DASH_AUTH_KRB5_SERVICE_PRINCIPAL "
                                                 f"HTTP/dash.example.org@{kdc.realm}"):
        spnego_app(krb5_service_principal="HTTP/dash.example.org")
    with pytest.raises(ConfigurationError, match="DASH_AUTH_KRB5_SERVICE_PRINCIPAL together"):
        spnego_app(krb5_delegate_to=["HTTP/reports.example.org"])  # S4U needs a fixed principal
    spnego_app(krb5_service_principal=HTTP_SERVICE)  # the one in the keytab


def run_check(kdc: KdcServer, **env: str) -> subprocess.CompletedProcess:
    variables = {"DASH_AUTH_CONNECTOR": "spnego", "DASH_AUTH_KRB5_REALM": kdc.realm,
                 "DASH_AUTH_KRB5_KEYTAB": str(kdc.http_keytab), "DASH_AUTH_PRIVACY": "authorized",
                 "DASH_AUTH_SECRET_KEY": "k" * 40, **env}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DASH_AUTH_")}
    return subprocess.run([os.sys.executable, "-m", "dash_enterprise_auth", "check"], capture_output=True,
                          text=True, timeout=60, env={**clean, **kdc.env, **variables})


def test_check_verifies_the_keytab_holds_the_service_key_and_the_kdc_answers(kdc, make_kdc):
    done = run_check(kdc)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok   keytab {kdc.http_keytab}: holds the key of HTTP/localhost@{kdc.realm}" in done.stdout
    assert f"ok   KDC for {kdc.realm} answers" in done.stdout
    done = run_check(kdc, DASH_AUTH_KRB5_SERVICE_PRINCIPAL=HTTP_SERVICE)
    assert done.returncode == 0, done.stdout + done.stderr

    other = make_kdc(realm="REKEYED.ORG")
    other.kadmin("cpw -randkey HTTP/localhost")  # the KDC's key changed; the keytab still has the old one
    done = run_check(other)
    assert done.returncode == 1 and "FAIL KDC for REKEYED.ORG: a ticket for HTTP/localhost@REKEYED.ORG that the " \
        "keytab opens could not be had: Decrypt integrity check failed" in done.stdout, done.stdout
    other.stop()
    done = run_check(other)
    assert done.returncode == 1 and "FAIL KDC for REKEYED.ORG: " in done.stdout and "Cannot contact" in done.stdout, \
        done.stdout


# -- the ASGI backends run the token off the event loop --------------------------------------------

def test_on_fastapi_the_token_is_accepted_on_a_sign_in_thread_not_the_event_loop(
        make_app, kdc, alice, monkeypatch):
    from starlette.testclient import TestClient

    seen: list[str] = []
    accept = spnego_module.SpnegoConnector.accept

    def recording(self, token: bytes, host: str):
        seen.append(threading.current_thread().name)
        return accept(self, token, host)

    monkeypatch.setattr(spnego_module.SpnegoConnector, "accept", recording)
    app = make_app(dash_kwargs={"backend": "fastapi"}, connector="spnego", krb5_realm=kdc.realm,
                   krb5_keytab=str(kdc.http_keytab), allowed_groups=[], allowed_users=["alice"])
    with TestClient(app.server, base_url="http://localhost") as client:
        answer = client.get(f"{LOGIN}?next=/", headers={**HTML, "Authorization": f"Negotiate {token_for(alice)[0]}"},
                            follow_redirects=False)
        assert answer.status_code == 302, answer.text[:300]
        assert client.get("/", headers=HTML).status_code == 200
    assert seen and all(name.startswith("dash-auth-sign-in") for name in seen), seen


@pytest.mark.parametrize("backend", ["fastapi", "quart"])
def test_over_http_on_the_asgi_backends(backend, kdc, alice, tmp_path):
    """connectors_app under uvicorn or hypercorn (two workers), a Python client with real tokens:
    sign-in and "Hello alice", delegated credentials, garbage and replayed tokens refused, no 500."""
    from .test_backends import assert_no_traceback
    from .test_backends_connectors import hello, serve

    served = serve(backend, {"DASH_AUTH_CONNECTOR": "spnego", "DASH_AUTH_KRB5_REALM": kdc.realm,
                             "DASH_AUTH_KRB5_KEYTAB": str(kdc.http_keytab), "DASH_AUTH_ALLOWED_USERS": "alice",
                             "DASH_AUTH_SECRET_KEY": "s" * 48}, tmp_path / "app")
    try:
        def sign_in(browser, token: str):
            return browser.http.get(f"{served.url}{LOGIN}?next=/", allow_redirects=False, timeout=30,
                                    headers={**HTML, "Authorization": f"Negotiate {token}"})

        challenge = served.browser("localhost").http.get(served.url + LOGIN, headers=HTML, timeout=30)
        assert challenge.status_code == 401 and challenge.headers["WWW-Authenticate"] == "Negotiate"

        browser = served.browser("localhost")
        token = token_for(alice, delegate=True)[0]
        answer = sign_in(browser, token)
        assert answer.status_code == 302 and answer.headers["Location"] == "/", (answer.status_code, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith("Negotiate ")
        hello(browser)
        ccache = browser.http.get(served.url + "/ccache", timeout=30)
        assert ccache.status_code == 200 and f"alice@{kdc.realm}" in klist(ccache.content, tmp_path)

        for bad in (token, base64.b64encode(os.urandom(300)).decode(), "%%%"):
            stranger = served.browser("localhost")
            refused = sign_in(stranger, bad)
            assert refused.status_code in (400, 401) and "dash-auth-session" not in refused.headers.get(
                "Set-Cookie", ""), (refused.status_code, refused.text[:300])
            assert stranger.http.get(served.url + "/ccache", timeout=30).status_code == 401
    finally:
        served.app.stop()
    assert_no_traceback(served.app.log())
    assert '" 500 ' not in served.app.log()
